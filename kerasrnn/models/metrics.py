"""Exact perplexity: exp(summed NLL of real target tokens / their number).

Keras's averaged loss weights batches, not tokens, so its exp is not the
perplexity of a split once batches hold different numbers of real tokens.
`Perplexity` sums in float64 and counts tokens. Under `tf.distribute` every
replica adds the sums of the whole global batch, so each holds the global
figures, whichever way a Keras version synchronises metric variables.
"""
import keras
from keras import ops
import tensorflow as tf

from kerasrnn.models import replicas

FUSED_MIN_VOCAB = 1000


def token_nll(targets, logits):
  """Negative log-likelihood of each target, 0 at padding.

  With static shapes (stream mode's fixed batches) and a vocabulary of at
  least `FUSED_MIN_VOCAB` words it runs `_fused_nll`'s two XLA programs;
  otherwise TensorFlow's softmax cross-entropy op: with dynamic shapes
  (sentence mode's buckets) XLA would compile every new shape, and for a
  small vocabulary a compilation (about a second) costs more than it saves.
  Both are exact.

  Args:
    targets: <int>[batch, time] ids, 0 = padding.
    logits: <float>[batch, time, vocab].

  Returns:
    <float32>[batch, time].
  """
  targets = ops.cast(targets, "int32")
  logits = tf.convert_to_tensor(logits)
  if logits.shape.is_fully_defined() and logits.shape[-1] >= FUSED_MIN_VOCAB:
    nll = _fused_nll(targets, logits)
  else:
    nll = ops.sparse_categorical_crossentropy(
        targets, ops.cast(logits, "float32"), from_logits=True)
  return nll * ops.cast(ops.not_equal(targets, 0), nll.dtype)


def _fused_nll(targets, logits):
  """Softmax cross-entropy as two small XLA programs, one per direction.

  TensorFlow's op makes several passes over the [positions, vocabulary]
  logits on a CPU and computes the gradient even when none is wanted; XLA
  fuses the forward into one pass (logsumexp and the target's logit) and the
  backward into another (softmax minus one-hot, scaled), about twice as
  fast as TensorFlow's op at PTB's size (docs/results.md#training-speed,
  "What each optimisation gave"). In a
  step that XLA compiles whole, it becomes part of that program. Each
  distinct shape is compiled once, hence only for static shapes.
  """
  vocab = logits.shape[-1]
  flat_targets = tf.reshape(targets, [-1])

  @tf.custom_gradient
  def nll(flat_logits):
    values, logsumexp = _nll_and_logsumexp(flat_logits, flat_targets)
    return values, lambda upstream: _nll_gradient(
        flat_logits, flat_targets, logsumexp, upstream)

  return tf.reshape(nll(tf.reshape(logits, [-1, vocab])), tf.shape(targets))


@tf.function(jit_compile=True)
def _nll_and_logsumexp(logits, targets):
  logits = tf.cast(logits, tf.float32)  # Fused into the pass (mixed precision).
  logsumexp = tf.reduce_logsumexp(logits, axis=-1)
  return logsumexp - tf.gather(logits, targets, batch_dims=1), logsumexp


@tf.function(jit_compile=True)
def _nll_gradient(logits, targets, logsumexp, upstream):
  softmax = tf.exp(tf.cast(logits, tf.float32) - logsumexp[:, None])
  one_hot = tf.one_hot(targets, tf.shape(logits)[-1], dtype=tf.float32)
  return tf.cast(upstream[:, None] * (softmax - one_hot), logits.dtype)


class SequenceLoss(keras.losses.Loss):
  """The loss of Zaremba et al.: NLL summed over time, averaged over rows.

  With it, the paper's learning rate (1) and clip norm (5) apply unchanged;
  a Keras per-token mean would need them scaled by the number of steps.
  """

  def __init__(self, name="sequence_nll", **kwargs):
    super().__init__(name=name, **kwargs)

  def call(self, y_true, y_pred):
    return ops.sum(token_nll(y_true, y_pred), axis=-1)


class GlobalRatio(keras.metrics.Metric):
  """Sums a numerator and a denominator over batches and replicas.

  `add(total, count)` takes this replica's sums and adds those of the whole
  global batch (all-reduced under `tf.distribute`; unchanged on one device).
  Every replica then adds the same values, so the variables aggregate by
  "mean": right whether Keras keeps them in sync on write (Keras 3.8, where
  "sum" would add the old value once per replica) or on read (newer Keras).
  """

  def __init__(self, name, **kwargs):
    super().__init__(name=name, **kwargs)
    self.total = self._sum_variable("total")
    self.count = self._sum_variable("count")

  def _sum_variable(self, name):
    return self.add_variable(shape=(), initializer="zeros", dtype="float64",
                             name=name, aggregation="mean")

  def add(self, total, count):
    sums = replicas.global_sum(ops.stack([ops.cast(total, "float64"),
                                          ops.cast(count, "float64")]))
    self.total.assign_add(sums[0])
    self.count.assign_add(sums[1])

  def ratio(self):
    return ops.divide_no_nan(self.total, self.count)


class MeanSequenceLoss(GlobalRatio):
  """`SequenceLoss` over every row seen: summed NLL / number of rows with
  targets (a sentence-mode batch's empty filling rows do not count)."""

  def __init__(self, name="loss", **kwargs):
    super().__init__(name=name, **kwargs)

  def update_state(self, nll, rows):
    """Adds <float>[batch, time] per-token NLL (0 at padding) of `rows`
    rows with targets."""
    self.add(ops.sum(nll), rows)

  def result(self):
    return self.ratio()


class Perplexity(GlobalRatio):
  """Exact perplexity over all batches seen since the last reset.

  `update_state(targets, logits, sample_weight=None)` adds the summed NLL of
  the non-padding targets (times `sample_weight`, if given) and their count.
  """

  def __init__(self, name="perplexity", **kwargs):
    super().__init__(name=name, **kwargs)

  def update_state(self, y_true, y_pred, sample_weight=None):
    self.update_from_nll(y_true, token_nll(y_true, y_pred), sample_weight)

  def update_from_nll(self, y_true, nll, sample_weight=None):
    """Like `update_state`, from `token_nll(y_true, y_pred)` already computed."""
    weights = ops.cast(ops.not_equal(ops.cast(y_true, "int32"), 0), "float64")
    if sample_weight is not None:
      weights = weights * ops.cast(sample_weight, "float64")
    self.add(ops.sum(ops.cast(nll, "float64") * weights), ops.sum(weights))

  def result(self):
    return ops.exp(self.ratio())
