import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasrnn.models import recurrent

LAYERS = {
    "lstm": (keras.layers.LSTM, recurrent.LSTM, {}),
    "gru": (keras.layers.GRU, recurrent.GRU, {}),
    "gru_reset_before": (keras.layers.GRU, recurrent.GRU,
                         {"reset_after": False}),
}


def _pair(name, gate_matmuls=True, **kwargs):
  stock_cls, hoisted_cls, extra = LAYERS[name]
  kwargs = dict(extra, return_sequences=True, use_cudnn=False, **kwargs)
  init = keras.initializers.RandomUniform(-0.5, 0.5, seed=1)
  stock = stock_cls(8, kernel_initializer=init, recurrent_initializer=init,
                    bias_initializer=init, **kwargs)
  hoisted = hoisted_cls(8, gate_matmuls=gate_matmuls, **kwargs)
  return stock, hoisted


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("unroll", [False, True])
@pytest.mark.parametrize("gate_matmuls", [True, False])
def test_outputs_and_gradients_equal_the_stock_layer(name, unroll,
                                                     gate_matmuls):
  stock, hoisted = _pair(name, gate_matmuls, unroll=unroll)
  rng = np.random.default_rng(0)
  x = tf.constant(rng.normal(size=(3, 5, 6)), tf.float32)
  mask = tf.constant(np.arange(5) < np.array([[5], [2], [4]]))
  stock.build(x.shape)
  hoisted.build(x.shape)
  hoisted.set_weights(stock.get_weights())
  results = []
  for layer in (stock, hoisted):
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = layer(x, mask=mask)
      loss = tf.reduce_sum(y * tf.cos(tf.range(8, dtype=tf.float32)))
    results.append([y] + tape.gradient(loss, [x] + layer.trainable_weights))
  for got, want in zip(results[1], results[0]):
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5,
                               atol=1e-6)
  # Masked steps repeat the last real output, as in the stock layer.
  y = results[1][0].numpy()
  np.testing.assert_array_equal(y[1, 2:], np.repeat(y[1, 1:2], 3, axis=0))


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("gate_matmuls", [True, False])
def test_unmasked_gradients_equal_the_stock_layer(name, gate_matmuls):
  """Stream mode's path: no mask, unrolled, from a given state."""
  stock, hoisted = _pair(name, gate_matmuls, unroll=True, return_state=True)
  rng = np.random.default_rng(3)
  x = tf.constant(rng.normal(size=(3, 7, 6)), tf.float32)
  states = 2 if name == "lstm" else 1
  state = [tf.constant(rng.normal(size=(3, 8)), tf.float32)
           for _ in range(states)]
  weights = [tf.constant(rng.normal(size=s), tf.float32)
             for s in [(3, 7, 8)] + [(3, 8)] * states]
  stock.build(x.shape)
  hoisted.build(x.shape)
  hoisted.set_weights(stock.get_weights())
  results = []
  for layer in (stock, hoisted):
    with tf.GradientTape() as tape:
      tape.watch([x] + state)
      outputs = layer(x, initial_state=state)
      loss = sum(tf.reduce_sum(o * w) for o, w in zip(outputs, weights))
    results.append(list(outputs) + tape.gradient(
        loss, [x] + state + layer.trainable_weights))
  assert len(results[1]) == 2 * (1 + states) + len(stock.trainable_weights)
  for got, want in zip(results[1], results[0]):
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("name", list(LAYERS))
def test_stateful_state_carries_over_like_the_stock_layer(name):
  stock, hoisted = _pair(name, stateful=True, unroll=True)
  x = np.random.default_rng(1).normal(size=(2, 4, 6)).astype(np.float32)
  stock.build(x.shape)
  hoisted.build(x.shape)
  hoisted.set_weights(stock.get_weights())
  for _ in range(2):
    np.testing.assert_allclose(hoisted(x).numpy(), stock(x).numpy(),
                               rtol=1e-5, atol=1e-6)


def test_checkpoints_load_both_ways(tmp_path):
  def model(cls):
    inputs = keras.Input((None, 6))
    return keras.Model(inputs, cls(8, use_cudnn=False)(inputs))
  stock, hoisted = model(keras.layers.LSTM), model(recurrent.LSTM)
  stock.save_weights(tmp_path / "stock.weights.h5")
  hoisted.load_weights(tmp_path / "stock.weights.h5")
  for a, b in zip(hoisted.get_weights(), stock.get_weights()):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("go_backwards", [False, True])
def test_final_state_skips_padding_only_with_the_mask(name, go_backwards):
  """A test that fails without masking (unlike right-padded outputs).

  The final state of a row padded on the right equals the state after its
  last real token only if the padded steps are masked; read backwards, the
  padding would come first and change every state.
  """
  _, layer = _pair(name, return_state=True, go_backwards=go_backwards)
  rng = np.random.default_rng(2)
  real = rng.normal(size=(1, 3, 6)).astype(np.float32)
  padded = np.concatenate([real, rng.normal(size=(1, 4, 6))], axis=1)
  mask = tf.constant([[True] * 3 + [False] * 4])
  alone = layer(real)[1:]
  masked = layer(padded.astype(np.float32), mask=mask)[1:]
  unmasked = layer(padded.astype(np.float32))[1:]
  for a, m, u in zip(alone, masked, unmasked):
    np.testing.assert_allclose(m.numpy(), a.numpy(), rtol=1e-5, atol=1e-6)
    assert np.abs(u.numpy() - a.numpy()).max() > 1e-3


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_weight_drop_masks_the_recurrent_kernel_only_in_training(cell):
  from kerasrnn.models import recurrent  # pylint: disable=g-import-not-at-top
  make = {"lstm": recurrent.LSTM, "gru": recurrent.GRU}[cell]
  x = np.random.default_rng(0).normal(size=(4, 6, 5)).astype(np.float32)
  dropped = make(7, return_sequences=True, weight_drop=0.5, seed=1)
  plain = make(7, return_sequences=True)
  dropped(x), plain(x)
  for target, source in zip(plain.trainable_weights, dropped.trainable_weights):
    target.assign(source)
  # At inference: the plain layer.
  np.testing.assert_allclose(dropped(x, training=False), plain(x), rtol=1e-6)
  kernel = keras.ops.convert_to_numpy(dropped.cell.recurrent_kernel)
  np.testing.assert_array_equal(dropped.recurrent_kernel_for(False), kernel)
  # The mask: about half the recurrent kernel zeroed, the rest scaled by 2;
  # the input kernel untouched.
  masked = keras.ops.convert_to_numpy(dropped.recurrent_kernel_for(True))
  assert 0.3 < (masked == 0).mean() < 0.7
  np.testing.assert_allclose(masked[masked != 0], 2 * kernel[masked != 0],
                             rtol=1e-6)
  # In training, one mask for all time steps: redrawing the mask from the
  # seed state the call started from and putting it into the plain layer's
  # recurrent kernel gives the same outputs at every step.
  seed = dropped.weight_drop_seed.state
  start = keras.ops.convert_to_numpy(seed)
  outputs = keras.ops.convert_to_numpy(dropped(x, training=True))
  assert not np.allclose(outputs, plain(x), atol=1e-3)
  seed.assign(start)
  plain.cell.recurrent_kernel.assign(dropped.recurrent_kernel_for(True))
  np.testing.assert_allclose(plain(x), outputs, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(plain.cell.kernel, dropped.cell.kernel)
