import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import score_in_requests
from conftest import smoke_config
import test_serving
from kerasrnn import config as config_lib
from kerasrnn import workdir as wd
from kerasrnn.errors import UserError
from kerasrnn.models import adaptive
from kerasrnn.models import build_model
from kerasrnn.models.parameters import model_parameters
from kerasrnn.serving import export
from kerasrnn.training import evaluation
from kerasrnn.training import train

VOCAB = 60
CUTOFFS = (10, 25)


def _layer(depth=12, seed=0):
  keras.utils.set_random_seed(seed)
  layer = adaptive.AdaptiveSoftmax(
      VOCAB, CUTOFFS, factor=2.0,
      kernel_initializer=keras.initializers.RandomUniform(-0.5, 0.5),
      bias_initializer=keras.initializers.RandomUniform(-0.5, 0.5))
  layer.build((None, None, depth))
  return layer


def _log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _reference(layer, h):
  """The distribution the weights define, written out in NumPy."""
  w = lambda v: v.numpy().astype(np.float64)
  head = _log_softmax(h @ w(layer.head_kernel) + w(layer.head_bias))
  parts = [head[..., :CUTOFFS[0]]]
  for k, (projection, kernel, bias) in enumerate(layer.tails):
    tail = _log_softmax(h @ w(projection) @ w(kernel) + w(bias))
    parts.append(tail + head[..., CUTOFFS[0] + k:CUTOFFS[0] + k + 1])
  return np.concatenate(parts, -1)


def test_log_probs_are_a_distribution_over_the_vocabulary():
  layer = _layer()
  h = np.random.default_rng(0).normal(size=(3, 7, 12)).astype(np.float32)
  log_probs = layer(h).numpy()
  assert log_probs.shape == (3, 7, VOCAB)
  np.testing.assert_allclose(np.exp(log_probs).sum(-1), 1.0, atol=1e-5)
  np.testing.assert_allclose(log_probs, _reference(layer, h.astype(np.float64)),
                             atol=1e-5)
  # They are their own log-softmax: the logits they imply.
  np.testing.assert_allclose(tf.nn.log_softmax(log_probs).numpy(), log_probs,
                             atol=1e-5)


def test_nll_is_the_full_distributions_and_zero_at_padding():
  layer = _layer()
  rng = np.random.default_rng(1)
  h = rng.normal(size=(4, 9, 12)).astype(np.float32)
  # Targets in the head, in both clusters, and padding.
  targets = rng.integers(0, VOCAB, size=(4, 9)).astype(np.int32)
  targets[0, :3] = [0, 11, 59]
  nll = layer.nll(h, targets).numpy()
  full = -np.take_along_axis(layer(h).numpy(), targets[..., None], -1)[..., 0]
  np.testing.assert_allclose(nll, np.where(targets == 0, 0.0, full), atol=1e-5)
  assert nll[0, 0] == 0.0


def test_nll_gradient_equals_the_full_distributions():
  layer = _layer()
  rng = np.random.default_rng(2)
  h = tf.constant(rng.normal(size=(2, 5, 12)).astype(np.float32))
  targets = tf.constant(rng.integers(1, VOCAB, size=(2, 5)).astype(np.int32))

  def gradients(loss):
    with tf.GradientTape() as tape:
      tape.watch(h)
      value = loss()
    return tape.gradient(value, [h] + layer.trainable_weights)

  fast = gradients(lambda: tf.reduce_sum(layer.nll(h, targets)))
  full = gradients(lambda: -tf.reduce_sum(
      tf.gather(layer(h), targets, batch_dims=2)))
  for a, b in zip(fast, full):
    np.testing.assert_allclose(tf.convert_to_tensor(a).numpy(),
                               tf.convert_to_tensor(b).numpy(), atol=1e-5)


def test_clusters_without_targets_add_nothing():
  # Every target in the head: the clusters' gathers are empty, their
  # scatter adds nothing, and the NLL is the head's alone.
  layer = _layer()
  h = np.ones((1, 3, 12), np.float32)
  targets = np.array([[1, 2, 3]], np.int32)
  assert max(targets.flat) < layer.cutoffs[0]
  nll = layer.nll(h, targets).numpy()
  want = -np.take_along_axis(layer(h).numpy(), targets[..., None], -1)[..., 0]
  np.testing.assert_allclose(nll, want, atol=1e-5)


@pytest.mark.parametrize("cutoffs", [(), (25, 10), (10, 10), (2,), (60,),
                                     (10, 70)])
def test_bad_cutoffs_are_one_line(cutoffs):
  with pytest.raises(UserError, match="adaptive_cutoffs") as error:
    adaptive.check_cutoffs(cutoffs, VOCAB)
  assert "\n" not in str(error.value)


@pytest.mark.parametrize("overrides,match", [
    ({}, "needs model.adaptive_cutoffs"),
    ({"model.adaptive_cutoffs": (10,), "model.tie_embeddings": True},
     "tie_embeddings"),
    ({"model.adaptive_cutoffs": (10,), "train.jit_compile": True},
     "jit_compile"),
    ({"model.adaptive_cutoffs": (10,), "model.adaptive_factor": 0.5},
     "adaptive_factor"),
])
def test_config_refusals(overrides, match):
  config = smoke_config("", overrides={"model.softmax": "adaptive",
                                       **overrides})
  with pytest.raises(UserError, match=match):
    config_lib.validate(config)


@pytest.mark.parametrize("mode", ["stream", "sentence"])
def test_model_parameters_match_keras(mode):
  config = smoke_config("", overrides={
      "model.softmax": "adaptive", "model.adaptive_cutoffs": CUTOFFS,
      "data.mode": mode})
  model = build_model(config, VOCAB)
  expected = model_parameters(config.model, VOCAB)
  assert model.get_layer("logits").count_params() == expected["logits"]
  assert model.count_params() == sum(expected.values())
  # The head (10 words + 2 clusters), 16 -> 4 -> 15 and 16 -> 1 -> 35.
  assert expected["logits"] == (16 * 12 + 12) + (16 * 4 + 4 * 15 + 15) + (
      16 * 1 + 1 * 35 + 35)


def test_model_target_nll_equals_its_log_probs():
  config = smoke_config("", overrides={
      "model.softmax": "adaptive", "model.adaptive_cutoffs": CUTOFFS,
      "data.mode": "sentence"})
  model = build_model(config, VOCAB)
  rng = np.random.default_rng(3)
  x = rng.integers(1, VOCAB, size=(3, 6)).astype(np.int32)
  x[1, 4:] = 0  # A shorter row.
  y = np.roll(x, -1, axis=1)
  y[:, -1] = 2
  y[x == 0] = 0
  nll = model.target_nll(x, y).numpy()
  log_probs = model(x).numpy()
  want = -np.take_along_axis(log_probs, y[..., None], -1)[..., 0]
  np.testing.assert_allclose(nll, np.where(y == 0, 0.0, want), atol=1e-5)


@pytest.fixture(scope="module")
def run(tmp_path_factory, corpus_dir):
  """An adaptive-softmax smoke run in sentence mode, with one export."""
  workdir = str(tmp_path_factory.mktemp("adaptive"))
  config = smoke_config(corpus_dir, "adaptive", {"data.mode": "sentence"})
  train.train_and_evaluate(config, workdir)
  path = export.export(workdir, str(tmp_path_factory.mktemp("export") / "m"))
  return workdir, path, tf.saved_model.load(path)


@pytest.mark.slow
def test_perplexity_is_the_same_whatever_the_batching(run):
  workdir = run[0]
  figures = [evaluation.evaluate(workdir, "valid", batch_size=b, mode=m)
             for b, m in ((1, "sentence"), (7, "sentence"), (16, "sentence"))]
  assert len({f["target_tokens"] for f in figures}) == 1
  for f in figures[1:]:
    assert f["perplexity"] == pytest.approx(figures[0]["perplexity"], rel=1e-5)
  results = json.load(open(os.path.join(workdir, "results.json")))
  assert results["valid_perplexity"] == pytest.approx(
      figures[0]["perplexity"], rel=1e-5)


@pytest.mark.slow
def test_export_score_equals_sentence_evaluation(run):
  workdir, _, loaded = run
  scored = score_in_requests(loaded.signatures["score"],
                             test_serving.lines_of_test_split(workdir))
  ll = float(tf.reduce_sum(scored["log_likelihood"]))
  tokens = int(tf.reduce_sum(scored["num_tokens"]))
  expected = evaluation.evaluate(workdir, "test", mode="sentence")
  assert tokens == expected["target_tokens"]
  assert np.exp(-ll / tokens) == pytest.approx(expected["perplexity"],
                                               rel=1e-5)


@pytest.mark.slow
def test_export_step_streams_as_stream_evaluation(run):
  workdir, _, loaded = run
  log_likelihood, tokens, next_log_probs = test_serving.stream_test_split(
      workdir, loaded.signatures["step"], 50)
  for log_probs in next_log_probs:
    np.testing.assert_allclose(np.exp(log_probs).sum(-1), 1.0, atol=1e-5)
  expected = evaluation.evaluate(workdir, "test", batch_size=1, mode="stream")
  assert tokens == expected["target_tokens"]
  assert np.exp(-log_likelihood / tokens) == pytest.approx(
      expected["perplexity"], rel=1e-5)


@pytest.mark.slow
def test_export_distributions_and_samples_are_over_real_words(run):
  workdir, _, loaded = run
  vocab = wd.load_vocab(workdir)
  log_probs = loaded.signatures["log_probs"](
      token_ids=tf.constant([[2, 5, 150, 30]]))["log_probs"].numpy()
  assert log_probs.shape == (1, 4, len(vocab))
  np.testing.assert_allclose(np.exp(log_probs).sum(-1), 1.0, atol=1e-5)
  top = loaded.signatures["next_words"](text=tf.constant(["the", ""]))
  assert top["words"].shape == (2, 10)
  assert np.all(np.diff(top["probabilities"].numpy(), axis=1) <= 0)
  tf.random.set_seed(0)
  out = loaded.signatures["generate"](
      prompt=tf.constant([""] * 50), max_tokens=tf.constant([20] * 50),
      temperature=tf.constant([1.5] * 50))
  words = [w for t in out["text"].numpy() for w in t.decode().split()]
  assert len(words) == int(tf.reduce_sum(out["num_tokens"])) > 0
  assert set(words) <= set(vocab.words[1:]) - {"<eos>"}
  # Rare words are sampled too: the tail clusters are part of the
  # distribution (ids >= 20).
  assert any(vocab.encode([w])[0] >= 20 for w in words)
