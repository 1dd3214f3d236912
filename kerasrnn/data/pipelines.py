"""tf.data pipelines: the one place that turns a corpus split into batches.

Two layouts, both yielding (inputs, targets) <int32>[batch, time] with 0 as
padding, and both making every token of a split a target exactly once:

- stream: the split as one token stream (<eos> first, as the start symbol)
  laid out as `batch_size` contiguous rows and cut into `num_steps` windows;
  row r of batch i+1 continues row r of batch i, so a stateful RNN carries its
  state. The last window is padded; fewer than `batch_size` tokens are dropped.
- sentence: one example per sentence, `<eos> w1 … wn` -> `w1 … wn <eos>`,
  cut into pieces of at most `max_length`, padded per batch, batched by
  length buckets to cut padding.
"""
import dataclasses

import numpy as np
import tensorflow as tf

from kerasrnn.data import text
from kerasrnn.errors import UserError


@dataclasses.dataclass
class Stream:
  inputs: np.ndarray  # <int32>[windows, batch, num_steps]
  targets: np.ndarray
  dropped: int  # Tokens left over after cutting the stream into rows.


def stream_windows(split, batch_size, num_steps):
  """Lays out a split's token stream for truncated BPTT (see module doc)."""
  n = split.num_tokens
  row_len = n // batch_size
  if row_len == 0:
    raise UserError(f"a split of {n} tokens is shorter than data.batch_size="
                    f"{batch_size}; lower the batch size")
  inputs = shifted_inputs(split)
  windows = -(-row_len // num_steps)
  pad = windows * num_steps - row_len

  def layout(a):
    a = a[:batch_size * row_len].reshape(batch_size, row_len)
    a = np.pad(a, ((0, 0), (0, pad)))
    return a.reshape(batch_size, windows, num_steps).transpose(1, 0, 2)

  return Stream(layout(inputs), layout(split.ids), n - batch_size * row_len)


def sentence_pieces(split, max_length):
  """Returns <int64>[pieces, 2] (start, end) offsets into the token stream.

  A piece is a sentence, or a part of at most `max_length` tokens of a longer
  one. Its inputs are the stream shifted by one (see `shifted_inputs`), so a
  sentence starts from the previous sentence's closing <eos> (the start
  symbol) and a later piece of a long sentence from the word before it.
  """
  pieces = [(s, min(s + max_length, end))
            for start, end in zip(split.row_splits[:-1], split.row_splits[1:])
            for s in range(start, end, max_length)]
  return np.array(pieces, np.int64).reshape(-1, 2)


def shifted_inputs(split):
  """The inputs of every target: <eos>, then the split's tokens but the last."""
  return np.concatenate([[text.EOS_ID], split.ids[:-1]]).astype(np.int32)


def bucket_boundaries(lengths, num_buckets):
  """Length-quantile boundaries: buckets of about equal numbers of examples."""
  qs = np.quantile(lengths, np.linspace(0, 1, num_buckets + 1)[1:-1])
  return sorted(set(int(np.ceil(q)) + 1 for q in qs))


def make_dataset(data, corpus, split, training=False, batch_size=None,
                 epoch=0):
  """Builds the tf.data pipeline of one split for the configured mode.

  Args:
    data: the `config.data` ConfigDict (mode, batch_size, num_steps, ...).
    corpus: a `kerasrnn.data.corpus.Corpus`.
    split: 'train', 'valid' or 'test'.
    training: shuffle (sentence mode); evaluation order is deterministic.
    batch_size: overrides data.batch_size (e.g. for evaluation).
    epoch: which training epoch's order (sentence mode): an int, or an int64
      `tf.Variable` (see `epoch_variable`) read each time the dataset is
      iterated. The order is a function of (data.seed, epoch) alone, so a
      resumed run sees the orders an uninterrupted one sees, and every
      worker of a distributed run the same.

  Returns:
    A `tf.data.Dataset` of (inputs, targets) <int32>[batch, time].
  """
  batch_size = batch_size or data.batch_size
  if batch_size <= 0:
    raise UserError(f"batch size {batch_size} must be positive")
  if data.mode == "stream":
    s = stream_windows(corpus.splits[split], batch_size, data.num_steps)
    return prefetch(tf.data.Dataset.from_tensor_slices((s.inputs, s.targets)))
  pieces = sentence_pieces(corpus.splits[split], data.max_length)
  inputs = tf.constant(shifted_inputs(corpus.splits[split]))
  targets = tf.constant(corpus.splits[split].ids)
  if training:
    ds = tf.data.Dataset.from_tensors(pieces).flat_map(
        lambda p: tf.data.Dataset.from_tensor_slices(
            tf.random.experimental.stateless_shuffle(p, seed=tf.stack([
                tf.constant(data.seed, tf.int64), tf.cast(epoch, tf.int64)]))))
  else:
    ds = tf.data.Dataset.from_tensor_slices(pieces)
  ds = ds.map(lambda p: (inputs[p[0]:p[1]], targets[p[0]:p[1]]))
  lengths = pieces[:, 1] - pieces[:, 0]
  if data.bucket:
    boundaries = list(data.bucket_boundaries) or bucket_boundaries(
        [min(n, data.max_length) for n in corpus.splits["train"].lengths],
        data.num_buckets)
    ds = ds.bucket_by_sequence_length(
        lambda x, y: tf.shape(x)[0], boundaries,
        [batch_size] * (len(boundaries) + 1))
    per_bucket = np.bincount(np.searchsorted(boundaries, lengths, "right"))
  else:
    ds = ds.padded_batch(batch_size)
    per_bucket = np.array([len(lengths)])
  # Each bucket ends with one partial batch, so the count is known; telling
  # tf.data lets Keras show progress (and checks the arithmetic).
  batches = int(np.sum(-(-per_bucket // batch_size)))
  ds = ds.apply(tf.data.experimental.assert_cardinality(batches))
  if not training:
    ds = ds.cache()
  return prefetch(ds)


def epoch_variable():
  """The epoch a training pipeline reads; `fit` sets it at each epoch's start.

  Create it outside any `tf.distribute` strategy scope (a plain variable on
  the host, where the input pipeline runs).
  """
  return tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")


def prefetch(ds):
  """Prefetches a few batches, with tf.data's autotuner off.

  The autotuner's thread sleeps in doubling intervals, and deleting an
  iterator waits for it to wake: measured here, `fit` and `evaluate` then
  returned only on a 5.12 s grid (up to 5 s lost per pass, and misleading
  benchmarks). These pipelines slice tensors in memory; two batches ahead
  are plenty.
  """
  options = tf.data.Options()
  options.autotune.enabled = False
  return ds.prefetch(2).with_options(options)


def num_targets(data, split, batch_size=None):
  """Target tokens per pass over `split` (stream mode drops < batch_size)."""
  if data.mode == "stream":
    batch_size = batch_size or data.batch_size
    return split.num_tokens // batch_size * batch_size
  return split.num_tokens
