"""The Transformer language model: its masks, exact perplexity, and export."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import score_in_requests
from conftest import smoke_config
from kerasrnn.data import text
from kerasrnn.models import build_model
from kerasrnn.models import transformer
from kerasrnn.models.parameters import model_parameters
from kerasrnn.serving import export
from kerasrnn.training import evaluation
from kerasrnn.training import train

TRANSFORMER = {"model.cell": "transformer", "model.hidden_size": 16,
               "model.num_heads": 2, "model.num_layers": 2,
               "model.init_scale": 0.0}


def _model(mode="sentence", **overrides):
  config = smoke_config("", overrides={**TRANSFORMER, "data.mode": mode,
                                       **overrides})
  keras.utils.set_random_seed(0)
  return build_model(config, 30), config


def test_a_position_does_not_see_later_tokens():
  model, _ = _model()
  rng = np.random.default_rng(0)
  x = rng.integers(1, 30, (4, 12)).astype(np.int32)
  changed = x.copy()
  changed[:, 7:] = rng.integers(1, 30, (4, 5))
  before, after = (keras.ops.convert_to_numpy(model(a)) for a in (x, changed))
  np.testing.assert_allclose(after[:, :7], before[:, :7], rtol=1e-5, atol=1e-6)
  assert not np.allclose(after[:, 7:], before[:, 7:], atol=1e-3)


@pytest.mark.parametrize("mode", ["sentence", "stream"])
def test_the_causal_mask_holds_in_both_modes(mode):
  model, config = _model(mode)
  shape = (config.data.batch_size, config.data.num_steps)
  x = np.random.default_rng(1).integers(1, 30, shape).astype(np.int32)
  changed = x.copy()
  changed[:, -1] = (x[:, -1] % 29) + 1
  np.testing.assert_allclose(model(changed)[:, :-1], model(x)[:, :-1],
                             rtol=1e-5, atol=1e-6)


def test_real_positions_do_not_change_with_more_padding():
  model, _ = _model()
  x = np.array([[2, 5, 9, 4, 0, 0], [2, 7, 0, 0, 0, 0]], np.int32)
  padded = np.pad(x, [(0, 0), (0, 9)])
  short = keras.ops.convert_to_numpy(model(x))
  long = keras.ops.convert_to_numpy(model(padded))
  for row, length in enumerate([4, 2]):
    np.testing.assert_allclose(long[row, :length], short[row, :length],
                               rtol=1e-5, atol=1e-6)
  # The row alone, unpadded, gives the same outputs as in the padded batch.
  # (Under the causal mask, right padding never reaches a real position, so
  # this holds with or without the padding mask: the next test checks it.)
  alone = keras.ops.convert_to_numpy(model(x[1:, :2]))
  np.testing.assert_allclose(long[1, :2], alone[0], rtol=1e-5, atol=1e-6)


def test_padding_before_real_tokens_is_never_attended_to():
  """Left padding comes before real positions under the causal mask: only
  the padding mask keeps it out, so real outputs must not depend on what
  the padded positions hold (and do depend on it without the mask)."""
  keras.utils.set_random_seed(0)
  block = transformer.DecoderBlock(num_heads=2, ffn_size=16)
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 6, 8)).astype(np.float32)
  mask = np.array([[0, 0, 0, 1, 1, 1], [0, 1, 1, 1, 1, 1]], bool)
  other = np.where(mask[..., None], x,
                   rng.normal(size=x.shape).astype(np.float32))
  real = mask[..., None].repeat(8, -1)

  def outputs(inputs, with_mask):
    out = block(inputs, mask=mask if with_mask else None)
    return keras.ops.convert_to_numpy(out)[real]

  np.testing.assert_allclose(outputs(x, True), outputs(other, True),
                             rtol=1e-5, atol=1e-6)
  assert not np.allclose(outputs(x, False), outputs(other, False), atol=1e-3)


def test_attention_mask_is_causal_and_hides_padding():
  mask = keras.ops.convert_to_numpy(transformer.attention_mask(
      np.array([[1, 1, 0]], bool), 3))
  assert mask.tolist() == [[[True, False, False], [True, True, False],
                            [True, True, False]]]


@pytest.mark.parametrize("overrides", [{}, {"model.tie_embeddings": True},
                                       {"model.ffn_size": 24}])
def test_parameters_match_the_formula(overrides):
  model, config = _model(**overrides)
  expected = model_parameters(config.model, 30)
  assert {l.name: l.count_params() for l in model.layers
          if l.name in expected} == expected
  assert model.count_params() == sum(expected.values())


def test_invalid_transformer_configs_are_refused_in_one_line():
  from kerasrnn import config as config_lib  # pylint: disable=g-import-not-at-top
  from kerasrnn.errors import UserError  # pylint: disable=g-import-not-at-top
  for overrides, message in [({"model.num_heads": 3}, "must divide"),
                             ({"model.weight_drop": 0.3}, "weight_drop"),
                             ({"model.embedding_size": 8}, "embedding_size")]:
    config = smoke_config("", overrides={**TRANSFORMER, **overrides})
    with pytest.raises(UserError, match=message):
      config_lib.validate(config)


@pytest.fixture(scope="module")
def run(tmp_path_factory, corpus_dir):
  """A Transformer smoke run in sentence mode, with one export."""
  workdir = str(tmp_path_factory.mktemp("transformer"))
  config = smoke_config(corpus_dir, "sentence", {
      **TRANSFORMER, "model.dropout": 0.1, "train.optimizer": "adam",
      "train.learning_rate": 0.003})
  results = train.train_and_evaluate(config, workdir)
  base = str(tmp_path_factory.mktemp("export") / "transformer")
  return workdir, export.export(workdir, base), results


@pytest.mark.slow
def test_exact_perplexity_does_not_depend_on_batching(run):
  workdir, _, results = run
  assert results["test_perplexity"] < 0.5 * results["vocab_size"]  # Learned.
  one = evaluation.evaluate(workdir, "valid", batch_size=1, mode="sentence")
  many = evaluation.evaluate(workdir, "valid", batch_size=64, mode="sentence")
  assert one["target_tokens"] == many["target_tokens"]
  assert one["perplexity"] == pytest.approx(many["perplexity"], rel=1e-5)
  assert many["perplexity"] == pytest.approx(results["valid_perplexity"],
                                             rel=1e-5)


@pytest.mark.slow
def test_export_scores_like_sentence_evaluation_and_generates(run):
  workdir, path, _ = run
  loaded = tf.saved_model.load(path)
  assert sorted(loaded.signatures) == ["generate", "log_probs", "metadata",
                                       "next_words", "sample", "score",
                                       "serving_default", "step", "tokenize"]
  from test_serving import lines_of_test_split  # pylint: disable=g-import-not-at-top
  lines = lines_of_test_split(workdir)
  scores = score_in_requests(loaded.signatures["score"], lines)
  tokens = int(tf.reduce_sum(scores["num_tokens"]))
  ll = float(tf.reduce_sum(scores["log_likelihood"]))
  expected = evaluation.evaluate(workdir, "test", batch_size=16,
                                 mode="sentence")
  assert tokens == expected["target_tokens"]
  assert np.exp(-ll / tokens) == pytest.approx(expected["perplexity"],
                                               rel=1e-5)
  out = loaded.signatures["generate"](
      prompt=tf.constant(["the", "a b c", ""]), max_tokens=tf.constant([5, 3, 4]),
      temperature=tf.constant([0.0, 1.0, 0.0]))
  assert all(0 <= n <= m for n, m in zip(out["num_tokens"].numpy(), [5, 3, 4]))


@pytest.mark.slow
def test_export_scores_long_lines_in_the_windows_evaluation_reads(
    run, tmp_path):
  """A Transformer's context is data.max_length positions: sentence-mode
  evaluation reads a longer line in windows of that many, each from its own
  start, and the export's `score` reads it so too."""
  from test_serving import long_lines_corpus  # pylint: disable=g-import-not-at-top
  from test_serving import sentence_evaluation  # pylint: disable=g-import-not-at-top
  workdir, path, _ = run
  config, vocab, lines = long_lines_corpus(workdir, tmp_path / "long")
  assert config.data.max_length < max(len(l.split()) for l in lines)
  scores = tf.saved_model.load(path).signatures["score"](
      text=tf.constant(lines))
  tokens = int(tf.reduce_sum(scores["num_tokens"]))
  ll = float(tf.reduce_sum(scores["log_likelihood"]))
  ppl, count = sentence_evaluation(workdir, config, vocab)
  assert count == tokens
  assert np.exp(-ll / tokens) == pytest.approx(ppl, rel=1e-5)


@pytest.mark.slow
def test_cached_generation_is_greedy_over_the_whole_prefix_and_stops_at_eos(
    run):
  module = export.load_module(run[0])
  # Greedy generation from the key/value cache = the argmax of log_probs,
  # which re-reads the whole growing prefix.
  out = module.generate(tf.constant(["the"]), tf.constant([4]),
                        tf.constant([0.0]))
  ids = [text.EOS_ID] + [int(i) for i in module._ids(tf.constant(["the"]))[0]]
  for _ in range(int(out["num_tokens"][0])):
    log_probs = module.log_probs(tf.constant([ids]))["log_probs"][0, -1]
    ids.append(int(np.argmax(log_probs.numpy()[1:]) + 1))  # No padding.
  words = [module.words[i].numpy().decode() for i in ids[2:]]
  assert out["text"].numpy()[0].decode() == " ".join(words)
  bias = module.model.get_layer("logits").bias
  bias.assign(np.where(np.arange(bias.shape[0]) == text.EOS_ID, 1e4,
                       0).astype("float32"))
  out = module.generate(tf.constant(["the", "a b"]), tf.constant([7, 4]),
                        tf.constant([0.0, 1.0]))
  assert out["num_tokens"].numpy().tolist() == [0, 0]
