"""Keras's LSTM and GRU with the input projection hoisted out of the time loop.

The stock layers multiply each step's input by the input kernel inside the
loop: per layer and step one small [batch, units] matmul forward and two
backward. These subclasses project the whole [batch, time, features] sequence
with one matmul first, so only the recurrent matmul stays in the loop (the
loop is the same `keras.ops` code, masking and state included).

With `gate_matmuls` (what `build_model` sets where the step runs without
XLA) each gate has its own recurrent matmul ([batch, units] x [units,
units], on a column block of the same kernel) instead of one [units, n x
units] product that is then split: TensorFlow's CPU kernels run one small
matmul barely faster on two cores than on one, while independent matmuls
run side by side, so a 200-unit layer's pass takes less time (neutral at
650 and 1,000 units; slower inside XLA programs, which get one matmul;
the figures: docs/history/training_speed.md, "One recurrent matmul per
gate"). Same weights, same products: outputs and gradients equal the stock
layers' to float rounding either way (tests/test_recurrent.py).

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


def _matmul(x, kernel):
  """x @ kernel in the kernel's dtype (the layer's compute dtype), as
  float32.

  Under a mixed-precision policy (train.precision) the time loop keeps its
  states and gates in float32 and multiplies in bfloat16 (or float16):
  an LSTM's cell state summed over many steps in bfloat16's 8 bits of
  mantissa would lose what the model learns (docs/results.md, "Mixed
  precision"). In float32 the casts are no-ops.
  """
  return ops.cast(ops.matmul(ops.cast(x, kernel.dtype), kernel), "float32")


def _loop(layer, step, projected, initial_state, mask):
  mask = mask[0] if isinstance(mask, (list, tuple)) else mask
  # The loop's states are float32 under every policy (see `_matmul`).
  initial_state = [ops.cast(s, "float32") for s in initial_state]
  return compat.rnn(
      step, projected, initial_state, go_backwards=layer.go_backwards,
      mask=mask, unroll=layer.unroll, input_length=projected.shape[1],
      zero_output_for_mask=layer.zero_output_for_mask,
      return_all_outputs=layer.return_sequences)


class _Options:
  """What both layers add to the stock ones (a mixin): `weight_drop`, and
  `gate_matmuls` (True: one recurrent matmul per gate, for steps without
  XLA; False: one for all gates, which XLA-compiled steps ran faster)."""

  def __init__(self, *args, weight_drop=0.0, gate_matmuls=True, seed=None,
               **kwargs):
    super().__init__(*args, **kwargs)
    self.weight_drop = weight_drop
    self.gate_matmuls = gate_matmuls
    if weight_drop:
      self.weight_drop_seed = keras.random.SeedGenerator(seed)

  @compat.no_tracking
  def _create_state_variables(self, batch_size):
    """Stateful layers: under a tf.distribute strategy, each replica keeps
    the state of its own rows (replica-local variables of its batch size);
    on one device, Keras's own state variables."""
    if not tf.distribute.has_strategy():
      return super()._create_state_variables(batch_size)
    self.states = [
        tf.Variable(ops.cast(value, self.variable_dtype), trainable=False,
                    name="rnn_state",
                    synchronization=tf.VariableSynchronization.ON_READ,
                    aggregation=tf.VariableAggregation.MEAN)
        for value in tf.nest.flatten(self.get_initial_state(batch_size))]
    return None

  def reset_state(self):
    if self.states is None or isinstance(self.states[0], keras.Variable):
      return super().reset_state()
    for state in self.states:  # Every replica's copy.
      state.assign(tf.zeros(state.shape, state.dtype))
    return None

  def recurrent_kernel_for(self, training):
    kernel = self.cell.recurrent_kernel
    if training and self.weight_drop:
      return keras.random.dropout(kernel, self.weight_drop,
                                  seed=self.weight_drop_seed)
    return kernel

  def recurrent_matmuls(self, kernel, gates):
    """A function h -> the gates' recurrent products [h k_1, ..., h k_n],
    float32 (see `_matmul`)."""
    if self.gate_matmuls:
      kernels = ops.split(kernel, gates, axis=-1)

      def products(h):
        h = ops.cast(h, kernel.dtype)  # Once for all the gates.
        return [ops.cast(ops.matmul(h, k), "float32") for k in kernels]

      return products
    return lambda h: ops.split(_matmul(h, kernel), gates, axis=-1)

  def get_config(self):
    return {**super().get_config(), "weight_drop": self.weight_drop,
            "gate_matmuls": self.gate_matmuls}


class LSTM(_Options, keras.layers.LSTM):
  """`keras.layers.LSTM` (implementation 2) with hoisted input projection."""

  def inner_loop(self, sequences, initial_state, mask, training=False):
    if _stock_path(self):
      return super().inner_loop(sequences, initial_state, mask, training)
    cell = self.cell
    recurrent_kernel = self.recurrent_kernel_for(training)
    projected = _matmul(sequences, cell.kernel)
    if cell.use_bias:
      projected = projected + ops.cast(cell.bias, "float32")
    recurrent = self.recurrent_matmuls(recurrent_kernel, 4)

    def step(x, states):
      h_tm1, c_tm1 = states
      z_i, z_f, z_c, z_o = (x_g + r_g for x_g, r_g in
                            zip(ops.split(x, 4, axis=-1), recurrent(h_tm1)))
      i = cell.recurrent_activation(z_i)
      f = cell.recurrent_activation(z_f)
      c = f * c_tm1 + i * cell.activation(z_c)
      h = cell.recurrent_activation(z_o) * cell.activation(c)
      return h, [h, c]

    return _loop(self, step, projected, initial_state, mask)


class GRU(_Options, keras.layers.GRU):
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
    projected = _matmul(sequences, cell.kernel)
    if input_bias is not None:
      projected = projected + ops.cast(input_bias, "float32")
    if cell.reset_after:
      recurrent = self.recurrent_matmuls(recurrent_kernel, 3)
    else:
      recurrent = self.recurrent_matmuls(recurrent_kernel[:, :2 * units], 2)
      kernel_h = recurrent_kernel[:, 2 * units:]
    if recurrent_bias is not None:
      bias_z, bias_r, bias_h = ops.split(ops.cast(recurrent_bias, "float32"),
                                         3, axis=-1)

    def step(x, states):
      h_tm1 = states[0]
      x_z, x_r, x_h = ops.split(x, 3, axis=-1)
      if cell.reset_after:
        inner_z, inner_r, inner_h = recurrent(h_tm1)
        if recurrent_bias is not None:
          inner_z, inner_r, inner_h = (inner_z + bias_z, inner_r + bias_r,
                                       inner_h + bias_h)
      else:
        inner_z, inner_r = recurrent(h_tm1)
      z = cell.recurrent_activation(x_z + inner_z)
      r = cell.recurrent_activation(x_r + inner_r)
      if cell.reset_after:
        recurrent_h = r * inner_h
      else:
        recurrent_h = _matmul(r * h_tm1, kernel_h)
      h = z * h_tm1 + (1 - z) * cell.activation(x_h + recurrent_h)
      return h, [h]

    if isinstance(initial_state, (list, tuple)):
      initial_state = initial_state[0]
    return _loop(self, step, projected, [initial_state], mask)
