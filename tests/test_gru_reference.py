"""The hand-derived GRU backward pass against Keras and tf.GradientTape."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasrnn.models import gru_reference as ref


def _keras_gru(input_size, units, use_bias, seed=0):
  layer = keras.layers.GRU(units, reset_after=False, use_bias=use_bias,
                           return_sequences=True, dtype="float64")
  layer.build((None, None, input_size))
  rng = np.random.default_rng(seed)
  layer.set_weights([rng.normal(0, 0.5, w.shape) for w in layer.get_weights()])
  return layer


@pytest.mark.parametrize("use_bias", [True, False])
def test_forward_equals_keras_gru_without_reset_after(use_bias):
  layer = _keras_gru(4, 3, use_bias)
  xs = np.random.default_rng(1).normal(size=(5, 2, 4))  # [time, batch, input]
  params = ref.from_keras(*layer.get_weights())
  hs, _ = ref.forward(xs, params)
  expected = layer(np.transpose(xs, (1, 0, 2))).numpy()
  np.testing.assert_allclose(np.transpose(hs, (1, 0, 2)), expected,
                             rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("use_bias", [True, False])
def test_two_step_gradients_equal_gradient_tape(use_bias):
  layer = _keras_gru(3, 4, use_bias, seed=2)
  rng = np.random.default_rng(3)
  xs = rng.normal(size=(2, 1, 3))  # Two steps, one sequence.
  y = rng.normal(size=(1, 4))
  params = ref.from_keras(*layer.get_weights())
  loss, grads = ref.squared_error_gradients(xs, y, params)

  with tf.GradientTape() as tape:
    h = layer(np.transpose(xs, (1, 0, 2)))[:, -1]
    tf_loss = 0.5 * tf.reduce_sum((h - y) ** 2)
  tape_grads = tape.gradient(tf_loss, layer.trainable_weights)
  expected = ref.from_keras(*[g.numpy() for g in tape_grads])
  assert loss == pytest.approx(float(tf_loss), rel=1e-12)
  names = ["W_xz", "W_hz", "W_xr", "W_hr", "W_xg", "W_hg"]
  names += ["b_z", "b_r", "b_g"] if use_bias else []
  for name in names:
    np.testing.assert_allclose(grads[name], expected[name], atol=1e-6,
                               rtol=0, err_msg=name)


def test_dropping_the_reset_gate_term_gives_wrong_gradients():
  """The classic mistake: using h_prev instead of r * h_prev for dW_hg."""
  layer = _keras_gru(3, 4, True, seed=4)
  rng = np.random.default_rng(5)
  xs, y = rng.normal(size=(2, 1, 3)), rng.normal(size=(1, 4))
  params = ref.from_keras(*layer.get_weights())
  _, grads = ref.squared_error_gradients(xs, y, params)
  hs, cache = ref.forward(xs, params)
  dh = hs[-1] - y
  x, h_prev, z, r, g = cache[-1]
  wrong_last_step = h_prev.T @ (dh * (1 - z) * (1 - g**2))
  right_last_step = (r * h_prev).T @ (dh * (1 - z) * (1 - g**2))
  assert not np.allclose(wrong_last_step, right_last_step)
  assert not np.allclose(grads["W_hg"], wrong_last_step)
