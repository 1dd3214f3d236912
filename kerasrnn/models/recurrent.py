"""Keras's LSTM and GRU with the input projection hoisted out of the time loop.

The stock layers multiply each step's input by the input kernel inside the
loop: per layer and step one small [batch, units] matmul forward and two
backward. These subclasses project the whole [batch, time, features] sequence
with one matmul first, so only the recurrent matmul stays in the loop (the
loop is the same `keras.ops` code, masking and state included).

Weights, their names and their saved layout are the stock layers' (the
classes keep the names `LSTM` and `GRU`, which Keras uses as keys in
.weights.h5 files), so checkpoints move freely between the two. Where the
stock layer would take its own fast path (cuDNN on a GPU) or needs per-step
inputs (dropout inside the cell), it is used unchanged.

Both take `weight_drop` (AWD-LSTM's DropConnect): during training, each
batch multiplies the recurrent kernel by one dropout mask (scaled by
1 / (1 - rate)), the same at every time step; at inference the kernel is
used as it is.

They override the undocumented `inner_loop` hook and run Keras's own time
loop (`compat.rnn`): `build_model` uses them only where `kerasrnn.compat`
allows Keras internals, and the stock layers elsewhere.
"""
import keras
from keras import ops
import tensorflow as tf

from kerasrnn import compat


def _stock_path(layer):
  if layer.weight_drop:
    return False
  if layer.dropout or layer.recurrent_dropout:
    return True
  return layer.use_cudnn is not False and bool(
      tf.config.list_logical_devices("GPU"))


def _loop(layer, step, projected, initial_state, mask):
  mask = mask[0] if isinstance(mask, (list, tuple)) else mask
  return compat.rnn(
      step, projected, list(initial_state), go_backwards=layer.go_backwards,
      mask=mask, unroll=layer.unroll, input_length=projected.shape[1],
      zero_output_for_mask=layer.zero_output_for_mask,
      return_all_outputs=layer.return_sequences)


class _WeightDrop:
  """The `weight_drop` option of both layers (a mixin)."""

  def __init__(self, *args, weight_drop=0.0, seed=None, **kwargs):
    super().__init__(*args, **kwargs)
    self.weight_drop = weight_drop
    if weight_drop:
      self.weight_drop_seed = keras.random.SeedGenerator(seed)

  def recurrent_kernel_for(self, training):
    kernel = self.cell.recurrent_kernel
    if training and self.weight_drop:
      return keras.random.dropout(kernel, self.weight_drop,
                                  seed=self.weight_drop_seed)
    return kernel

  def get_config(self):
    return {**super().get_config(), "weight_drop": self.weight_drop}


class LSTM(_WeightDrop, keras.layers.LSTM):
  """`keras.layers.LSTM` (implementation 2) with hoisted input projection."""

  def inner_loop(self, sequences, initial_state, mask, training=False):
    if _stock_path(self):
      return super().inner_loop(sequences, initial_state, mask, training)
    cell = self.cell
    recurrent_kernel = self.recurrent_kernel_for(training)
    projected = ops.matmul(sequences, cell.kernel)
    if cell.use_bias:
      projected = projected + cell.bias

    def step(x, states):
      h_tm1, c_tm1 = states
      z = x + ops.matmul(h_tm1, recurrent_kernel)
      z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
      i = cell.recurrent_activation(z_i)
      f = cell.recurrent_activation(z_f)
      c = f * c_tm1 + i * cell.activation(z_c)
      h = cell.recurrent_activation(z_o) * cell.activation(c)
      return h, [h, c]

    return _loop(self, step, projected, initial_state, mask)


class GRU(_WeightDrop, keras.layers.GRU):
  """`keras.layers.GRU` (implementation 2, both reset_after) likewise."""

  def inner_loop(self, sequences, initial_state, mask, training=False):
    if _stock_path(self):
      return super().inner_loop(sequences, initial_state, mask, training)
    cell, units = self.cell, self.units
    recurrent_kernel = self.recurrent_kernel_for(training)
    input_bias = recurrent_bias = None
    if cell.use_bias:
      if cell.reset_after:
        input_bias, recurrent_bias = cell.bias[0], cell.bias[1]
      else:
        input_bias = cell.bias
    projected = ops.matmul(sequences, cell.kernel)
    if input_bias is not None:
      projected = projected + input_bias
    if not cell.reset_after:
      kernel_zr, kernel_h = tf.split(recurrent_kernel, [2 * units, units], -1)

    # Splits, not slices: a slice's gradient is a zero-padded copy of the
    # whole tensor per step, a split's one concatenation.
    def step(x, states):
      h_tm1 = states[0]
      x_zr, x_h = tf.split(x, [2 * units, units], -1)
      if cell.reset_after:
        inner = ops.matmul(h_tm1, recurrent_kernel)
        if recurrent_bias is not None:
          inner = inner + recurrent_bias
        inner_zr, inner_h = tf.split(inner, [2 * units, units], -1)
      else:
        inner_zr = ops.matmul(h_tm1, kernel_zr)
      z, r = ops.split(cell.recurrent_activation(x_zr + inner_zr), 2, axis=-1)
      if cell.reset_after:
        recurrent_h = r * inner_h
      else:
        recurrent_h = ops.matmul(r * h_tm1, kernel_h)
      h = z * h_tm1 + (1 - z) * cell.activation(x_h + recurrent_h)
      return h, [h]

    if isinstance(initial_state, (list, tuple)):
      initial_state = initial_state[0]
    return _loop(self, step, projected, [initial_state], mask)
