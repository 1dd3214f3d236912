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
import os

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


def _by_hand(layer, mask):
  """Whether the time loop with the gradient by hand applies (stream mode)."""
  return (mask is None and layer.unroll and not layer.go_backwards and
          os.environ.get("KERASRNN_SEQUENCE_GRAD", "1") == "1")


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


def _lstm_sequence(projected, h0, c0, kernel):
  """The unmasked, unrolled LSTM time loop with a hand-written gradient.

  Args:
    projected: [batch, time, 4 units], the inputs times the input kernel
      plus bias (gates in Keras's order i, f, c, o).
    h0, c0: [batch, units], the initial state.
    kernel: [units, 4 units], the recurrent kernel.

  Returns:
    (outputs [batch, time, units], last h, last c): what Keras's loop gives,
    to float rounding. The backward pass runs the time loop in reverse for
    each step's gate gradients (one matmul per step, for h[t-1]) and gets
    the recurrent kernel's gradient from one matmul over all steps, where
    autodiff of the loop adds up one small matmul per step.
  """

  @tf.custom_gradient
  def run(projected, h0, c0, kernel):
    units = h0.shape[-1]
    h, c = h0, c0
    hs, cs, gates = [h0], [c0], []
    for x in tf.unstack(projected, axis=1):
      z = x + tf.matmul(h, kernel)
      i, f, _, o = tf.split(tf.sigmoid(z), 4, axis=-1)
      g = tf.tanh(z[:, 2 * units:3 * units])
      c = f * c + i * g
      tanh_c = tf.tanh(c)
      h = o * tanh_c
      hs.append(h)
      cs.append(c)
      gates.append((i, f, g, o, tanh_c))

    def grad(d_outputs, d_h, d_c):
      d_zs = [None] * len(gates)
      kernel_t = tf.transpose(kernel)
      for t, d_out in reversed(list(enumerate(tf.unstack(d_outputs, axis=1)))):
        i, f, g, o, tanh_c = gates[t]
        d_h = d_out + d_h
        d_c = d_c + d_h * o * (1 - tanh_c * tanh_c)
        d_zs[t] = tf.concat([d_c * g * i * (1 - i), d_c * cs[t] * f * (1 - f),
                             d_c * i * (1 - g * g),
                             d_h * tanh_c * o * (1 - o)], axis=-1)
        d_h = tf.matmul(d_zs[t], kernel_t)
        d_c = d_c * f
      d_kernel = tf.matmul(tf.concat(hs[:-1], 0), tf.concat(d_zs, 0),
                           transpose_a=True)
      return tf.stack(d_zs, axis=1), d_h, d_c, d_kernel

    return (tf.stack(hs[1:], axis=1), h, c), grad

  return run(projected, h0, c0, kernel)


def _gru_sequence(projected, h0, kernel, recurrent_bias):
  """The GRU's (reset_after) unmasked, unrolled loop, gradient by hand.

  Args:
    projected: [batch, time, 3 units], inputs times the input kernel plus
      the input bias (gates z, r, h, Keras's order).
    h0: [batch, units].
    kernel: [units, 3 units], the recurrent kernel.
    recurrent_bias: [3 units].

  Returns:
    (outputs [batch, time, units], last h), as `_lstm_sequence`: one matmul
    per step backward for h[t-1], one over all steps for the kernel.
  """

  @tf.custom_gradient
  def run(projected, h0, kernel, recurrent_bias):
    units = h0.shape[-1]
    h = h0
    hs, saved = [h0], []
    for x in tf.unstack(projected, axis=1):
      inner = tf.matmul(h, kernel) + recurrent_bias
      zr = tf.sigmoid(x[:, :2 * units] + inner[:, :2 * units])
      z, r = zr[:, :units], zr[:, units:]
      inner_h = inner[:, 2 * units:]
      candidate = tf.tanh(x[:, 2 * units:] + r * inner_h)
      h = z * (h - candidate) + candidate
      hs.append(h)
      saved.append((z, r, inner_h, candidate))

    def grad(d_outputs, d_h):
      d_xs, d_inners = [None] * len(saved), [None] * len(saved)
      kernel_t = tf.transpose(kernel)
      for t, d_out in reversed(list(enumerate(tf.unstack(d_outputs, axis=1)))):
        z, r, inner_h, candidate = saved[t]
        d_h = d_out + d_h
        d_z = d_h * (hs[t] - candidate) * z * (1 - z)
        d_candidate = d_h * (1 - z) * (1 - candidate * candidate)
        d_r = d_candidate * inner_h * r * (1 - r)
        d_xs[t] = tf.concat([d_z, d_r, d_candidate], axis=-1)
        d_inners[t] = tf.concat([d_z, d_r, d_candidate * r], axis=-1)
        d_h = d_h * z + tf.matmul(d_inners[t], kernel_t)
      d_inner = tf.concat(d_inners, 0)
      d_kernel = tf.matmul(tf.concat(hs[:-1], 0), d_inner, transpose_a=True)
      return (tf.stack(d_xs, axis=1), d_h, d_kernel,
              tf.reduce_sum(d_inner, axis=0))

    return (tf.stack(hs[1:], axis=1), h), grad

  return run(projected, h0, kernel, recurrent_bias)


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
    if _by_hand(self, mask):
      # Values, not variables: tf.custom_gradient takes tensors.
      outputs, h, c = _lstm_sequence(
          projected, *(tf.identity(v) for v in (*initial_state[:2],
                                                recurrent_kernel)))
      return h, outputs, [h, c]

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

    def step(x, states):
      h_tm1 = states[0]
      x_z, x_r, x_h = ops.split(x, 3, axis=-1)
      if cell.reset_after:
        inner = ops.matmul(h_tm1, recurrent_kernel)
        if recurrent_bias is not None:
          inner = inner + recurrent_bias
      else:
        inner = ops.matmul(h_tm1, recurrent_kernel[:, :2 * units])
      z = cell.recurrent_activation(x_z + inner[:, :units])
      r = cell.recurrent_activation(x_r + inner[:, units:2 * units])
      if cell.reset_after:
        recurrent_h = r * inner[:, 2 * units:]
      else:
        recurrent_h = ops.matmul(r * h_tm1, recurrent_kernel[:, 2 * units:])
      h = z * h_tm1 + (1 - z) * cell.activation(x_h + recurrent_h)
      return h, [h]

    if isinstance(initial_state, (list, tuple)):
      initial_state = initial_state[0]
    if (_by_hand(self, mask) and cell.reset_after and
        recurrent_bias is not None):
      outputs, h = _gru_sequence(projected, *(tf.identity(v) for v in (
          initial_state, recurrent_kernel, recurrent_bias)))
      return h, outputs, [h]
    return _loop(self, step, projected, [initial_state], mask)
