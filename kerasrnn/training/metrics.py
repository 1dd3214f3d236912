"""Exact perplexity: exp(summed NLL of real target tokens / their number).

Keras's averaged loss weights batches, not tokens, so its exp is not the
perplexity of a split once batches hold different numbers of real tokens.
`Perplexity` sums in float64 and counts tokens; its variables aggregate by
sum, so it is also exact across replicas under `tf.distribute`.
"""
import keras
from keras import ops


def token_nll(targets, logits):
  """Negative log-likelihood of each target, 0 at padding.

  Args:
    targets: <int>[batch, time] ids, 0 = padding.
    logits: <float>[batch, time, vocab].

  Returns:
    <float32>[batch, time].
  """
  targets = ops.cast(targets, "int32")
  nll = ops.sparse_categorical_crossentropy(targets, logits, from_logits=True)
  return nll * ops.cast(ops.not_equal(targets, 0), nll.dtype)


class SequenceLoss(keras.losses.Loss):
  """The loss of Zaremba et al.: NLL summed over time, averaged over rows.

  With it, the paper's learning rate (1) and clip norm (5) apply unchanged;
  a Keras per-token mean would need them scaled by the number of steps.
  """

  def __init__(self, name="sequence_nll", **kwargs):
    super().__init__(name=name, **kwargs)

  def call(self, y_true, y_pred):
    return ops.sum(token_nll(y_true, y_pred), axis=-1)


class Perplexity(keras.metrics.Metric):
  """Exact perplexity over all batches seen since the last reset.

  `update_state(targets, logits, sample_weight=None)` adds the summed NLL of
  the non-padding targets (times `sample_weight`, if given) and their count.
  """

  def __init__(self, name="perplexity", **kwargs):
    super().__init__(name=name, **kwargs)
    self.total_nll = self.add_variable(shape=(), initializer="zeros",
                                       dtype="float64", name="total_nll",
                                       aggregation="sum")
    self.count = self.add_variable(shape=(), initializer="zeros",
                                   dtype="float64", name="count",
                                   aggregation="sum")

  def update_state(self, y_true, y_pred, sample_weight=None):
    self.update_from_nll(y_true, token_nll(y_true, y_pred), sample_weight)

  def update_from_nll(self, y_true, nll, sample_weight=None):
    """Like `update_state`, from `token_nll(y_true, y_pred)` already computed."""
    weights = ops.cast(ops.not_equal(ops.cast(y_true, "int32"), 0), "float64")
    if sample_weight is not None:
      weights = weights * ops.cast(sample_weight, "float64")
    self.total_nll.assign_add(ops.sum(ops.cast(nll, "float64") * weights))
    self.count.assign_add(ops.sum(weights))

  def result(self):
    return ops.exp(ops.divide_no_nan(self.total_nll, self.count))
