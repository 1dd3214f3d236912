"""The serving module's decoders and whole-sentence reads equal the model,
and requests are checked: LSTM (through TensorFlow's fused op and through
the Keras cells) and GRU, 1 and 2 layers, tied and untied, and the
Transformer's key/value cache; untrained weights (equality does not need
training)."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import smoke_config
from kerasrnn.data import text
from kerasrnn.data.vocabulary import Vocabulary
from kerasrnn.models import build_model
from kerasrnn.serving import module as serving_module
from kerasrnn.serving import sampling
from kerasrnn.serving.module import LanguageModelModule
from kerasrnn.serving.module import Limits

WORDS = "the cat sat on a mat dog saw red is".split()

# (cell, layers, tied, fused_max_batch): the LSTM's batches of 3 and 4 rows
# below run its fused op, except with fused_max_batch 0 (the Keras cells).
VARIANTS = [("lstm", 1, False, 4), ("lstm", 2, False, 4), ("lstm", 2, True, 4),
            ("lstm", 2, False, 0),
            ("gru", 1, False, 4), ("gru", 2, False, 4), ("gru", 2, True, 4),
            ("transformer", 1, False, 4), ("transformer", 2, True, 4)]


def _module(tmp_path, cell, layers, tied, max_new_tokens=20,
            saturated=False, fused_max_batch=4, limits=None, context=None):
  vocab = Vocabulary.build([WORDS])
  vocab_file = str(tmp_path / "vocab.txt")
  vocab.save(vocab_file)
  config = smoke_config("", "sentence", {
      "model.cell": cell, "model.num_layers": layers,
      "model.tie_embeddings": tied, "model.init_scale": 0.5})
  model = build_model(config, len(vocab), use_cudnn=False)
  if saturated:  # Input, forget and candidate gates near 1: |c| grows ~1/step.
    for layer in model.layers:
      if isinstance(layer, keras.layers.LSTM):
        units = layer.cell.units
        layer.cell.bias.assign(np.repeat([20.0, 20.0, 20.0, 0.0], units))
  limits = limits or Limits(256, 100_000, max_new_tokens)
  return LanguageModelModule(model, vocab_file, vocab.words, limits=limits,
                             fused_max_batch=fused_max_batch,
                             context=context)


def _step(module):
  """The `step` signature, called by its input names as a server would."""
  return module.step.get_concrete_function()


def _state_inputs(module, batch):
  return module.initial_states(batch)


# Rows of different lengths (0 = padding): each stops at its own step.
IDS = np.array([[2, 5, 7, 9, 4, 3],
                [2, 8, 0, 0, 0, 0],
                [2, 6, 11, 3, 0, 0]], np.int32)


@pytest.mark.parametrize("cell,layers,tied,fused_max_batch", VARIANTS)
def test_step_signature_token_by_token_equals_log_probs(tmp_path, cell,
                                                        layers, tied,
                                                        fused_max_batch):
  module = _module(tmp_path, cell, layers, tied,
                   fused_max_batch=fused_max_batch)
  expected = module.log_probs(tf.constant(IDS))["log_probs"].numpy()
  states = _state_inputs(module, len(IDS))
  ll = np.zeros(len(IDS))
  for t in range(IDS.shape[1]):
    targets = np.zeros_like(IDS[:, t:t + 1])
    if t + 1 < IDS.shape[1]:
      targets = IDS[:, t + 1:t + 2]
    out = _step(module)(token_ids=tf.constant(IDS[:, t:t + 1]),
                      targets=tf.constant(targets), **states)
    states = {n: out[n] for n in states}
    real = IDS[:, t] != 0
    got = out["next_log_probs"].numpy()[real][:, 1:]  # Padding excluded.
    want = expected[real, t, 1:]
    want = want - np.log(np.exp(want).sum(-1, keepdims=True))
    np.testing.assert_allclose(got, want, atol=1e-5)
    ll += out["log_likelihood"].numpy()
  # The targets' log-likelihood equals the sum over log_probs.
  targets = np.concatenate([IDS[:, 1:], np.zeros((3, 1), np.int32)], 1)
  picked = np.take_along_axis(expected, targets[..., None], -1)[..., 0]
  np.testing.assert_allclose(ll, (picked * (targets != 0)).sum(1), rtol=1e-5)


@pytest.mark.parametrize("cell,layers,tied,fused_max_batch", VARIANTS)
def test_step_chunks_and_generate_decoder_equal_log_probs(tmp_path, cell,
                                                          layers, tied,
                                                          fused_max_batch):
  module = _module(tmp_path, cell, layers, tied,
                   fused_max_batch=fused_max_batch)
  expected = module.log_probs(tf.constant(IDS))["log_probs"].numpy()
  last = (IDS != 0).sum(1) - 1
  targets = np.where(np.arange(6) < last[:, None],
                     np.roll(IDS, -1, axis=1), 0).astype(np.int32)
  picked = np.take_along_axis(expected, targets[..., None], -1)[..., 0]
  want_ll = (picked * (targets != 0)).sum(1)
  # Two chunks of 4 and 2 steps carry the state like one call.
  states = _state_inputs(module, len(IDS))
  ll = 0
  for chunk in (slice(0, 4), slice(4, 6)):
    out = _step(module)(token_ids=tf.constant(IDS[:, chunk]),
                      targets=tf.constant(targets[:, chunk]), **states)
    states = {n: out[n] for n in states}
    ll = ll + out["log_likelihood"].numpy()
  np.testing.assert_allclose(ll, want_ll, rtol=1e-5)
  final = expected[np.arange(3), last, 1:]
  final -= np.log(np.exp(final).sum(-1, keepdims=True))
  np.testing.assert_allclose(out["next_log_probs"].numpy()[:, 1:], final,
                             atol=1e-5)
  # generate's decoder: the prompt read step by step, then one more step.
  prompts = tf.ragged.constant([list(r[1:l + 1]) for r, l in zip(IDS, last)])
  logits, states = module._read_prompt(prompts)  # pylint: disable=protected-access
  np.testing.assert_allclose(
      tf.nn.log_softmax(logits).numpy(), expected[np.arange(3), last],
      atol=1e-5)
  nxt = np.array([3, 4, 5], np.int32)
  hidden, _ = module.decoder.advance(
      tf.constant(nxt), states, tf.constant([True] * 3))
  step_logits = module.model.get_layer("logits")(hidden)
  longer = np.pad(IDS, ((0, 0), (0, 1)))
  longer[np.arange(3), last + 1] = nxt
  want = module.log_probs(tf.constant(longer))["log_probs"].numpy()[
      np.arange(3), last + 1]
  np.testing.assert_allclose(tf.nn.log_softmax(step_logits).numpy(), want,
                             atol=1e-5)


# Of different lengths, an unknown word ("zebra") and an empty text.
TEXTS = ["the cat sat on a mat", "dog", "a zebra saw the red cat", ""]


# A saturated LSTM's cell states go beyond 3, where TensorFlow's fused LSTM
# ops clip them by default: the module must not.
@pytest.mark.parametrize("cell,layers,tied,fused_max_batch,saturated",
                         [v + (False,) for v in VARIANTS]
                         + [("lstm", 2, False, 4, True)])
def test_score_and_next_words_equal_the_models_log_probs(
    tmp_path, cell, layers, tied, fused_max_batch, saturated):
  module = _module(tmp_path, cell, layers, tied, saturated=saturated,
                   fused_max_batch=fused_max_batch)
  rows = [[text.EOS_ID] + [module.table.lookup(tf.constant(w)).numpy()
                           for w in t.split()] for t in TEXTS]
  ids = np.zeros((len(rows), max(map(len, rows))), np.int32)
  for i, row in enumerate(rows):
    ids[i, :len(row)] = row
  expected = module.log_probs(tf.constant(ids))["log_probs"].numpy()
  lengths = np.array([len(r) for r in rows])
  targets = np.roll(ids, -1, axis=1)
  targets[np.arange(len(rows)), lengths - 1] = text.EOS_ID
  picked = np.take_along_axis(expected, targets[..., None], -1)[..., 0]
  real = np.arange(ids.shape[1]) < lengths[:, None]
  out = module.score(tf.constant(TEXTS))
  np.testing.assert_array_equal(out["num_tokens"].numpy(), lengths)
  np.testing.assert_allclose(out["log_likelihood"].numpy(),
                             (picked * real).sum(1), rtol=1e-5)
  last = expected[np.arange(len(rows)), lengths - 1, 1:]  # No padding.
  last = np.exp(last) / np.exp(last).sum(-1, keepdims=True)
  top = module.next_words(tf.constant(TEXTS))
  np.testing.assert_allclose(top["probabilities"].numpy(),
                             -np.sort(-last, axis=-1)[:, :module.top_k],
                             atol=1e-5)


def test_fused_and_keras_lstm_generate_the_same_greedy_words(tmp_path):
  # The prompts read by the fused op or by the Keras cells; the generated
  # tokens then go through the cells in both. Seeded: weights that put
  # <eos> first everywhere (as some draws do) would test nothing.
  keras.utils.set_random_seed(1)
  fused = _module(tmp_path, "lstm", 2, False, max_new_tokens=12)
  cells = LanguageModelModule(
      fused.model, str(tmp_path / "vocab.txt"),
      [w.decode() for w in fused.words.numpy()],
      limits=Limits(256, 100_000, 12), fused_max_batch=0)
  prompts = tf.constant(["the cat", "a dog saw", ""])
  args = dict(prompt=prompts, max_tokens=tf.constant([12, 5, 12]),
              temperature=tf.zeros([3]))
  got, want = fused.generate(**args), cells.generate(**args)
  assert got["text"].numpy().tolist() == want["text"].numpy().tolist()
  np.testing.assert_array_equal(got["num_tokens"], want["num_tokens"])
  assert want["num_tokens"].numpy().sum() > 0


def _invalid(fn, match, **kwargs):
  with pytest.raises(tf.errors.InvalidArgumentError, match=match):
    fn(**kwargs)


def test_requests_are_checked(tmp_path):
  module = _module(tmp_path, "lstm", 2, False)
  n = module.vocab_size
  _invalid(module.log_probs, r"token_ids must be ids in \[0, 13\)",
           token_ids=tf.constant([[2, -5]]))
  _invalid(module.log_probs, "token_ids must be ids",
           token_ids=tf.constant([[2, n]]))
  states = _state_inputs(module, 2)
  ok = tf.constant([[2, 5], [2, 6]])
  _invalid(_step(module), "targets must be ids", token_ids=ok,
           targets=tf.constant([[5, -1], [0, 0]]), **states)
  _invalid(_step(module), "state_1_c must have one row per row of token_ids",
           token_ids=ok, targets=ok,
           **dict(states, state_1_c=tf.zeros([3, 16])))
  _invalid(_step(module), "targets must have the shape of token_ids",
           token_ids=ok, targets=ok[:, :1], **states)
  _invalid(_step(module), "token_ids must be padded \\(0\\) only after",
           token_ids=tf.constant([[2, 5], [0, 6]]),
           targets=tf.constant([[5, 6], [0, 7]]), **states)
  _invalid(_step(module), "targets must be 0 where token_ids are padding",
           token_ids=tf.constant([[2, 5], [2, 0]]), targets=ok, **states)
  _invalid(module.generate, "max_tokens must have one row per row of prompt",
           prompt=tf.constant(["the", "a"]), max_tokens=tf.constant([1]),
           temperature=tf.constant([0.0, 0.0]))
  _invalid(module.generate, "temperature must have one row per row",
           prompt=tf.constant(["the", "a"]), max_tokens=tf.constant([1, 1]),
           temperature=tf.constant([0.0, 0.0, 1.0]))


def test_empty_batches_give_empty_outputs(tmp_path):
  module = _module(tmp_path, "gru", 2, False)
  empty = tf.constant([], tf.string)
  out = module.score(text_in=empty)
  assert {k: v.shape[0] for k, v in out.items()} == {
      "log_likelihood": 0, "num_tokens": 0, "perplexity": 0,
      "num_words": 0, "word_perplexity": 0}
  assert module.next_words(text_in=empty)["words"].shape[0] == 0
  out = module.generate(prompt=empty, max_tokens=tf.constant([], tf.int32),
                        temperature=tf.constant([], tf.float32))
  assert out["text"].shape[0] == 0
  assert module.log_probs(
      token_ids=tf.zeros([0, 3], tf.int32))["log_probs"].shape[0] == 0
  out = _step(module)(token_ids=tf.zeros([0, 2], tf.int32),
                    targets=tf.zeros([0, 2], tf.int32),
                    **_state_inputs(module, 0))
  assert out["next_log_probs"].shape == (0, module.vocab_size)


def test_limits_fire_with_their_names(tmp_path):
  module = _module(tmp_path, "lstm", 2, False,
                   limits=Limits(max_batch=3, max_request_tokens=12,
                                 max_generate_tokens=5))
  four = tf.constant(["the", "a", "cat", "dog"])
  twelve = tf.constant(["the cat sat on a", "dog saw the red mat"])  # 6 + 6
  thirteen = tf.constant(["the cat sat on a mat", "dog saw the red mat"])
  for fn in (module.score, module.next_words, module.tokenize):
    _invalid(fn, "at most max_batch=3 rows", text_in=four)
    _invalid(fn, "at most max_request_tokens=12 tokens", text_in=thirteen)
    fn(text_in=twelve)  # At the limits: answered.
  _invalid(module.log_probs, "max_batch=3", token_ids=tf.ones([4, 2],
                                                              tf.int32))
  _invalid(module.log_probs, "max_request_tokens=12",
           token_ids=tf.ones([2, 7], tf.int32))
  states = _state_inputs(module, 4)
  _invalid(_step(module), "max_batch=3", token_ids=tf.ones([4, 1], tf.int32),
           targets=tf.ones([4, 1], tf.int32), **states)
  states = _state_inputs(module, 1)
  _invalid(_step(module), "max_request_tokens=12",
           token_ids=tf.ones([1, 13], tf.int32),
           targets=tf.ones([1, 13], tf.int32), **states)
  args = dict(prompt=tf.constant(["the", "a"]),
              temperature=tf.constant([1.0, 0.0]))
  _invalid(module.generate, "max_tokens is at most max_generate_tokens=5",
           max_tokens=tf.constant([5, 6]), **args)
  _invalid(module.generate, "max_batch=3", prompt=four,
           max_tokens=tf.ones([4], tf.int32), temperature=tf.ones([4]))
  _invalid(module.generate, "max_request_tokens=12", prompt=thirteen,
           max_tokens=tf.ones([2], tf.int32), temperature=tf.ones([2]))
  assert module.generate(max_tokens=tf.constant([5, 5]), **args)[
      "num_tokens"].numpy().max() <= 5


def test_log_probs_holds_at_most_a_gibibyte_of_floats(tmp_path, monkeypatch):
  monkeypatch.setattr(serving_module, "LOG_PROBS_BYTES", 4 * 13 * 10)
  module = _module(tmp_path, "gru", 1, False)  # 13 ids: 10 tokens at most.
  _invalid(module.log_probs, "log_probs returns tokens x 13 floats: at most "
           "10 tokens", token_ids=tf.ones([1, 11], tf.int32))
  assert module.log_probs(token_ids=tf.ones([2, 5], tf.int32))[
      "log_probs"].shape == (2, 5, 13)


LONG = ["the cat sat on a mat " * 5 + "the dog", "a red mat", "",
        "dog saw the cat " * 4]


@pytest.mark.parametrize("cell,layers,tied,fused_max_batch", VARIANTS)
def test_long_texts_are_scored_in_chunks_as_at_once(
    tmp_path, monkeypatch, cell, layers, tied, fused_max_batch):
  # Texts over the chunk are read chunk by chunk carrying the state (a
  # Transformer: window by window): the same log-likelihood as the whole
  # texts read at once.
  monkeypatch.setattr(serving_module, "SCORE_CHUNK", (5, 5))
  module = _module(tmp_path, cell, layers, tied,
                   fused_max_batch=fused_max_batch,
                   context=5 if cell == "transformer" else None)
  for rows in (LONG[:3], LONG):  # Fused op (3 rows) and Keras cells (4).
    inputs, targets, _ = module._right_padded(tf.constant(rows))
    assert inputs.shape[1] > 5
    want = module._log_likelihood(inputs, targets).numpy()
    got = module.score(tf.constant(rows))["log_likelihood"].numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_a_transformer_stream_stops_at_its_position_table(tmp_path):
  module = _module(tmp_path, "transformer", 1, False, context=4)
  module.decoder.max_positions = 8  # Before the signatures are traced.
  message = "reads at most 8 positions per stream"
  states = _state_inputs(module, 1)
  out = _step(module)(token_ids=tf.constant([[2, 5, 7, 9, 4, 3]]),
                      targets=tf.zeros([1, 6], tf.int32), **states)
  states = {name: out[name] for name in states}
  _invalid(_step(module), message, token_ids=tf.constant([[5, 6, 7]]),
           targets=tf.zeros([1, 3], tf.int32), **states)
  _step(module)(token_ids=tf.constant([[5, 6]]),
                targets=tf.zeros([1, 2], tf.int32), **states)
  _invalid(module.generate, message, prompt=tf.constant(["the cat sat"]),
           max_tokens=tf.constant([5]), temperature=tf.constant([0.0]))
  module.generate(prompt=tf.constant(["the cat sat"]),
                  max_tokens=tf.constant([4]), temperature=tf.constant([0.0]))
  _invalid(module.log_probs, message, token_ids=tf.ones([1, 9], tf.int32))
  # score reads windows of the context: any length.
  assert module.score(tf.constant(["the cat sat on a mat " * 3]))[
      "num_tokens"].numpy()[0] == 19


def _sample_args(prompts, **settings):
  n = len(prompts)
  defaults = dict(max_tokens=8, temperature=1.0, top_k=0, top_p=1.0, seed=-1)
  defaults.update(settings)
  dtypes = dict(max_tokens=tf.int32, temperature=tf.float32, top_k=tf.int32,
                top_p=tf.float32, seed=tf.int64)
  args = {name: tf.constant(value if isinstance(value, list) else [value] * n,
                            dtypes[name]) for name, value in defaults.items()}
  return dict(prompt=tf.constant(prompts), **args)


def test_sampling_controls(tmp_path):
  keras.utils.set_random_seed(3)
  module = _module(tmp_path, "lstm", 2, False, max_new_tokens=8)
  prompts = ["the cat", "a dog saw", "", "red"]
  texts = lambda out: out["text"].numpy().tolist()
  greedy = module.generate(prompt=tf.constant(prompts),
                           max_tokens=tf.fill([4], 8),
                           temperature=tf.zeros([4]))
  # top_k=1 and a tiny top_p leave the most likely word alone: greedy.
  assert texts(module.sample(**_sample_args(prompts, top_k=1))) == texts(
      greedy)
  assert texts(module.sample(**_sample_args(prompts, top_p=1e-6))) == texts(
      greedy)
  # The same seed, the same text, whatever else the batch holds.
  seeded = texts(module.sample(**_sample_args(prompts, seed=[7, 8, 9, 10])))
  assert texts(module.sample(**_sample_args(prompts, seed=[7, 8, 9, 10]))) == (
      seeded)
  alone = module.sample(**_sample_args(["red", "the cat"], seed=[10, 7]))
  assert texts(alone) == [seeded[3], seeded[0]]
  draws = {tuple(texts(module.sample(**_sample_args(prompts, seed=s))))
           for s in range(6)}
  assert len(draws) > 1  # Seeds matter.
  for name, value, message in (("top_k", -1, "top_k must be >= 0"),
                               ("top_p", 0.0, r"top_p must be in \(0, 1\]"),
                               ("top_p", 1.5, r"top_p must be in \(0, 1\]")):
    _invalid(module.sample, message, **_sample_args(prompts, **{name: value}))
  _invalid(module.sample, "seed must have one row per row of prompt",
           **dict(_sample_args(prompts), seed=tf.constant([1], tf.int64)))


def test_top_k_and_top_p_keep_exactly_the_most_likely_words(tmp_path):
  module = _module(tmp_path, "gru", 1, False)
  n = module.vocab_size
  # Words 3..7 with probabilities 0.4, 0.3, 0.2, 0.06, 0.04 (the rest ~0).
  probs = np.full(n, 1e-12)
  probs[3:8] = [0.4, 0.3, 0.2, 0.06, 0.04]
  logits = tf.constant(np.log(probs)[None].repeat(400, 0), tf.float32)
  rows = logits.shape[0]

  def picked(top_k=0, top_p=1.0):
    tokens = sampling.pick(
        module._without_padding(logits), tf.constant(0), tf.zeros([rows], tf.bool), tf.ones([rows, 1]),
        tf.fill([rows], top_k), tf.fill([rows], top_p),
        tf.range(rows, dtype=tf.int64)).numpy()
    return set(tokens.tolist())

  assert picked(top_k=2) == {3, 4}
  assert picked(top_k=4) == {3, 4, 5, 6}
  assert picked(top_p=0.5) == {3, 4}  # 0.4 < 0.5 <= 0.4 + 0.3.
  assert picked(top_p=0.85) == {3, 4, 5}
  assert picked(top_k=2, top_p=0.95) == {3, 4}
  assert picked() == {3, 4, 5, 6, 7}


@pytest.mark.parametrize("cell", ["lstm", "transformer"])
def test_the_top_k_of_step_and_next_words_are_those_of_log_probs(tmp_path,
                                                                 cell):
  module = _module(tmp_path, cell, 2, False)
  ids = tf.constant(IDS)
  full = module.log_probs(token_ids=ids)["log_probs"].numpy()
  lengths = (IDS != 0).sum(1)
  last = full[np.arange(len(IDS)), lengths - 1, 1:]  # Padding excluded.
  last = last - np.log(np.exp(last).sum(-1, keepdims=True))
  order = np.argsort(-last, axis=-1)[:, :module.top_k]
  out = _step(module)(token_ids=ids, targets=tf.zeros_like(ids),
                      **_state_inputs(module, len(IDS)))
  np.testing.assert_array_equal(out["next_ids"].numpy(), order + 1)
  np.testing.assert_allclose(out["next_top_log_probs"].numpy(),
                             np.take_along_axis(last, order, -1), atol=1e-5)
  words = module.words.numpy()[order + 1]
  np.testing.assert_array_equal(out["next_words"].numpy(), words)
  np.testing.assert_allclose(
      out["next_top_log_probs"].numpy(),
      np.take_along_axis(out["next_log_probs"].numpy(), order + 1, -1),
      atol=1e-6)
  texts = ["the cat sat", "a dog"]
  top = module.next_words(tf.constant(texts))
  np.testing.assert_allclose(np.exp(top["log_probs"].numpy()),
                             top["probabilities"].numpy(), rtol=1e-6)
  np.testing.assert_array_equal(module.words.numpy()[top["ids"].numpy()],
                                top["words"].numpy())


def test_a_large_vocabularys_step_leaves_out_the_whole_distribution(
    tmp_path, monkeypatch):
  monkeypatch.setattr(serving_module, "STEP_LOG_PROBS_WORDS", 5)
  module = _module(tmp_path, "gru", 1, False)  # 13 words > 5.
  out = _step(module)(token_ids=tf.constant(IDS),
                      targets=tf.zeros_like(tf.constant(IDS)),
                      **_state_inputs(module, len(IDS)))
  assert "next_log_probs" not in out
  assert out["next_ids"].shape == (len(IDS), module.top_k)
