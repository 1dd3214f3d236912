import numpy as np
import pytest
import tensorflow as tf

from conftest import sentences_of
from conftest import smoke_config
from kerasrnn.data import corpus as corpus_lib
from kerasrnn.data import pipelines
from kerasrnn.data import text
from kerasrnn.data.summary import pipeline_stats
from kerasrnn.errors import UserError


def _batches(ds):
  return [(x, y) for x, y in ds.as_numpy_iterator()]


@pytest.fixture
def tiny(tiny_dir):
  config = smoke_config(tiny_dir)
  return config, corpus_lib.load_corpus(config.data)


def test_stream_rows_are_contiguous_and_targets_shift_by_one(tiny):
  config, corpus = tiny
  split = corpus.splits["train"]  # 29 tokens.
  row_len, windows = pipelines.stream_layout(split, 3, 4)
  assert (row_len, windows) == (9, 3)
  read = [pipelines.stream_window(split, 3, 4, w) for w in range(windows)]
  inputs = np.concatenate([x for x, _ in read], axis=1)
  targets = np.concatenate([y for _, y in read], axis=1)
  for r in range(3):
    real = split.ids[r * row_len:(r + 1) * row_len]
    np.testing.assert_array_equal(targets[r, :row_len], real)
    np.testing.assert_array_equal(inputs[r, 1:row_len], real[:-1])
    assert not targets[r, row_len:].any()  # Only the last window is padded.
    # Each row starts from the token before it: <eos> for the first.
    assert inputs[r, 0] == (split.ids[r * row_len - 1] if r else text.EOS_ID)
  batches = _batches(pipelines.make_dataset(
      smoke_config("", overrides={"data.batch_size": 3,
                                  "data.num_steps": 4}).data, corpus, "train"))
  for (x, y), (x_read, y_read) in zip(batches, read, strict=True):
    np.testing.assert_array_equal(x, x_read)
    np.testing.assert_array_equal(y, y_read)


@pytest.mark.parametrize("first,count", [(0, 2), (2, 2), (1, 3), (3, 1)])
def test_a_replicas_rows_are_those_rows_of_the_batch(tiny, first, count):
  _, corpus = tiny
  split = corpus.splits["train"]
  for w in range(pipelines.stream_layout(split, 4, 3)[1]):
    whole = pipelines.stream_window(split, 4, 3, w)
    part = pipelines.stream_window(split, 4, 3, w, rows=(first, count))
    for a, b in zip(part, whole):
      np.testing.assert_array_equal(a, b[first:first + count])


def test_stream_dataset_has_fixed_batch_shape(tiny):
  config, corpus = tiny
  config.data.batch_size, config.data.num_steps = 2, 5
  for x, y in _batches(pipelines.make_dataset(config.data, corpus, "train")):
    assert x.shape == y.shape == (2, 5)


def test_stream_batch_larger_than_split_is_refused(tiny):
  config, corpus = tiny
  with pytest.raises(UserError, match="shorter than data.batch_size"):
    pipelines.stream_layout(corpus.splits["test"], 1000, 5)


def test_sentence_mode_targets_every_token_once(tiny):
  config, corpus = tiny
  config.data.mode, config.data.batch_size = "sentence", 2
  for name, split in corpus.splits.items():
    ds = pipelines.make_dataset(config.data, corpus, name, training=True)
    targets = sorted(tuple(y[y > 0]) for _, y in _batches(ds) for y in y
                     if y.any())  # Not a bucket's last batch's empty rows.
    expected = sorted(tuple(s) for s in sentences_of(split))
    assert targets == expected


def test_sentence_inputs_start_with_eos_and_shift(tiny):
  config, corpus = tiny
  config.data.mode, config.data.batch_size = "sentence", 1
  for x, y in _batches(pipelines.make_dataset(config.data, corpus, "valid")):
    assert x[0, 0] == text.EOS_ID
    np.testing.assert_array_equal(x[0, 1:], y[0, :-1])


def _sentences_from_chunks(batches):
  """The sentences a stream of chunks holds, read as the model reads them:
  a row whose first input is <eos> starts a sentence, any other row with
  targets goes on with that row's sentence of the step before."""
  done, current = [], {}
  for x, y in batches:
    assert x.shape == y.shape
    for r in range(len(x)):
      length = int((y[r] > 0).sum())
      if not length:
        continue
      np.testing.assert_array_equal(x[r, 1:length], y[r, :length - 1])
      if x[r, 0] == text.EOS_ID:
        if r in current:
          done.append(current.pop(r))
        current[r] = []
      else:  # The word before is the last target of that row's last chunk.
        assert x[r, 0] == current[r][-1]
      current[r] += y[r, :length].tolist()
  return sorted(done + list(current.values()))


@pytest.mark.parametrize("max_length", [2, 3, 5, 100])
def test_long_sentences_are_read_in_chunks_that_continue(tiny, max_length):
  config, corpus = tiny
  config.data.mode, config.data.max_length = "sentence", max_length
  config.data.batch_size, config.data.num_buckets = 2, 2
  for name, split in corpus.splits.items():
    layout = pipelines.Layout(config.data, corpus, name, training=True)
    batches = _batches(layout.dataset(0, layout.steps_per_epoch))
    assert len(batches) == layout.steps_per_epoch
    assert max(x.shape[1] for x, _ in batches) <= max_length
    assert all(x.shape[0] == 2 for x, _ in batches)
    assert _sentences_from_chunks(batches) == sorted(
        s.tolist() for s in sentences_of(split))
  # Every epoch the same number of steps, whatever its order.
  layout = pipelines.Layout(config.data, corpus, "train", training=True)
  for epoch in range(4):
    assert layout.plan(epoch)[2][-1] == layout.steps_per_epoch


def test_bucketing_cuts_padding(tiny):
  config, corpus = tiny
  config.data.mode, config.data.batch_size = "sentence", 2
  config.data.bucket_boundaries = (4, 6, 8)
  for x, y in _batches(pipelines.make_dataset(config.data, corpus, "train")):
    lengths = (y > 0).sum(axis=1)
    assert x.shape[1] == lengths.max()
    assert len(set(np.searchsorted([4, 6, 8], lengths[lengths > 0],
                                   "right"))) == 1


def test_quantile_boundaries_increase():
  assert pipelines.bucket_boundaries([1, 2, 2, 3, 9, 9, 30], 4) == [3, 4, 10]


def test_evaluation_order_is_deterministic_and_training_shuffles(tiny):
  config, corpus = tiny
  config.data.mode, config.data.batch_size = "sentence", 1
  order = lambda training, epoch=0: [y.tolist() for _, y in _batches(
      pipelines.make_dataset(config.data, corpus, "train", training,
                             epoch=epoch))]
  assert order(False) == order(False)
  assert order(True, 0) == order(True, 0)  # An epoch's order is fixed ...
  assert order(True, 0) != order(True, 1)  # ... and differs between epochs.
  assert sorted(order(True, 1)) == sorted(order(False))


@pytest.mark.parametrize("mode,max_length", [("stream", 100),
                                             ("sentence", 100),
                                             ("sentence", 3)])
def test_any_step_reads_the_batch_a_whole_run_reads_there(tiny, mode,
                                                          max_length):
  config, corpus = tiny
  config.data.mode, config.data.batch_size = mode, 2
  config.data.num_steps, config.data.num_buckets = 3, 2
  config.data.max_length = max_length
  layout = pipelines.Layout(config.data, corpus, "train", training=True)
  n = layout.steps_per_epoch
  epochs = [_batches(pipelines.make_dataset(config.data, corpus, "train",
                                            True, epoch=e)) for e in range(3)]
  whole = [b for epoch in epochs for b in epoch]
  assert len(whole) == 3 * n
  for start, stop in [(0, 3 * n), (1, n + 2), (n - 1, n + 1), (2 * n, 3 * n)]:
    part = _batches(layout.dataset(start, stop))
    assert len(part) == stop - start
    for (x, y), (wx, wy) in zip(part, whole[start:stop], strict=True):
      np.testing.assert_array_equal(x, wx)
      np.testing.assert_array_equal(y, wy)


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_batch_plan_is_tf_datas_bucketing(batch_size):
  rng = np.random.default_rng(batch_size)
  lengths = rng.integers(1, 30, size=101)
  order = rng.permutation(len(lengths))
  boundaries = np.array([5, 9, 17])
  pieces, starts = pipelines.plan_batches(lengths, order, batch_size,
                                          boundaries)
  planned = [pieces[a:b].tolist() for a, b in zip(starts[:-1], starts[1:])]
  ds = tf.data.Dataset.from_tensor_slices(order).bucket_by_sequence_length(
      lambda i: tf.cast(tf.gather(lengths, i), tf.int32), boundaries.tolist(),
      [batch_size] * 4)
  assert planned == [b.tolist() for b in ds.as_numpy_iterator()]


@pytest.mark.slow
def test_ptb_sentence_mode_targets_and_padding(ptb_dir):
  config = smoke_config(ptb_dir, overrides={
      "data.max_tokens": 0, "data.mode": "sentence", "data.batch_size": 20,
      "data.num_buckets": 32})
  corpus = corpus_lib.load_corpus(config.data)
  for name, split in corpus.splits.items():
    stats = pipeline_stats(pipelines.make_dataset(config.data, corpus, name,
                                                  training=name == "train"))
    assert stats["target_tokens"] == split.num_tokens
    if name == "train":
      assert stats["padding_overhead"] <= 0.05


def test_ptb_stream_drops_less_than_one_batch(ptb_dir):
  config = smoke_config(ptb_dir, overrides={"data.max_tokens": 0,
                                            "data.batch_size": 20})
  corpus = corpus_lib.load_corpus(config.data)
  for name, split in corpus.splits.items():
    targets = pipeline_stats(pipelines.make_dataset(config.data, corpus,
                                                    name))["target_tokens"]
    assert targets == pipelines.num_targets(config.data, split)
    assert 0 <= split.num_tokens - targets < 20
