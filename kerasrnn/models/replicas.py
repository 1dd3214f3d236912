"""The replica math that keeps a distributed training step exact.

Under `tf.distribute` each replica sees its part of the global batch. The loss
of each replica is its share of the *global* batch's loss (`global_sum` of the
rows), so the summed gradients are the one-device gradients however a batch
splits, and `clip_like_one_device` clips by the norm of that sum. Outside a
replica context, or with one replica, `global_sum` is the identity.
"""
import tensorflow as tf


def is_multi_worker(strategy):
  return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def global_sum(value):
  """Sums `value` over the replicas of the current step (itself outside)."""
  context = tf.distribute.get_replica_context()
  if context is None or context.num_replicas_in_sync == 1:
    return value
  return context.all_reduce(tf.distribute.ReduceOp.SUM, value)


def clip_like_one_device(gradients, clip_norm):
  """Clips gradients by their global norm as one device would clip them.

  Keras's optimizer clips each replica's part before it sums the parts, so
  `global_clipnorm` would act on the wrong norm. Here the parts are summed
  first (`all_reduce`), clipped by the norm of the sum, and each replica
  hands the optimizer 1/n of the clipped sum, which the optimizer sums.
  Sparse (embedding) gradients stay `tf.IndexedSlices` (Keras's own
  clipping would make them dense: a copy of the whole embedding matrix per
  step, docs/results.md#large-vocabularies-the-adaptive-softmax); like
  Keras's and TensorFlow's global norm, the norm counts a word's row once
  per occurrence in the batch. Without
  clipping (0 or None) the gradients pass unchanged; `clip_norm` may be a
  tensor (a loss scale times the norm).
  """
  if clip_norm is None or (not tf.is_tensor(clip_norm) and not clip_norm):
    return gradients
  context = tf.distribute.get_replica_context()
  n = 1 if context is None else context.num_replicas_in_sync
  if n == 1:
    return tf.clip_by_global_norm(gradients, clip_norm)[0]
  total = context.all_reduce(tf.distribute.ReduceOp.SUM, gradients)
  clipped, _ = tf.clip_by_global_norm(total, clip_norm)
  return [tf.IndexedSlices(g.values / n, g.indices, g.dense_shape)
          if isinstance(g, tf.IndexedSlices) else g / n for g in clipped]
