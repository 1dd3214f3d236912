"""Embedding -> [Dropout] -> LSTM/GRU x N (or Transformer blocks) -> [Dropout]
-> logits over words.

Dropout sits on the non-recurrent connections (Zaremba et al. 2014): after
the embedding and after every recurrent layer; the modern recipe's variants
(locked and word dropout, weight drop; `kerasrnn.models.regularizers`) are
options of the same layers. With every option off the model is Zaremba's.
"""
import contextlib

import keras
from keras import ops
import tensorflow as tf

from kerasrnn import compat
from kerasrnn.data import text
from kerasrnn.errors import UserError
from kerasrnn.models import adaptive
from kerasrnn.models import output
from kerasrnn.models import recurrent
from kerasrnn.models import regularizers
from kerasrnn.models import transformer
from kerasrnn.models import replicas
from kerasrnn.models.metrics import MeanSequenceLoss
from kerasrnn.models.metrics import Perplexity
from kerasrnn.models.metrics import token_nll


class LanguageModel(compat.SymbolicBuildWithoutData, keras.Model):
  """A functional Keras model whose loss and perplexity share one softmax.

  Compiled with a Keras loss and a Keras metric, every step would compute
  the vocabulary-wide log-softmax twice (once for each). Its own train and
  test steps compute the per-token NLL once and feed both Zaremba et al.'s
  loss (as `metrics.SequenceLoss`: summed over time, averaged over rows)
  and the exact `perplexity` metric; `compile` it with an optimizer only.
  Weights and layers are those of the plain functional model.
  """

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.loss_tracker = MeanSequenceLoss()
    self.perplexity = Perplexity()
    # The same layers up to the output layer's input (untracked: it holds
    # no weights of its own), so that the steps can ask the output layer
    # for the targets' NLL alone (an adaptive softmax never computes the
    # full distribution in training).
    self._hidden = _Untracked(keras.Model(
        self.input, self.get_layer("logits").input, name="hidden_states"))

  # The optimizer's `global_clipnorm` is applied by the train step, which
  # clips as one device would and keeps sparse gradients sparse
  # (`replicas.clip_like_one_device`); the optimizer itself is left as the
  # caller made it. Under loss scaling (a `keras.optimizers.
  # LossScaleOptimizer`, as train.precision=mixed_float16 makes) the
  # gradients are those of the scaled loss: clipped at the scaled norm, they
  # are the clipped gradients once the optimizer unscales them, and a
  # non-finite one still reaches it (it then skips the step and lowers the
  # scale).

  def _apply_clipped(self, gradients, scale):
    optimizer = self.optimizer
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    norm = inner.global_clipnorm
    gradients = replicas.clip_like_one_device(
        gradients, ops.multiply(norm, scale) if norm else None)
    inner.global_clipnorm = None  # While the step is traced.
    try:
      optimizer.apply(gradients, self.trainable_weights)
    finally:
      inner.global_clipnorm = norm

  def hidden_states(self, x, training=False):
    """The output layer's inputs: [batch, time, width], in the compute
    dtype (float32 unless built under a mixed precision policy)."""
    return self._hidden.value(x, training=training)

  def target_nll(self, x, y, training=False):
    """<float32>[batch, time] NLL of each target (0 at padding)."""
    return self.get_layer("logits").nll(self.hidden_states(x, training), y)

  @property
  def metrics(self):
    # Reset by fit/evaluate at each epoch; the logs are their results.
    return [self.loss_tracker, self.perplexity]

  def _loss(self, x, y, sample_weight, training):
    """The loss of this replica; updates the metrics."""
    if sample_weight is not None:
      raise ValueError("LanguageModel weights tokens by their targets "
                       "(0 = padding); it takes no sample_weight")
    nll = self.target_nll(x, y, training=training)
    # Rows without targets (a sentence-mode batch's filling) do not count.
    rows = ops.sum(ops.cast(ops.any(ops.greater(y, 0), axis=1), nll.dtype))
    self.loss_tracker.update_state(nll, rows)
    self.perplexity.update_from_nll(y, nll)
    # Under tf.distribute each replica returns its share of the global loss
    # (its NLL sum over all replicas' rows), so the summed gradients are
    # exactly the single-device ones, however a batch splits.
    return ops.divide_no_nan(ops.sum(nll), replicas.global_sum(rows))

  # The steps are Keras's TensorFlow steps, with three changes that only
  # matter under tf.distribute (on one device they compute the same):
  # gradients are clipped as one device would clip them (by the model, which
  # also keeps the embedding's gradient sparse), the metrics are
  # the global batch's (`GlobalRatio`), and the logs are [1]-shaped for
  # multi-worker strategies (Keras 3 reduces those logs along axis 0).

  # Sentence mode's stateful model (`build_model(..., stateful=True)`) reads
  # a batch of sentences in chunks, carrying the state from one chunk to
  # the next; a row whose first input is <eos> starts a sentence.
  starts_sentences_at_eos = False

  def _start_sentences(self, x):
    """Zeroes the carried state of the rows of `x` that start a sentence."""
    if not self.starts_sentences_at_eos:
      return
    starts = ops.equal(x[:, :1], text.EOS_ID)
    for layer in rnn_layers(self):
      for state in layer.states:
        state.assign(ops.where(starts, ops.zeros_like(state), state))

  def train_step(self, data):
    x, y, weights = keras.utils.unpack_x_y_sample_weight(data)
    self._start_sentences(x)
    with tf.GradientTape() as tape:
      loss = self._loss(x, y, weights, training=True)
      scale = self.optimizer.scale_loss(ops.ones((), loss.dtype))
      scaled = ops.multiply(loss, scale)
    self._apply_clipped(tape.gradient(scaled, self.trainable_weights), scale)
    return self._logs()

  def test_step(self, data):
    x, y, weights = keras.utils.unpack_x_y_sample_weight(data)
    self._start_sentences(x)
    self._loss(x, y, weights, training=False)
    return self._logs()

  def _logs(self):
    logs = self.get_metrics_result()
    if replicas.is_multi_worker(self.distribute_strategy):
      logs = {k: ops.reshape(v, [1]) for k, v in logs.items()}
    return logs


class _Untracked:
  """Holds a value out of sight of Keras's attribute tracking."""

  def __init__(self, value):
    self.value = value


class Logits(output.OutputLayer):
  """Projects hidden states to vocabulary logits, optionally tied.

  Args:
    vocab_size: number of output classes.
    embedding: an `Embedding` layer whose matrix is reused (tied) as the
      output projection, or None for a separate kernel.
    kernel_initializer, bias_initializer: initializers of the untied kernel
      and of the bias.
  """

  def __init__(self, vocab_size, embedding=None, kernel_initializer=None,
               bias_initializer="zeros", **kwargs):
    super().__init__(vocab_size, kernel_initializer, bias_initializer,
                     **kwargs)
    self.tied = embedding is not None
    # A function, not the layer itself: Keras would track the embedding as a
    # sublayer of this one and count (and save) its matrix twice. Not
    # serialised either: models are rebuilt from the kerasrnn config.
    self._tied_matrix = lambda: embedding.embeddings

  def build(self, input_shape):
    if not self.tied:
      self.kernel = self.add_weight(
          name="kernel", shape=(input_shape[-1], self.vocab_size),
          initializer=self.kernel_initializer)
    self.bias = self.add_weight(name="bias", shape=(self.vocab_size,),
                                initializer=self.bias_initializer)

  def call(self, x):
    kernel = ops.transpose(self._tied_matrix()) if self.tied else self.kernel
    # In the layer's compute dtype: `token_nll` takes the softmax in float32.
    return ops.matmul(x, kernel) + self.bias

  def nll(self, x, targets):
    return token_nll(targets, self(x))


def rnn_layers(model):
  """The model's recurrent layers, in order."""
  return [l for l in model.layers if isinstance(l, keras.layers.RNN)]


@contextlib.contextmanager
def dtype_policy(precision):
  """Layers built inside compute in `precision` (a Keras dtype policy name:
  float32, mixed_bfloat16, mixed_float16); their variables stay float32."""
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy(precision)
  try:
    yield
  finally:
    keras.config.set_dtype_policy(previous)


def build_model(config, vocab_size, batch_size=None, use_cudnn="auto",
                stock_layers=None, gate_matmuls=False, stateful=None,
                precision="float32"):
  """Builds the language model described by `config`.

  Stream mode gives stateful recurrent layers over fixed [batch, num_steps]
  windows (state carried across batches; unrolled when model.unroll);
  sentence mode gives layers over [batch, time] with
  `Embedding(mask_zero=True)`, so the padding mask reaches every layer:
  stateless (any batch, each row from zero state), or, as training and
  evaluation read sentences in chunks (`kerasrnn.data.pipelines.Layout`),
  stateful over a fixed batch, each row's state carried from one chunk to
  the next and zeroed where the row's first input is <eos>.
  model.cell=transformer gives `kerasrnn.models.transformer`'s blocks
  instead of recurrent layers (no state: each window or chunk on its own).

  Args:
    config: the full config (reads `model` and `data.mode`/`data.num_steps`).
    vocab_size: vocabulary size including id 0 (padding).
    batch_size: a stateful model's fixed batch size (default
      config.data.batch_size).
    use_cudnn: passed to the recurrent layers; False keeps cuDNN-only ops out
      of graphs that must run anywhere (exports).
    stock_layers: True for `keras.layers.LSTM`/`GRU`, False for kerasrnn's
      hoisted-projection layers (same weights); None = kerasrnn's where
      `kerasrnn.compat` allows the Keras internals they use.
    gate_matmuls: kerasrnn's layers only: one recurrent matmul per gate
      instead of one for all gates (same weights, same results; faster
      where the step runs without XLA). `kerasrnn.fast_path.build_model`
      passes this machine's choice.
    stateful: sentence mode: True for the chunked model training and
      evaluation run, False (the default) for the stateless one; stream
      mode is always stateful.
    precision: the layers' Keras dtype policy (config train.precision
      trains with it): float32, mixed_bfloat16 or mixed_float16. The
      weights are float32 either way, and so is `target_nll` (the softmax
      is taken in float32); a full softmax's logits come in the policy's
      compute dtype.

  Returns:
    An uncompiled `LanguageModel` mapping <int32>[batch, time] ids to
    <float32>[batch, time, vocab_size] logits (model.softmax=full) or
    log-probabilities (adaptive: `kerasrnn.models.adaptive`), the layer
    named "logits" either way.
  """
  with dtype_policy(precision):
    return _build(config, vocab_size, batch_size, use_cudnn, stock_layers,
                  gate_matmuls, stateful)


def _build(config, vocab_size, batch_size, use_cudnn, stock_layers,
           gate_matmuls, stateful):
  m = config.model
  stream = config.data.mode == "stream"
  stateful = stream or bool(stateful)
  init = lambda: (keras.initializers.RandomUniform(-m.init_scale, m.init_scale)
                  if m.init_scale else None)
  inputs = keras.Input(
      shape=(config.data.num_steps if stream else None,), dtype="int32",
      batch_size=(batch_size or config.data.batch_size) if stateful else None,
      name="token_ids")
  embedding = regularizers.Embedding(
      vocab_size, m.embedding_size or m.hidden_size, mask_zero=not stream,
      embeddings_initializer=init() or "uniform", word_dropout=m.word_dropout,
      name="embedding")
  x = embedding(inputs)
  if m.cell == "transformer":
    x = _transformer_blocks(m, x, init)
  else:
    x = _recurrent_layers(config, x, init, use_cudnn, stock_layers,
                          gate_matmuls, stateful)
  if m.softmax == "adaptive":
    output = adaptive.AdaptiveSoftmax(
        vocab_size, m.adaptive_cutoffs, m.adaptive_factor,
        kernel_initializer=init(), bias_initializer=init() or "zeros",
        name="logits")
  else:
    output = Logits(vocab_size, embedding if m.tie_embeddings else None,
                    kernel_initializer=init(),
                    bias_initializer=init() or "zeros", name="logits")
  logits = output(x)
  model = LanguageModel(inputs, logits, name=f"{m.cell}_language_model")
  model.starts_sentences_at_eos = stateful and not stream
  return model


def _rate(m, rate):
  return m.dropout if rate is None else rate


def _recurrent_layers(config, x, init, use_cudnn, stock_layers, gate_matmuls,
                      stateful):
  """Dropout -> LSTM/GRU -> Dropout, x num_layers, on the embeddings x."""
  m, stream = config.model, config.data.mode == "stream"
  if stock_layers is None:
    stock_layers = not compat.internals_enabled()
  if stock_layers and m.weight_drop:
    raise UserError("config model.weight_drop needs kerasrnn's recurrent "
                    "layers, which this Keras version or "
                    f"{compat.ENV_SWITCH}=0 turned off; set it to 0")
  if stock_layers and stateful and (
      tf.distribute.get_strategy().num_replicas_in_sync > 1):
    raise UserError("config train.distribute needs kerasrnn's recurrent "
                    "layers (each replica's own state), which this Keras "
                    f"version or {compat.ENV_SWITCH}=0 turned off; train on "
                    "one device")
  layers = keras.layers if stock_layers else recurrent
  x = regularizers.dropout(_rate(m, m.input_dropout), m.locked_dropout,
                           "embedding_dropout")(x)
  for i in range(m.num_layers):
    last = i == m.num_layers - 1
    kwargs = dict(return_sequences=True, stateful=stateful,
                  unroll=stream and m.unroll, use_cudnn=use_cudnn,
                  name=f"{m.cell}_{i}")
    if not stock_layers:
      kwargs.update(gate_matmuls=gate_matmuls)
    if m.weight_drop:
      kwargs.update(weight_drop=m.weight_drop)
    if m.init_scale:
      kwargs.update(kernel_initializer=init(), recurrent_initializer=init(),
                    bias_initializer=init())
    # Tied to an embedding of another size: the last layer has its size.
    units = ((m.embedding_size or m.hidden_size) if last and m.tie_embeddings
             else m.hidden_size)
    if m.cell == "lstm":
      layer = layers.LSTM(units, unit_forget_bias=False, **kwargs)
    else:
      layer = layers.GRU(units, reset_after=m.gru_reset_after, **kwargs)
    rate = _rate(m, m.output_dropout) if last else m.dropout
    x = regularizers.dropout(rate, m.locked_dropout, f"dropout_{i}")(layer(x))
  return x


def _transformer_blocks(m, x, init):
  """Positions -> Dropout -> Transformer blocks -> LayerNorm -> Dropout."""
  x = transformer.PositionalEmbedding(name="positions")(x)
  x = regularizers.dropout(_rate(m, m.input_dropout), m.locked_dropout,
                           "embedding_dropout")(x)
  for i in range(m.num_layers):
    x = transformer.DecoderBlock(
        m.num_heads, m.ffn_size or 4 * m.hidden_size, m.dropout,
        initializer=init(), name=f"block_{i}")(x)
  x = keras.layers.LayerNormalization(epsilon=1e-5, name="final_norm")(x)
  return regularizers.dropout(_rate(m, m.output_dropout), m.locked_dropout,
                              "output_dropout")(x)
