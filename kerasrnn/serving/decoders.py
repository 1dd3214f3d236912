"""The decoders an export reads and generates with, one token or one chunk
at a time, carrying a state (the `step` signature's inputs and outputs).

Both have the same interface, `Decoder`: `specs` (the state's tensors by
name), `advance` (one token per row), `output` (the output layer's input
in a state) and `fused` (an LSTM's weights for TensorFlow's fused op, which
reads whole chunks: `read` and `hidden_states`; None for the others).
"""
import math

import keras
import tensorflow as tf

from kerasrnn.data import text
from kerasrnn.models import rnn_layers
from kerasrnn.models import transformer


class Decoder:
  """What `LanguageModelModule` needs of a decoder (see the module's
  docstring); the state is a dict of named float32/int32 tensors."""

  specs = {}  # State tensor name -> tf.TensorSpec.
  fused = None  # A fused op's weights (`RecurrentDecoder`), or None.

  def output(self, states):
    """<float32>[batch, width] the output layer's input after `states`."""
    raise NotImplementedError

  def advance(self, token, states, real):
    """Feeds one token per row; rows where `real` is False keep their state.
    Returns (the output layer's input after the token, the new states)."""
    raise NotImplementedError


def _num_states(cell):
  return len(tf.nest.flatten(cell.state_size))


def _cell_step(cell, x, states):
  """One step of a Keras LSTM/GRU cell; returns (output, states as a list)."""
  out, new_states = cell(x, states, training=False)
  return out, list(new_states) if isinstance(new_states, (list, tuple)) else [
      new_states]


def _fused_lstm_weights(cell):
  """An LSTM cell's weights as TensorFlow's fused BlockLSTMV2 op takes them:
  ([input + units, 4 units] kernel: the input's rows then the recurrent
  ones, [4 units] bias; Keras's gate order i, f, c, o); None if the cell is
  no plain sigmoid/tanh LSTM cell, which that op cannot compute."""
  if not (isinstance(cell, keras.layers.LSTMCell)
          and cell.activation is keras.activations.tanh
          and cell.recurrent_activation is keras.activations.sigmoid):
    return None
  kernel = tf.concat([cell.kernel, cell.recurrent_kernel], axis=0)
  bias = cell.bias if cell.use_bias else tf.zeros([4 * cell.units])
  return (tf.Variable(kernel, trainable=False, name="fused_kernel"),
          tf.Variable(bias, trainable=False, name="fused_bias"))


def _block_lstm(x, h, c, kernel, bias):
  """BlockLSTMV2 over time-major x [time, batch, input] from states h, c:
  (outputs h [time, batch, units], cell states [time, batch, units])."""
  no_peephole = tf.zeros([bias.shape[0] // 4])
  out = tf.raw_ops.BlockLSTMV2(
      seq_len_max=tf.cast(tf.shape(x)[0], tf.int64), x=x, cs_prev=c,
      h_prev=h, w=kernel, wci=no_peephole, wcf=no_peephole, wco=no_peephole,
      b=bias, cell_clip=-1.0, use_peephole=False)
  return out.h, out.cs


class RecurrentDecoder(tf.Module, Decoder):
  """An LSTM/GRU model one token at a time; its state is the cells' states,
  one named tensor each: state_<layer>_h, and state_<layer>_c for an LSTM
  (Keras's order of a cell's states).

  For batches of up to `fused_max_batch` rows an LSTM reads a text or a
  `step` chunk with TensorFlow's fused LSTM op (one op per layer for the
  whole chunk) on a copy of its weights in the op's layout, which the
  SavedModel holds beside the model's: there the time of a call is mostly
  the number of ops it runs. Larger batches, a GRU, and `generate`'s
  one-token steps (`advance`) run the Keras cells, which measured faster
  there (docs/results.md#serving-latency).
  """

  def __init__(self, model, fused_max_batch):
    super().__init__(name="recurrent_decoder")
    self._embedding = model.get_layer("embedding")
    self._cells = [layer.cell for layer in rnn_layers(model)]
    # TensorFlow's fused LSTM op computes in float32 (or float16) only.
    fused = ([_fused_lstm_weights(cell) for cell in self._cells]
             if model.compute_dtype == "float32" else [None])
    self.fused = fused if all(w is not None for w in fused) else None
    self._dtype = model.compute_dtype
    self.fused_max_batch = fused_max_batch
    self.specs = {
        f"state_{i}_{part}": tf.TensorSpec([None, cell.units], tf.float32,
                                           f"state_{i}_{part}")
        for i, cell in enumerate(self._cells)
        for part in "hc"[:_num_states(cell)]}

  def _nested(self, states):
    it = iter(states.values())
    return [[next(it) for _ in range(_num_states(c))] for c in self._cells]

  def output(self, states):
    """The top layer's output in the state (its h): the output layer's
    input after the state's last token."""
    return self._nested(states)[-1][0]

  def advance(self, token, states, real):
    """Feeds one token per row through the Keras cells (faster than the
    fused op for one token: docs/results.md, "Generation per token, one
    thread, and TensorFlow's floor"); rows where `real` is False keep
    their state.

    Returns:
      (<float32>[batch, units] the top layer's output after the token (the
      output layer's input), the new states).
    """
    x = tf.nn.embedding_lookup(self._embedding.embeddings, token)
    flat = []
    for cell, s in zip(self._cells, self._nested(states)):
      # The states travel in float32 (the signature's); the cells compute
      # in the model's dtype (bfloat16 in a bfloat16 export).
      x, s = _cell_step(cell, x, [tf.cast(v, self._dtype) for v in s])
      flat += [tf.cast(v, tf.float32) for v in s]
    new = {name: tf.where(real[:, None], value, states[name])
           for name, value in zip(states, flat)}
    return tf.cast(x, tf.float32), new

  def _layers(self, token_ids, states):
    """Each layer's (outputs, cell states), time-major [time, batch, units],
    over right-padded ids from `states`, by the fused op (an LSTM's)."""
    x = tf.transpose(tf.nn.embedding_lookup(self._embedding.embeddings,
                                            token_ids), [1, 0, 2])
    layers = []
    for (h, c), weights in zip(self._nested(states), self.fused):
      x, c_all = _block_lstm(x, h, c, *weights)
      layers.append((x, c_all))
    return layers

  def hidden_states(self, token_ids, states):
    """<float32>[batch, time, units] top-layer outputs of right-padded ids
    (0 only after a row's last token) from `states`, by the fused op."""
    return tf.transpose(self._layers(token_ids, states)[-1][0], [1, 0, 2])

  def read(self, token_ids, states):
    """Reads right-padded chunks (0 only after a row's last token) from
    `states` at once with the fused op, one per layer (an LSTM's).

    Returns:
      (<float32>[batch, 1 + time, units] top-layer outputs: the incoming
      state's, then one per input; the states after each row's last input).
    """
    last = tf.reduce_sum(tf.cast(token_ids != text.PAD_ID, tf.int32), 1)
    # Batch-major, the incoming state first: at index n, the state after a
    # row's n-th input (0: none).
    with_start = lambda first, seq: tf.concat(
        [first[:, None], tf.transpose(seq, [1, 0, 2])], axis=1)
    names = iter(states)
    new = {}
    for (h, c), (h_all, c_all) in zip(self._nested(states),
                                      self._layers(token_ids, states)):
      outputs = with_start(h, h_all)
      for state in (outputs, with_start(c, c_all)):
        new[next(names)] = tf.gather(state, last, axis=1, batch_dims=1)
    return outputs, new


class TransformerDecoder(Decoder):
  """A Transformer one token at a time from a key/value cache.

  The state: per block the cached keys and values (state_<block>_keys and
  _values, <float32>[batch, positions, heads, head size]), which positions
  are real (state_mask, <int32>[batch, positions]: padded steps are kept
  but never attended to) and the top output at each row's last real
  position (state_hidden, for the logits of a row with no new token). It
  grows by one position per token fed; the start of a stream is an empty
  cache (0 positions) and a zero hidden state.
  """

  def __init__(self, model):
    self._embedding = model.get_layer("embedding")
    self._blocks = [l for l in model.layers
                    if isinstance(l, transformer.DecoderBlock)]
    self._norm = model.get_layer("final_norm")
    self._positions = model.get_layer("positions")
    self.max_positions = self._positions.max_length
    depth = self._embedding.output_dim
    self._scale = math.sqrt(depth)
    self._table = tf.constant(transformer.sinusoids(
        self._positions.max_length, depth))
    heads = self._blocks[0].num_heads
    cache = [None, None, heads, depth // heads]
    self.specs = {}
    for i in range(len(self._blocks)):
      for part in ("keys", "values"):
        name = f"state_{i}_{part}"
        self.specs[name] = tf.TensorSpec(cache, tf.float32, name)
    self.specs["state_mask"] = tf.TensorSpec([None, None], tf.int32,
                                             "state_mask")
    self.specs["state_hidden"] = tf.TensorSpec([None, depth], tf.float32,
                                               "state_hidden")

  @property
  def position_message(self):
    return (f"a Transformer export reads at most {self.max_positions} "
            "positions per stream (its position table); start a new stream "
            "(an empty state)")

  def output(self, states):
    return states["state_hidden"]

  def advance(self, token, states, real):
    """Feeds one token per row at its row's next position (see class)."""
    mask = tf.concat([states["state_mask"],
                      tf.cast(real, tf.int32)[:, None]], axis=1)
    position = tf.reduce_sum(states["state_mask"], axis=1)
    # Past its table a position would be an error on a CPU and zeros on a
    # GPU (gather's out-of-range rule there).
    with tf.control_dependencies([tf.debugging.assert_less(
        position, self.max_positions, message=self.position_message)]):
      position = tf.identity(position)
    x = (tf.nn.embedding_lookup(self._embedding.embeddings, token)
         * self._scale + tf.gather(self._table, position))
    new = {"state_mask": mask}
    for i, block in enumerate(self._blocks):
      x, new[f"state_{i}_keys"], new[f"state_{i}_values"] = block.extend(
          x, states[f"state_{i}_keys"], states[f"state_{i}_values"],
          tf.cast(mask, tf.bool))
    hidden = self._norm(x)
    new["state_hidden"] = tf.where(real[:, None], hidden,
                                   states["state_hidden"])
    return hidden, {name: new[name] for name in states}
