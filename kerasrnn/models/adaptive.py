"""An exact adaptive softmax (Grave et al. 2017, "Efficient softmax
approximation for GPUs"), as PyTorch's `nn.AdaptiveLogSoftmaxWithLoss`.

Word ids are ranked by frequency (`kerasrnn.data.vocabulary`), so the
cutoffs c_1 < ... < c_K split them into a head (ids below c_1: the frequent
words, padding and <unk>, <eos>) and K tail clusters [c_k, c_k+1). The head
is a softmax over its words plus one entry per cluster; cluster k is a
softmax over its words, from the hidden state projected to d / factor^k
dimensions. A word's probability is its head probability, or its cluster's
head probability times its probability within the cluster: an exact
distribution over the whole vocabulary, so perplexity keeps its meaning.

Training only needs each target's probability: the head for every position
and, for each cluster, the positions whose target is in it (`nll`). Calling
the layer gives every word's log-probability, cluster by cluster, for
evaluation at full resolution and the exports (`call`).
"""
from keras import ops
import tensorflow as tf

from kerasrnn.errors import UserError
from kerasrnn.models import output


def check_cutoffs(cutoffs, vocab_size):
  """Raises UserError unless `cutoffs` split ids [0, vocab_size) into a head
  and non-empty clusters."""
  cutoffs = list(cutoffs)
  if not cutoffs or cutoffs != sorted(set(cutoffs)) or cutoffs[0] < 3 or (
      cutoffs[-1] >= vocab_size):
    raise UserError(
        f"config model.adaptive_cutoffs={tuple(cutoffs)} must be increasing "
        f"ids from 3 to the vocabulary size - 1 ({vocab_size - 1}), e.g. "
        f"({vocab_size // 5},) for one tail cluster")


def cluster_sizes(cutoffs, vocab_size):
  """[(first id, number of ids)] of each tail cluster."""
  bounds = list(cutoffs) + [vocab_size]
  return [(lo, hi - lo) for lo, hi in zip(bounds[:-1], bounds[1:])]


def tail_dims(depth, num_clusters, factor):
  """Cluster k's projected width: depth / factor^k (at least 1)."""
  return [max(1, int(depth // factor ** (k + 1))) for k in range(num_clusters)]


def parameters(depth, vocab_size, cutoffs, factor):
  """Number of weights of an `AdaptiveSoftmax` on `depth`-wide inputs."""
  head = cutoffs[0] + len(cutoffs)
  count = depth * head + head
  for dim, (_, size) in zip(tail_dims(depth, len(cutoffs), factor),
                            cluster_sizes(cutoffs, vocab_size)):
    count += depth * dim + dim * size + size
  return count


class AdaptiveSoftmax(output.OutputLayer):
  """Hidden states -> exact log-probabilities over the vocabulary.

  Args:
    vocab_size: number of ids, padding (0) included.
    cutoffs: first id of each tail cluster (increasing; see `check_cutoffs`).
    factor: each cluster's projection is `factor` times narrower than the
      previous one's (PyTorch's div_value; Grave et al. use 4).
    kernel_initializer, bias_initializer: of every kernel and bias.
  """

  log_probabilities = True

  def __init__(self, vocab_size, cutoffs, factor=4.0, kernel_initializer=None,
               bias_initializer="zeros", **kwargs):
    check_cutoffs(cutoffs, vocab_size)
    super().__init__(vocab_size, kernel_initializer, bias_initializer,
                     **kwargs)
    self.cutoffs = tuple(int(c) for c in cutoffs)
    self.factor = float(factor)
    self.clusters = cluster_sizes(self.cutoffs, vocab_size)

  def build(self, input_shape):
    depth = input_shape[-1]
    head = self.cutoffs[0] + len(self.clusters)
    weight = lambda name, shape, init: self.add_weight(
        name=name, shape=shape, initializer=init)
    self.head_kernel = weight("head_kernel", (depth, head),
                              self.kernel_initializer)
    self.head_bias = weight("head_bias", (head,), self.bias_initializer)
    self.tails = []
    for k, (dim, (_, size)) in enumerate(zip(
        tail_dims(depth, len(self.clusters), self.factor), self.clusters)):
      self.tails.append((
          weight(f"tail_{k}_projection", (depth, dim), self.kernel_initializer),
          weight(f"tail_{k}_kernel", (dim, size), self.kernel_initializer),
          weight(f"tail_{k}_bias", (size,), self.bias_initializer)))

  def _head_logits(self, h):
    # Multiplied in the layer's compute dtype; the softmaxes read float32.
    return ops.cast(ops.matmul(h, self.head_kernel) + self.head_bias,
                    "float32")

  def _tail_logits(self, k, h):
    projection, kernel, bias = self.tails[k]
    return ops.cast(ops.matmul(ops.matmul(h, projection), kernel) + bias,
                    "float32")

  def call(self, h):
    """<float>[..., depth] -> <float32>[..., vocab_size] log-probabilities."""
    head = tf.nn.log_softmax(self._head_logits(h))
    shortlist = self.cutoffs[0]
    parts = [head[..., :shortlist]]
    for k in range(len(self.clusters)):
      parts.append(tf.nn.log_softmax(self._tail_logits(k, h))
                   + head[..., shortlist + k:shortlist + k + 1])
    return tf.concat(parts, axis=-1)

  def nll(self, h, targets):
    """Each target's negative log-likelihood (0 at padding), computing the
    head everywhere and each cluster at its own targets' positions only.

    Args:
      h: <float>[batch, time, depth] hidden states.
      targets: <int>[batch, time] ids, 0 = padding.

    Returns:
      <float32>[batch, time].
    """
    targets = tf.cast(targets, tf.int32)
    flat_h = tf.reshape(h, [-1, tf.shape(h)[-1]])
    flat_targets = tf.reshape(targets, [-1])
    shortlist = self.cutoffs[0]
    # A tail word's head class is its cluster's entry after the shortlist.
    cluster = tf.searchsorted(tf.constant(self.cutoffs, tf.int32),
                              flat_targets, side="right")
    head_targets = tf.where(cluster > 0, shortlist + cluster - 1, flat_targets)
    nll = tf.nn.sparse_softmax_cross_entropy_with_logits(
        head_targets, self._head_logits(flat_h))
    for k, (lo, _) in enumerate(self.clusters):
      rows = tf.where(cluster == k + 1)
      within = tf.gather_nd(flat_targets, rows) - lo
      nll = tf.tensor_scatter_nd_add(
          nll, rows, tf.nn.sparse_softmax_cross_entropy_with_logits(
              within, self._tail_logits(k, tf.gather_nd(flat_h, rows))))
    nll = tf.reshape(nll, tf.shape(targets))
    return nll * tf.cast(targets != 0, nll.dtype)

  def get_config(self):
    return {**super().get_config(), "cutoffs": self.cutoffs,
            "factor": self.factor}
