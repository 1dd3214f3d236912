"""The `tf.distribute` strategy a run trains under (train.distribute)."""
import tensorflow as tf


def strategy(train):
  """The strategy named by train.distribute.

  'mirrored': MirroredStrategy over every local GPU or, with none, every
  logical CPU device (one on a plain machine; tests split the CPU in two).
  'none': the default, one-device strategy.
  """
  if train.distribute == "mirrored":
    devices = (tf.config.list_logical_devices("GPU") or
               tf.config.list_logical_devices("CPU"))
    return tf.distribute.MirroredStrategy([d.name for d in devices])
  return tf.distribute.get_strategy()


def global_sum(value):
  """Sums `value` over the replicas of the current step (itself outside)."""
  context = tf.distribute.get_replica_context()
  if context is None or context.num_replicas_in_sync == 1:
    return value
  return context.all_reduce(tf.distribute.ReduceOp.SUM, value)
