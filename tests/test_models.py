import keras
import numpy as np
import pytest

from conftest import precisions
from conftest import smoke_config
from kerasrnn import config as config_lib
from kerasrnn.models import build_model
from kerasrnn.models import metrics
from kerasrnn.models import rnn_layers
from kerasrnn.models.parameters import model_parameters
from kerasrnn.models.parameters import recurrent_parameters
from kerasrnn.models.metrics import Perplexity
from kerasrnn.models.metrics import SequenceLoss
from kerasrnn.training import train


@pytest.mark.parametrize("layer,expected", [
    (keras.layers.LSTM(200), 320_800),
    (keras.layers.GRU(200, reset_after=False), 240_600),
    (keras.layers.GRU(200, reset_after=True), 241_200),
])
def test_keras_layers_match_the_formula(layer, expected):
  layer.build((None, None, 200))
  cell = "lstm" if isinstance(layer, keras.layers.LSTM) else "gru"
  two_biases = cell == "gru" and layer.cell.reset_after
  assert layer.count_params() == expected
  assert recurrent_parameters(cell, 200, 200, two_biases) == expected


def test_pytorch_lstm_keeps_two_biases():
  # torch.nn.LSTM(200, 200)'s tensors as its documentation lists them:
  # weight_ih_l0 (4*hidden, input), weight_hh_l0 (4*hidden, hidden),
  # bias_ih_l0 and bias_hh_l0 (4*hidden,).
  shapes = [(800, 200), (800, 200), (800,), (800,)]
  torch_count = sum(int(np.prod(shape)) for shape in shapes)
  assert recurrent_parameters("lstm", 200, 200, two_biases=True) == torch_count
  assert recurrent_parameters("lstm", 200, 200) == torch_count - 800  # Keras.


@pytest.mark.parametrize("overrides", [
    {"model.cell": "lstm"},
    {"model.cell": "gru", "model.gru_reset_after": False},
    {"model.cell": "gru", "model.num_layers": 2, "model.embedding_size": 8},
    {"model.tie_embeddings": True, "data.mode": "sentence"},
])
def test_model_parameters_match_keras(overrides):
  config = smoke_config("", overrides=overrides)
  model = build_model(config, 50)
  expected = model_parameters(config.model, 50)
  assert {l.name: l.count_params() for l in model.layers
          if l.name in expected} == expected
  assert model.count_params() == sum(expected.values())


def test_stream_model_is_stateful_with_fixed_batch():
  config = smoke_config("", overrides={"data.mode": "stream"})
  model = build_model(config, 30)
  assert model.input_shape == (config.data.batch_size, config.data.num_steps)
  assert all(l.stateful for l in rnn_layers(model))
  x = np.ones(model.input_shape, np.int32)
  first = model(x).numpy()
  assert not np.allclose(model(x).numpy(), first)  # State was carried.
  for layer in rnn_layers(model):
    layer.reset_state()
  np.testing.assert_allclose(model(x).numpy(), first, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_masked_outputs_and_loss_do_not_change_with_more_padding(cell):
  config = smoke_config("", overrides={"data.mode": "sentence",
                                       "model.cell": cell})
  model = build_model(config, 30)
  x = np.array([[2, 5, 7, 9, 0, 0], [2, 4, 0, 0, 0, 0]], np.int32)
  y = np.array([[5, 7, 9, 2, 0, 0], [4, 2, 0, 0, 0, 0]], np.int32)
  pad = lambda a: np.pad(a, ((0, 0), (0, 9)))
  short, longer = model(x).numpy(), model(pad(x)).numpy()
  real = x > 0
  np.testing.assert_allclose(longer[:, :6][real], short[real], rtol=1e-5,
                             atol=1e-6)
  loss = SequenceLoss()
  np.testing.assert_allclose(float(loss(pad(y), longer)),
                             float(loss(y, short)), rtol=1e-6)


def test_tied_embeddings_share_one_matrix():
  config = smoke_config("", overrides={"data.mode": "sentence",
                                       "model.tie_embeddings": True})
  model = build_model(config, 30)
  names = [w.path for w in model.weights]
  assert "logits/kernel" not in names and "embedding/embeddings" in names


def test_init_scale_bounds_every_weight():
  config = smoke_config("", overrides={"model.init_scale": 0.05})
  model = build_model(config, 30)
  assert max(np.abs(w).max() for w in model.get_weights()) <= 0.05


def _one_sgd_step(model, x, y, **compile_kwargs):
  """(logs, weight changes) of one SGD step.

  The learning rate of 1,000 makes the changes (= 1,000 x gradients) large
  against float32 rounding of the weights themselves.
  """
  before = model.get_weights()
  model.compile(optimizer=keras.optimizers.SGD(1e3), **compile_kwargs)
  logs = model.train_on_batch(x, y, return_dict=True)
  return logs, [a - b for a, b in zip(model.get_weights(), before)]


@pytest.mark.parametrize("mode,cell,jit", [
    ("stream", "lstm", True), ("stream", "lstm", False),
    ("stream", "gru", True), ("stream", "gru", False),
    ("sentence", "lstm", False)])
def test_fused_step_equals_the_plain_keras_step(mode, cell, jit):
  # The product's step (one NLL shared by loss and perplexity, with or
  # without XLA: fast_path chooses per machine) against plain Keras
  # (compiled loss + compiled metric, no XLA), on the same weights and batch.
  config = smoke_config("", overrides={"data.mode": mode, "model.cell": cell,
                                       "model.num_layers": 2})
  fast = build_model(config, 30)
  twin = build_model(config, 30)
  twin.set_weights(fast.get_weights())
  plain = keras.Model(twin.inputs, twin.outputs)
  rng = np.random.default_rng(0)
  shape = (config.data.batch_size, config.data.num_steps)
  y = rng.integers(1, 30, shape).astype(np.int32)
  if mode == "sentence":
    y[np.arange(shape[1]) >= rng.integers(1, shape[1], (shape[0], 1))] = 0
  x = np.where(y > 0, np.roll(y, 1, axis=1), 0).astype(np.int32)
  x[:, 0] = 2
  got, got_step = _one_sgd_step(fast, x, y, jit_compile=jit)
  want, want_step = _one_sgd_step(plain, x, y, loss=SequenceLoss(),
                                   metrics=[Perplexity()], jit_compile=False)
  np.testing.assert_allclose(got["loss"], want["loss"], rtol=1e-6)
  np.testing.assert_allclose(got["perplexity"], want["perplexity"], rtol=1e-6)
  assert len(got_step) == len(want_step) == len(fast.weights)
  for g, w in zip(got_step, want_step):
    assert np.abs(w).max() > 0
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6 * np.abs(w).max())


@pytest.mark.slow
def test_the_fused_softmax_trains_like_tensorflows_op(monkeypatch):
  # Stream mode with a vocabulary of FUSED_MIN_VOCAB words takes the fused
  # XLA softmax cross-entropy in Keras's compiled steps; the same steps with
  # TensorFlow's op must give the same losses and weights.
  config = smoke_config("", overrides={"data.mode": "stream"})
  vocab = metrics.FUSED_MIN_VOCAB
  rng = np.random.default_rng(0)
  shape = (3 * config.data.batch_size, config.data.num_steps)
  x, y = rng.integers(1, vocab, shape), rng.integers(0, vocab, shape)

  traced = []
  fused_nll = metrics._fused_nll
  monkeypatch.setattr(metrics, "_fused_nll",
                      lambda *args: traced.append(1) or fused_nll(*args))

  def trained(min_vocab):
    monkeypatch.setattr(metrics, "FUSED_MIN_VOCAB", min_vocab)
    del traced[:]
    keras.utils.set_random_seed(1)
    model = build_model(config, vocab)
    train.compile_model(model, config)
    history = model.fit(x, y, batch_size=config.data.batch_size, epochs=2,
                        shuffle=False, verbose=0).history
    return history, model.get_weights(), bool(traced)

  fused, fused_weights, fused_traced = trained(vocab)
  stock, stock_weights, stock_traced = trained(vocab + 1)
  assert fused_traced and not stock_traced
  np.testing.assert_allclose(fused["loss"], stock["loss"], rtol=1e-5)
  np.testing.assert_allclose(fused["perplexity"], stock["perplexity"],
                             rtol=1e-5)
  for a, b in zip(fused_weights, stock_weights):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_compiling_again_with_the_same_optimizer_keeps_clipping():
  config = smoke_config("unused", overrides={"data.mode": "sentence"})
  optimizer = keras.optimizers.SGD(learning_rate=1.0, global_clipnorm=1e-3)
  for _ in range(2):  # Another model (or a second compile) takes it over.
    model = build_model(config, vocab_size=50)
    model.compile(optimizer=optimizer)
  assert optimizer.global_clipnorm == 1e-3
  before = [w.numpy().copy() for w in model.trainable_weights]
  x = np.random.default_rng(0).integers(1, 50, (4, 7)).astype("int32")
  model.train_on_batch(x, np.roll(x, -1, axis=1))
  change = np.sqrt(sum(np.sum((w.numpy() - b) ** 2)
                       for w, b in zip(model.trainable_weights, before)))
  # The update is the learning rate times a gradient clipped to 1e-3.
  assert 0 < change <= 1e-3 * (1 + 1e-4)


PRECISIONS = precisions()


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("softmax", ["full", "adaptive"])
def test_a_policy_computes_in_its_dtype_and_keeps_float32_weights(
    precision, softmax):
  config = smoke_config("", overrides={
      "data.mode": "sentence", "model.softmax": softmax,
      "model.adaptive_cutoffs": (10,) if softmax == "adaptive" else ()})
  model = build_model(config, 30, precision=precision)
  compute = precision.replace("mixed_", "")
  for layer in rnn_layers(model) + [model.get_layer("embedding")]:
    assert layer.compute_dtype == compute, layer.name
  assert {w.dtype for w in model.weights} == {"float32"}
  x = np.array([[2, 5, 7, 0], [2, 9, 0, 0]], np.int32)
  y = np.array([[5, 7, 2, 0], [9, 2, 0, 0]], np.int32)
  assert model.hidden_states(x).dtype == compute
  nll = model.target_nll(x, y)
  assert nll.dtype == "float32" and np.all(np.asarray(nll)[y == 0] == 0)
  # Building under a policy leaves Keras's global policy as it was.
  assert keras.config.dtype_policy().name == "float32"


def _sentence_batches_perplexity(model, sentences, batch):
  """Perplexity of `sentences` (id lists) scored `batch` rows at a time."""
  total, count = 0.0, 0
  for start in range(0, len(sentences), batch):
    rows = sentences[start:start + batch]
    width = max(len(s) for s in rows)
    x = np.zeros((len(rows), width), np.int32)
    y = np.zeros((len(rows), width), np.int32)
    for i, s in enumerate(rows):
      x[i, :len(s)] = [2] + s[:-1]
      y[i, :len(s)] = s
    total += float(np.sum(np.asarray(model.target_nll(x, y), np.float64)))
    count += int(np.sum(y > 0))
  return np.exp(total / count), count


@pytest.mark.parametrize("precision", PRECISIONS)
def test_perplexity_is_the_same_at_batch_1_and_16_under_each_policy(
    precision):
  config = smoke_config("", overrides={"data.mode": "sentence",
                                       "model.hidden_size": 64})
  rng = np.random.default_rng(0)
  sentences = [list(rng.integers(3, 300, rng.integers(2, 25)))
               for _ in range(16)]
  keras.utils.set_random_seed(0)
  model = build_model(config, 300, precision=precision)
  one, count = _sentence_batches_perplexity(model, sentences, 1)
  sixteen, count16 = _sentence_batches_perplexity(model, sentences, 16)
  assert count == count16 == sum(len(s) for s in sentences)
  np.testing.assert_allclose(one, sixteen, rtol=1e-6)
  # And near float32's on the same weights.
  keras.utils.set_random_seed(0)
  reference = build_model(config, 300)
  reference.set_weights(model.get_weights())
  want, _ = _sentence_batches_perplexity(reference, sentences, 16)
  np.testing.assert_allclose(sixteen, want, rtol=1e-3)


def _stream_batch(config, vocab, seed=0):
  rng = np.random.default_rng(seed)
  shape = (config.data.batch_size, config.data.num_steps)
  return (rng.integers(1, vocab, shape).astype(np.int32),
          rng.integers(1, vocab, shape).astype(np.int32))


def test_loss_scaling_clips_the_unscaled_gradients():
  # The step clips the scaled loss's gradients at the scaled norm: once the
  # optimizer unscales them they are the clipped gradients of the loss,
  # exactly as without scaling.
  config = smoke_config("", overrides={"data.mode": "stream"})
  x, y = _stream_batch(config, 30)
  changes = []
  for scaled in (False, True):
    keras.utils.set_random_seed(0)
    model = build_model(config, 30)
    before = model.get_weights()
    optimizer = keras.optimizers.SGD(1.0, global_clipnorm=0.01)
    if scaled:
      optimizer = keras.optimizers.LossScaleOptimizer(optimizer,
                                                      initial_scale=1024.0)
    model.compile(optimizer=optimizer)
    model.train_on_batch(x, y)
    changes.append([a - b for a, b in zip(model.get_weights(), before)])
  norm = np.sqrt(sum(np.sum(np.square(c)) for c in changes[0]))
  np.testing.assert_allclose(norm, 0.01, rtol=1e-4)  # Clipping was active.
  for plain, scaled in zip(*changes):
    np.testing.assert_allclose(scaled, plain, rtol=1e-4, atol=1e-9)


def test_loss_scaling_recovers_from_an_overflow():
  # A loss scale of 2^40 overflows float16's gradients (largest 65,504):
  # each such step is skipped (no update) and halves the scale, until the
  # gradients are finite; then the model trains.
  config = smoke_config("", overrides={"data.mode": "stream",
                                       "train.precision": "mixed_float16"})
  model = build_model(config, 30, precision="mixed_float16")
  train.compile_model(model, config)
  optimizer = model.optimizer
  assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
  optimizer.build(model.trainable_variables)
  optimizer.dynamic_scale.assign(2.0 ** 40)
  x, y = _stream_batch(config, 30)
  before = model.get_weights()
  model.train_on_batch(x, y)
  assert float(optimizer.dynamic_scale.numpy()) == 2.0 ** 39
  # Skipped, and counted as a step (kerasrnn's loop reads batches by step).
  assert int(optimizer.iterations.numpy()) == 1
  for a, b in zip(model.get_weights(), before):
    np.testing.assert_array_equal(a, b)
  # Halved at each overflowing step until the first finite one updates.
  scales = []
  while True:
    weights = model.get_weights()
    first = model.train_on_batch(x, y, return_dict=True)["loss"]
    scales.append(float(optimizer.dynamic_scale.numpy()))
    if any(np.any(a != b) for a, b in zip(model.get_weights(), weights)):
      break
    assert len(scales) < 40
  assert len(scales) > 1
  assert scales == [2.0 ** (38 - i) for i in range(len(scales) - 1)] + [
      scales[-2]]
  for _ in range(5):
    last = model.train_on_batch(x, y, return_dict=True)["loss"]
  assert int(optimizer.iterations.numpy()) == 1 + len(scales) + 5
  assert float(optimizer.dynamic_scale.numpy()) == scales[-1]
  assert all(np.all(np.isfinite(w)) for w in model.get_weights())
  assert np.isfinite(last) and last < first
