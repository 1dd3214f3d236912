"""Helpers for training under `tf.distribute` (train.distribute, not built yet).

The loss of `LanguageModel` already uses `global_sum`, so that each replica's
loss will be its share of the global batch's loss.
"""
import tensorflow as tf


def global_sum(value):
  """Sums `value` over the replicas of the current step (itself outside)."""
  context = tf.distribute.get_replica_context()
  if context is None or context.num_replicas_in_sync == 1:
    return value
  return context.all_reduce(tf.distribute.ReduceOp.SUM, value)
