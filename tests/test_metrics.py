import numpy as np
import pytest
import tensorflow as tf

from kerasrnn.models import metrics
from kerasrnn.models.metrics import Perplexity
from kerasrnn.models.metrics import SequenceLoss
from kerasrnn.models.metrics import token_nll


def _log_softmax(logits):
  z = logits - logits.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _reference_perplexity(sentences, logits):
  nll = [-_log_softmax(l)[np.arange(len(s)), s].sum()
         for s, l in zip(sentences, logits)]
  return np.exp(sum(nll) / sum(len(s) for s in sentences))


@pytest.fixture
def sentences():
  rng = np.random.default_rng(0)
  lengths = [3, 9, 1, 6, 4, 7, 2]
  s = [rng.integers(1, 11, n) for n in lengths]
  l = [rng.normal(size=(n, 11)).astype(np.float32) * 3 for n in lengths]
  return s, l


def _padded(sentences, logits, rows, width):
  y = np.zeros((len(rows), width), np.int32)
  z = np.zeros((len(rows), width, 11), np.float32)
  for i, r in enumerate(rows):
    y[i, :len(sentences[r])] = sentences[r]
    z[i, :len(sentences[r])] = logits[r]
  return y, z


@pytest.mark.parametrize("batches,width", [
    ([[0], [1], [2], [3], [4], [5], [6]], 9),
    ([[0, 1, 2, 3, 4, 5, 6]], 9),
    ([[0, 1, 2, 3, 4, 5, 6]], 40),
    ([[1, 3], [0, 2, 4, 6], [5]], 12),
])
def test_perplexity_is_independent_of_batching_and_padding(
    sentences, batches, width):
  s, l = sentences
  metric = Perplexity()
  for rows in batches:
    metric.update_state(*_padded(s, l, rows, width))
  np.testing.assert_allclose(float(metric.result()),
                             _reference_perplexity(s, l), rtol=1e-6)
  assert int(metric.count.numpy()) == sum(len(x) for x in s)


def test_uniform_logits_give_the_vocabulary_size():
  metric = Perplexity()
  metric.update_state(np.array([[3, 5, 0]]), np.zeros((1, 3, 11), np.float32))
  np.testing.assert_allclose(float(metric.result()), 11, rtol=1e-6)


def test_token_nll_is_zero_at_padding(sentences):
  s, l = sentences
  y, z = _padded(s, l, [0, 1], 9)
  nll = token_nll(y, z).numpy()
  assert (nll[y == 0] == 0).all() and (nll[y != 0] > 0).all()


def test_sequence_loss_sums_over_time_and_averages_over_rows(sentences):
  s, l = sentences
  y, z = _padded(s, l, [0, 1, 2], 9)
  expected = sum(-_log_softmax(l[r])[np.arange(len(s[r])), s[r]].sum()
                 for r in range(3)) / 3
  np.testing.assert_allclose(float(SequenceLoss()(y, z)), expected, rtol=1e-5)


def test_fused_nll_equals_tensorflows_op_in_value_and_gradient():
  rng = np.random.default_rng(3)
  vocab = metrics.FUSED_MIN_VOCAB
  targets = rng.integers(0, vocab, (4, 6)).astype("int32")
  targets[:, -2:] = 0  # Padding.
  logits = tf.constant(rng.normal(0, 3, (4, 6, vocab)).astype("float32"))
  upstream = tf.constant(rng.normal(size=(4, 6)).astype("float32"))

  def value_and_gradient(nll_fn, x):
    with tf.GradientTape() as tape:
      tape.watch(x)
      nll = nll_fn(x)
      loss = tf.reduce_sum(nll * upstream)
    return nll, tape.gradient(loss, x)

  mask = (targets != 0).astype("float32")
  stock = value_and_gradient(
      lambda x: tf.nn.sparse_softmax_cross_entropy_with_logits(targets, x)
      * mask, logits)
  fused = value_and_gradient(lambda x: token_nll(targets, x), logits)
  # Dynamic shapes (sentence mode's buckets) take TensorFlow's op.
  dynamic = tf.function(
      lambda x: value_and_gradient(lambda z: token_nll(targets, z), x),
      input_signature=[tf.TensorSpec([None, None, vocab], tf.float32)])
  for got in (fused, dynamic(logits)):
    np.testing.assert_allclose(got[0], stock[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[1], stock[1], rtol=1e-5, atol=1e-6)
  assert (fused[1].numpy()[targets == 0] == 0).all()
