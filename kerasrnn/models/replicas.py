"""The replica math that keeps a distributed training step exact.

Under `tf.distribute` each replica sees its part of the global batch. The loss
of each replica is its share of the *global* batch's loss (`global_sum` of the
rows), so the summed gradients are the one-device gradients however a batch
splits, and `clip_like_one_device` clips by the norm of that sum. Outside a
replica context, or with one replica, every function is the identity.
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
  """Clips the replicas' gradients as one device would clip their sum.

  Keras's optimizer clips each replica's part before it sums the parts, so
  `global_clipnorm` would act on the wrong norm. Here the parts are summed
  first (`all_reduce`), clipped by the norm of the sum, and each replica
  hands the optimizer 1/n of the clipped sum: its clip then sees a norm of at
  most clip_norm / n (a no-op), and its own sum gives back the clipped sum.
  On one replica, or without clipping, the gradients pass unchanged.
  """
  context = tf.distribute.get_replica_context()
  if not clip_norm or context is None or context.num_replicas_in_sync == 1:
    return gradients
  n = context.num_replicas_in_sync
  # Sparse (embedding) gradients stay tf.IndexedSlices: like Keras's and
  # TensorFlow's global norm on one device, the norm then counts a word's
  # row once per occurrence in the batch.
  total = context.all_reduce(tf.distribute.ReduceOp.SUM, gradients)
  clipped, _ = tf.clip_by_global_norm(total, clip_norm)
  return [tf.IndexedSlices(g.values / n, g.indices, g.dense_shape)
          if isinstance(g, tf.IndexedSlices) else g / n for g in clipped]
