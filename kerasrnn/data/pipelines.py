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

Both read each batch's tokens when it is needed, from the split's ids (a
memory map of the token store), so a pipeline's memory does not grow with
the corpus.
"""
import numpy as np
import tensorflow as tf

from kerasrnn.data import text
from kerasrnn.errors import UserError


def stream_layout(split, batch_size, num_steps):
  """(row length, windows) of a split's stream cut into `batch_size` rows."""
  row_len = split.num_tokens // batch_size
  if row_len == 0:
    raise UserError(f"a split of {split.num_tokens} tokens is shorter than "
                    f"data.batch_size={batch_size}; lower the batch size")
  return row_len, -(-row_len // num_steps)


def stream_window(split, batch_size, num_steps, window, rows=None):
  """(inputs, targets) <int32>[batch_size, num_steps] of one window.

  Row r of the stream is tokens [r * row_len, (r + 1) * row_len); a target's
  input is the token before it (<eos> before the first). The last window is
  padded with 0. Reads only the window's tokens (the ids may be a memory
  map of the token store).

  Args:
    rows: (first, count): only rows [first, first + count) of the batch
      (one replica's share of it under tf.distribute); None = all.
  """
  first, count = rows or (0, batch_size)
  row_len, _ = stream_layout(split, batch_size, num_steps)
  ids = split.ids[first * row_len:(first + count) * row_len].reshape(
      count, row_len)
  start = window * num_steps
  length = min(num_steps, row_len - start)
  inputs = np.zeros((count, num_steps), np.int32)
  targets = np.zeros((count, num_steps), np.int32)
  targets[:, :length] = ids[:, start:start + length]
  if start:
    inputs[:, :length] = ids[:, start - 1:start + length - 1]
  else:
    inputs[:, 1:length] = ids[:, :length - 1]
    # Each row goes on from the previous row's last token; the first row
    # starts after <eos>.
    before = np.arange(first, first + count) * row_len - 1
    inputs[:, 0] = split.ids[np.maximum(before, 0)]
    inputs[before < 0, 0] = text.EOS_ID
  return inputs, targets


def sentence_pieces(split, max_length):
  """Returns <int64>[pieces, 2] (start, end) offsets into the token stream.

  A piece is a sentence, or a part of at most `max_length` tokens of a longer
  one. Its inputs are the stream shifted by one (see `read_piece`), so a
  sentence starts from the previous sentence's closing <eos> (the start
  symbol) and a later piece of a long sentence from the word before it.
  """
  starts, ends = split.row_splits[:-1], split.row_splits[1:]
  per_sentence = -(-(ends - starts) // max_length)
  first = np.repeat(starts, per_sentence)
  index = np.arange(len(first)) - np.repeat(
      np.cumsum(per_sentence) - per_sentence, per_sentence)
  piece_starts = first + index * max_length
  piece_ends = np.minimum(piece_starts + max_length,
                          np.repeat(ends, per_sentence))
  return np.stack([piece_starts, piece_ends], axis=1).astype(np.int64)


def read_piece(split, start, end):
  """(inputs, targets) <int32>[end - start] of tokens [start, end): the
  targets, and the tokens before them (<eos> before the split's first)."""
  targets = np.asarray(split.ids[start:end], np.int32)
  inputs = np.empty_like(targets)
  inputs[1:] = targets[:-1]
  inputs[0] = split.ids[start - 1] if start else text.EOS_ID
  return inputs, targets


def bucket_boundaries(lengths, num_buckets):
  """Length-quantile boundaries: buckets of about equal numbers of examples."""
  qs = np.quantile(lengths, np.linspace(0, 1, num_buckets + 1)[1:-1])
  return sorted(set(int(np.ceil(q)) + 1 for q in qs))


def make_dataset(data, corpus, split, training=False, batch_size=None,
                 epoch=0, rows=None):
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
    rows: stream mode: (first, count), only these rows of each batch
      (`stream_window`).

  Returns:
    A `tf.data.Dataset` of (inputs, targets) <int32>[batch, time].
  """
  batch_size = batch_size or data.batch_size
  if batch_size <= 0:
    raise UserError(f"batch size {batch_size} must be positive")
  split_ids = corpus.splits[split]
  if data.mode == "stream":
    _, windows = stream_layout(split_ids, batch_size, data.num_steps)
    shape = ((rows or (0, batch_size))[1], data.num_steps)
    ds = tf.data.Dataset.range(windows).map(
        lambda i: _numpy(lambda w: stream_window(
            split_ids, batch_size, data.num_steps, w, rows), [i],
                         [shape, shape]))
    return prefetch(ds.apply(tf.data.experimental.assert_cardinality(windows)))
  pieces = sentence_pieces(split_ids, data.max_length)
  if training:
    ds = tf.data.Dataset.from_tensors(pieces).flat_map(
        lambda p: tf.data.Dataset.from_tensor_slices(
            tf.random.experimental.stateless_shuffle(p, seed=tf.stack([
                tf.constant(data.seed, tf.int64), tf.cast(epoch, tf.int64)]))))
  else:
    ds = tf.data.Dataset.from_tensor_slices(pieces)
  ds = ds.map(lambda p: _numpy(lambda s, e: read_piece(split_ids, s, e),
                               [p[0], p[1]], [[None], [None]]))
  lengths = pieces[:, 1] - pieces[:, 0]
  if data.bucket:
    boundaries = list(data.bucket_boundaries) or bucket_boundaries(
        np.minimum(corpus.splits["train"].lengths, data.max_length),
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


def _numpy(function, args, shapes):
  """`function` on NumPy values inside a tf.data map: int32 outputs."""
  outputs = tf.numpy_function(function, args, [tf.int32] * len(shapes),
                              stateful=False)
  return tuple(tf.ensure_shape(o, s) for o, s in zip(outputs, shapes))


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
  benchmarks). These pipelines read batches from memory maps; two ahead
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
