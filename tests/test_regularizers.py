"""The modern recipe's regularisers: masks where they belong, off at inference."""
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from conftest import smoke_config
from kerasrnn.models import build_model
from kerasrnn.models import regularizers
from kerasrnn.models.parameters import model_parameters

ALL_ON = {"model.dropout": 0.3, "model.input_dropout": 0.4,
          "model.output_dropout": 0.5, "model.locked_dropout": True,
          "model.word_dropout": 0.2, "model.weight_drop": 0.5}


def test_locked_dropout_masks_are_constant_over_time_and_differ_by_row():
  # Seeded: two of 64 random 16-unit masks are equal by chance in ~3 % of
  # draws, so an unseeded draw made this test depend on the tests before.
  keras.utils.set_random_seed(0)
  layer = regularizers.dropout(0.5, locked=True, name="locked")
  x = np.ones((64, 30, 16), np.float32)
  y = keras.ops.convert_to_numpy(layer(x, training=True))
  assert set(np.unique(y)) == {0.0, 2.0}
  np.testing.assert_array_equal(y, np.broadcast_to(y[:, :1], y.shape))
  assert len({row.tobytes() for row in y[:, 0]}) == 64  # One mask per row.
  plain = keras.ops.convert_to_numpy(
      regularizers.dropout(0.5, locked=False, name="plain")(x, training=True))
  assert (plain != plain[:, :1]).any()  # Zaremba's: a new mask per step.
  np.testing.assert_array_equal(layer(x, training=False), x)


def test_word_dropout_drops_every_occurrence_of_a_word_and_only_in_training():
  layer = regularizers.Embedding(50, 8, word_dropout=0.5, seed=3)
  ids = np.random.default_rng(0).integers(1, 50, (20, 40)).astype(np.int32)
  plain = keras.ops.convert_to_numpy(layer(ids))
  dropped = keras.ops.convert_to_numpy(layer(ids, training=True))
  zero = (dropped == 0).all(-1)
  assert 0.3 < zero.mean() < 0.7
  for word in np.unique(ids):  # A word is dropped everywhere or nowhere ...
    assert len(set(zero[ids == word])) == 1
  kept = ~zero  # ... and the words kept are scaled by 1 / (1 - p).
  np.testing.assert_allclose(dropped[kept], 2 * plain[kept], rtol=1e-6)
  again = keras.ops.convert_to_numpy(layer(ids, training=True))
  assert (((again == 0).all(-1)) != zero).any()  # A new draw per batch.


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_model_with_every_regulariser_is_deterministic_at_inference(cell):
  config = smoke_config("", overrides={**ALL_ON, "model.cell": cell,
                                       "data.mode": "sentence"})
  model = build_model(config, 30)
  x = np.random.default_rng(0).integers(1, 30, (4, 12)).astype(np.int32)
  np.testing.assert_array_equal(model(x, training=False),
                                model(x, training=False))
  assert not np.allclose(model(x, training=True), model(x, training=True))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_every_regulariser_off_trains_exactly_like_the_stock_keras_model(cell):
  # The defaults add no variable and change no step: one SGD step of the
  # model equals that of the same model built from keras.layers.LSTM/GRU
  # (which has none of the options), weights and all.
  config = smoke_config("", overrides={"data.mode": "sentence",
                                       "model.cell": cell})
  models = [build_model(config, 30, stock_layers=s) for s in (False, True)]
  assert [w.path for w in models[0].weights] == [
      w.path for w in models[1].weights]
  models[1].set_weights(models[0].get_weights())
  rng = np.random.default_rng(1)
  x = rng.integers(1, 30, (3, 9)).astype(np.int32)
  y = rng.integers(1, 30, (3, 9)).astype(np.int32)
  for model in models:
    model.compile(optimizer=keras.optimizers.SGD(1.0))
    model.train_on_batch(x, y)
  for a, b in zip(*(m.get_weights() for m in models)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_regularisers_add_only_seed_state_not_trainable_weights():
  off = build_model(smoke_config("", overrides={"data.mode": "sentence"}), 30)
  on = build_model(smoke_config("", overrides={**ALL_ON,
                                               "data.mode": "sentence"}), 30)
  trainable = lambda m: [w.path for w in m.trainable_weights]
  assert trainable(on) == trainable(off)  # Checkpoints' weights fit both.
  for target, source in zip(on.trainable_weights, off.trainable_weights):
    target.assign(source)
  x = np.random.default_rng(1).integers(0, 30, (3, 9)).astype(np.int32)
  np.testing.assert_allclose(on(x, training=False), off(x, training=False),
                             rtol=1e-6)


def test_tied_embeddings_of_another_size_give_the_last_layer_that_size():
  config = smoke_config("", overrides={
      "model.tie_embeddings": True, "model.embedding_size": 8,
      "model.hidden_size": 12, "model.num_layers": 2,
      "data.mode": "sentence"})
  model = build_model(config, 30)
  assert [l.units for l in model.layers if hasattr(l, "units")] == [12, 8]
  logits = model.get_layer("logits")
  assert logits.tied and model.get_layer("embedding").embeddings.shape == (30, 8)
  expected = model_parameters(config.model, 30)
  assert {l.name: l.count_params() for l in model.layers
          if l.name in expected} == expected
  assert model.count_params() == sum(expected.values())


@pytest.mark.parametrize("locked", [False, True])
def test_dropout_on_one_device_is_keras_draw_for_draw(locked):
  x = np.ones((4, 6, 8), np.float32)
  noise_shape = regularizers.dropout(0.5, locked, "d").noise_shape
  ours = regularizers.Dropout(0.5, noise_shape=noise_shape, seed=3)
  theirs = keras.layers.Dropout(0.5, noise_shape=noise_shape, seed=3)
  for _ in range(3):
    np.testing.assert_array_equal(ours(x, training=True),
                                  theirs(x, training=True))


_REPLICA_MASKS = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {root!r})
    import tensorflow as tf
    from kerasrnn.training import distribute
    distribute.split_cpu(2)
    import keras
    from kerasrnn.models import regularizers

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    out = {{}}
    for kind in ("ours", "keras"):
      for locked in (False, True):
        with strategy.scope():
          layer = (regularizers.dropout(0.5, locked, "d") if kind == "ours"
                   else keras.layers.Dropout(
                       0.5, noise_shape=(None, 1, None) if locked else None))
          layer.build((None, 5, 64))
        step = tf.function(lambda: strategy.run(
            lambda: layer(tf.ones([3, 5, 64]), training=True)))
        first, second = [
            t.numpy() for t in strategy.experimental_local_results(step())]
        out[f"{{kind}} locked={{locked}}"] = {{
            "equal": float((first == second).mean()),
            "constant_over_time": bool(
                (first == first[:, :1]).all() and
                (second == second[:, :1]).all())}}
    print(json.dumps(out))
""")


def test_each_replica_draws_its_own_dropout_masks():
  """Under tf.distribute, rows i and i + batch/2 (one per replica) get
  different masks, as on one device; Keras's own layer gives them the same
  (the bug this layer mends, checked here so the test fails without it)."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  run = subprocess.run(
      [sys.executable, "-c", _REPLICA_MASKS.format(root=root)],
      capture_output=True, text=True, timeout=300, check=False,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert run.returncode == 0, run.stderr[-3000:]
  out = json.loads(run.stdout.strip().splitlines()[-1])
  for locked in (False, True):
    ours, keras_ = out[f"ours locked={locked}"], out[f"keras locked={locked}"]
    assert keras_["equal"] == 1.0  # Keras: the same masks on both replicas.
    assert 0.3 < ours["equal"] < 0.7  # Independent masks: half agree.
    assert ours["constant_over_time"] == locked
