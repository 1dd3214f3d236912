"""tf.data pipelines: the one place that turns a corpus split into batches.

Two layouts, both yielding (inputs, targets) <int32>[batch, time] with 0 as
padding, and both making every token of a split a target exactly once:

- stream: the split as one token stream (<eos> first, as the start symbol)
  laid out as `batch_size` contiguous rows and cut into `num_steps` windows;
  row r of batch i+1 continues row r of batch i, so a stateful RNN carries its
  state. The last window is padded; fewer than `batch_size` tokens are dropped.
- sentence: one row per sentence, `<eos> w1 … wn` -> `w1 … wn <eos>`,
  batched by length buckets to cut padding, padded per batch, and read in
  chunks of at most `max_length` positions that carry the recurrent state
  from one to the next (truncated BPTT within the sentence), so that a
  long sentence is scored as one whatever max_length is.

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


def bucket_boundaries(lengths, num_buckets):
  """Length-quantile boundaries: buckets of about equal numbers of examples."""
  qs = np.quantile(lengths, np.linspace(0, 1, num_buckets + 1)[1:-1])
  return sorted(set(int(np.ceil(q)) + 1 for q in qs))


def chunk_boundaries(boundaries, chunk, longest):
  """`boundaries` (or none) with one at every multiple of `chunk` (+ 1) up to
  `longest`: the sentences of one bucket then span the same number of
  chunks, so every batch of a bucket is that many steps."""
  multiples = range(chunk + 1, longest + 1, chunk)
  merged = sorted(set(boundaries if boundaries is not None else ()) |
                  set(multiples))
  return np.asarray(merged, np.int64) if merged else None


def epoch_order(num_sentences, seed, epoch):
  """The order of a training epoch's sentences: a function of (seed, epoch).

  TensorFlow's stateless shuffle (eager: call it outside tf.data), the
  order kerasrnn has always drawn, so runs of earlier versions reproduce.
  """
  # int32 draws the same order as int64, in half the memory.
  dtype = tf.int32 if num_sentences < 2**31 else tf.int64
  return tf.random.experimental.stateless_shuffle(
      tf.range(num_sentences, dtype=dtype),
      seed=tf.constant([seed, epoch], tf.int64)).numpy()


def plan_batches(lengths, order, batch_size, boundaries=None):
  """The batches of one pass: which sentences each batch holds, in order.

  The sentences come in `order`; without `boundaries` every `batch_size`
  of them make a batch. With length buckets (a sentence of length n goes to
  bucket `searchsorted(boundaries, n, "right")`), a bucket's batch is
  complete at its `batch_size`-th sentence and comes then; what is left in
  the buckets at the end comes last, bucket by bucket (as tf.data's
  `bucket_by_sequence_length` does). Computed from the lengths alone, so
  any batch of a pass is found without reading the ones before it.

  Returns:
    (sentences, starts): batch b holds sentences[starts[b]:starts[b + 1]].
  """
  n = len(order)
  if boundaries is None or not n:
    return order, np.append(np.arange(0, n, batch_size), n)
  # Positions and batch numbers in int32 (an array of n each: at a billion
  # tokens, tens of millions of sentences).
  index = np.int32 if n < 2**31 else np.int64
  bucket = np.searchsorted(boundaries, lengths[order], "right").astype(index)
  by_bucket = np.argsort(bucket, kind="stable").astype(index)  # In `order`.
  counts = np.bincount(bucket, minlength=len(boundaries) + 1)
  del bucket
  first = np.cumsum(counts) - counts
  batches = -(-counts // batch_size)
  # Each position of by_bucket: its bucket's first batch + rank // batch_size.
  batch = (np.arange(n, dtype=index) - np.repeat(first, counts).astype(index)
           ) // batch_size + np.repeat(np.cumsum(batches) - batches,
                                       counts).astype(index)
  # A batch comes when its last sentence arrives, or at the end if partial.
  last = np.zeros(batch[-1] + 1, np.int64)
  np.maximum.at(last, batch, by_bucket)
  size = np.bincount(batch)
  ready = np.where(size == batch_size, last, n + np.arange(len(size)))
  emitted = np.argsort(ready, kind="stable")  # Batches in the order they come.
  rank_of_batch = np.argsort(emitted, kind="stable").astype(index)
  sequence = np.argsort(rank_of_batch[batch], kind="stable").astype(index)
  del batch
  sentences = order[by_bucket[sequence]]
  return sentences, np.concatenate([[0], np.cumsum(size[emitted])])


def read_batch(split, windows, rows=None):
  """(inputs, targets) <int32>[rows, longest], right-padded with 0, of the
  windows [[start, end], ...] of the token stream: each its targets and the
  tokens before them (<eos> before the split's first). One read for the
  whole batch; rows past len(windows) (up to `rows`) are all padding."""
  starts, ends = windows[:, 0], windows[:, 1]
  lengths = ends - starts
  width = int(lengths.max(initial=0))
  position = starts[:, None] + np.arange(width)
  real = np.arange(width) < lengths[:, None]
  ids = np.asarray(split.ids)
  targets = np.where(real, ids[np.where(real, position, 0)], 0)
  before = np.maximum(position - 1, 0)
  inputs = np.where(real, ids[np.where(real, before, 0)], 0)
  inputs[(starts == 0) & (lengths > 0), 0] = text.EOS_ID
  extra = ((0, (rows or len(windows)) - len(windows)), (0, 0))
  return (np.pad(inputs.astype(np.int32), extra),
          np.pad(targets.astype(np.int32), extra))


class Layout:
  """How one split is cut into batches, step by step.

  A pass over the split is `steps_per_epoch` batches. Step g of a training
  run is batch g mod steps_per_epoch of epoch g // steps_per_epoch, and
  `batch(g)` reads it directly: in stream mode the window (each row
  continuing the row of the step before, whose state the model carries);
  in sentence mode a chunk of a batch of whole sentences. So a run may
  start at any step without reading the batches before it, and a resumed
  run reads what an uninterrupted one reads.

  Sentence mode: each epoch's order of the sentences (`epoch_order`) is
  batched by length buckets (`plan_batches`), `batch_size` rows a batch
  (a bucket's last batch filled up with empty rows), and a batch is read
  in chunks of at most `data.max_length` positions, one step each: row r
  of chunk c + 1 goes on with the sentence of row r of chunk c, whose
  recurrent state the model carries, and a row whose first input is <eos>
  starts a sentence (the model starts it from zero state). The bucket
  boundaries include every multiple of max_length (`chunk_boundaries`), so
  all batches of a bucket are the same number of chunks and an epoch the
  same number of steps whatever its order.

  Args:
    data: the `config.data` ConfigDict.
    corpus: a `kerasrnn.data.corpus.Corpus`.
    split: 'train', 'valid' or 'test'.
    training: sentence mode: each epoch in its own shuffled order;
      otherwise every pass in the split's order.
    batch_size: overrides data.batch_size (e.g. for evaluation).
    rows: stream mode: (first, count), only these rows of each batch
      (`stream_window`).
  """

  def __init__(self, data, corpus, split, training=False, batch_size=None,
               rows=None):
    self.data = data
    self.split = corpus.splits[split]
    self.training = training
    self.batch_size = batch_size or data.batch_size
    if self.batch_size <= 0:
      raise UserError(f"batch size {self.batch_size} must be positive")
    self.rows = rows
    if data.mode == "stream":
      _, self.steps_per_epoch = stream_layout(self.split, self.batch_size,
                                              data.num_steps)
      return
    self.lengths = self.split.lengths
    self.chunk = data.max_length
    boundaries = None
    if data.bucket:
      boundaries = list(data.bucket_boundaries) or bucket_boundaries(
          np.minimum(corpus.splits["train"].lengths, self.chunk),
          data.num_buckets)
    self.boundaries = chunk_boundaries(boundaries, self.chunk,
                                       int(self.lengths.max(initial=0)))
    if self.boundaries is None:
      per_bucket = np.array([len(self.lengths)])
      chunks = np.array([1])
    else:
      bucket = np.searchsorted(self.boundaries, self.lengths, "right")
      per_bucket = np.bincount(bucket, minlength=len(self.boundaries) + 1)
      longest = np.zeros(len(per_bucket), np.int64)
      np.maximum.at(longest, bucket, self.lengths)
      chunks = np.maximum(-(-longest // self.chunk), 1)
    self.steps_per_epoch = int(np.sum(-(-per_bucket // self.batch_size) *
                                      chunks))

  def plan(self, epoch):
    """(sentences, starts, first steps) of one epoch's batches: batch b
    holds sentences[starts[b]:starts[b + 1]] and is steps
    [first[b], first[b + 1]) of the epoch."""
    order = (epoch_order(len(self.lengths), self.data.seed, epoch)
             if self.training else np.arange(len(self.lengths)))
    sentences, starts = plan_batches(self.lengths, order, self.batch_size,
                                     self.boundaries)
    longest = np.maximum.reduceat(self.lengths[sentences], starts[:-1]) if (
        len(sentences)) else np.zeros(0, np.int64)
    first = np.concatenate([[0], np.cumsum(-(-longest // self.chunk))])
    return sentences, starts, first

  def batch(self, step, plans=None):
    """(inputs, targets) <int32>[batch, time] of global step `step`.

    Args:
      plans: sentence mode: {epoch: `plan(epoch)`} of the step's epoch.
    """
    epoch, index = divmod(int(step), self.steps_per_epoch)
    if self.data.mode == "stream":
      return stream_window(self.split, self.batch_size, self.data.num_steps,
                           index, self.rows)
    sentences, starts, first = plans[epoch] if plans else self.plan(epoch)
    b = int(np.searchsorted(first, index, "right")) - 1
    chosen = sentences[starts[b]:starts[b + 1]]
    begin = self.split.row_splits[chosen] + (index - first[b]) * self.chunk
    end = self.split.row_splits[chosen + 1]
    begin = np.minimum(begin, end)  # Rows whose sentence has ended.
    return read_batch(self.split,
                      np.stack([begin, np.minimum(end, begin + self.chunk)],
                               axis=1), self.batch_size)

  def dataset(self, start=0, stop=None):
    """The batches of global steps [start, stop) (default: one pass)."""
    stop = self.steps_per_epoch if stop is None else stop
    if self.data.mode == "stream":
      shape = [(self.rows or (0, self.batch_size))[1], self.data.num_steps]
      read = self.batch
    else:
      shape = [self.batch_size, None]
      # The epochs' plans, computed here (they draw the order with
      # TensorFlow), read by the pipeline.
      epochs = range(start // self.steps_per_epoch,
                     (max(stop, start + 1) - 1) // self.steps_per_epoch + 1)
      plans = {e: self.plan(e if self.training else 0) for e in epochs}
      read = lambda step: self.batch(step, plans)
    ds = tf.data.Dataset.range(start, stop).map(
        lambda g: _numpy(read, [g], [shape, shape]))
    return prefetch(ds.apply(
        tf.data.experimental.assert_cardinality(stop - start)))


def make_dataset(data, corpus, split, training=False, batch_size=None,
                 epoch=0, rows=None):
  """The tf.data pipeline of one pass over a split (`Layout`).

  Args:
    data: the `config.data` ConfigDict (mode, batch_size, num_steps, ...).
    corpus: a `kerasrnn.data.corpus.Corpus`.
    split: 'train', 'valid' or 'test'.
    training: sentence mode: shuffle, in epoch `epoch`'s order (a function
      of data.seed and the epoch); evaluation order is the split's.
    batch_size: overrides data.batch_size (e.g. for evaluation).
    epoch: which training epoch.
    rows: stream mode: (first, count), only these rows of each batch.

  Returns:
    A `tf.data.Dataset` of (inputs, targets) <int32>[batch, time].
  """
  layout = Layout(data, corpus, split, training, batch_size, rows)
  n = layout.steps_per_epoch
  return layout.dataset(epoch * n, (epoch + 1) * n)


def _numpy(function, args, shapes):
  """`function` on NumPy values inside a tf.data map: int32 outputs."""
  outputs = tf.numpy_function(function, args, [tf.int32] * len(shapes),
                              stateful=False)
  return tuple(tf.ensure_shape(o, s) for o, s in zip(outputs, shapes))


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
