"""The hand-derived GRU backward pass against Keras and tf.GradientTape.

docs/theory.md, section 4, cites these tests for each formula it gives.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

import gru_reference as ref

WEIGHTS = ["W_xz", "W_hz", "W_xr", "W_hr", "W_xg", "W_hg"]


def _keras_gru(input_size, units, use_bias=True, seed=0):
  layer = keras.layers.GRU(units, reset_after=False, use_bias=use_bias,
                           return_sequences=True, dtype="float64")
  layer.build((None, None, input_size))
  rng = np.random.default_rng(seed)
  layer.set_weights([rng.normal(0, 0.5, w.shape) for w in layer.get_weights()])
  return layer


def _tape(layer, xs, h0, loss_fn):
  """Loss and {name: gradient} (weights and 'h0') from tf.GradientTape."""
  h0 = tf.constant(h0)
  with tf.GradientTape() as tape:
    tape.watch(h0)
    hs = tf.transpose(layer(np.transpose(xs, (1, 0, 2)), initial_state=h0),
                      (1, 0, 2))
    loss = loss_fn(hs)
  *weights, dh0 = tape.gradient(loss, layer.trainable_weights + [h0])
  grads = ref.from_keras(*[g.numpy() for g in weights])
  grads["h0"] = dh0.numpy()
  return float(loss), grads


def _problem(steps, seed, h0_zero=False, use_bias=True):
  layer = _keras_gru(3, 4, use_bias, seed=seed)
  rng = np.random.default_rng(seed + 1)
  xs = rng.normal(size=(steps, 2, 3))  # [time, batch, input]
  ys = rng.normal(size=(steps, 2, 4))
  h0 = np.zeros((2, 4)) if h0_zero else rng.normal(0, 0.5, size=(2, 4))
  return layer, ref.from_keras(*layer.get_weights()), xs, ys, h0


def _assert_close(grads, expected, names, atol=1e-9):
  for name in names:
    np.testing.assert_allclose(grads[name], expected[name], atol=atol, rtol=0,
                               err_msg=name)


@pytest.mark.parametrize("use_bias", [True, False])
def test_forward_equals_keras_gru_without_reset_after(use_bias):
  layer, params, xs, _, h0 = _problem(5, seed=1, use_bias=use_bias)
  hs, _ = ref.forward(xs, params, h0)
  expected = layer(np.transpose(xs, (1, 0, 2)), initial_state=h0).numpy()
  np.testing.assert_allclose(np.transpose(hs, (1, 0, 2)), expected,
                             rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("h0_zero", [False, True])
def test_each_closed_formula_of_the_exercise_equals_gradient_tape(h0_zero):
  layer, params, xs, ys, h0 = _problem(2, seed=2, h0_zero=h0_zero)
  y = ys[-1]
  _, expected = _tape(layer, xs, h0,
                      lambda hs: 0.5 * tf.reduce_sum((hs[-1] - y) ** 2))
  closed = ref.two_step(xs, y, params, h0)
  _assert_close(closed, expected, WEIGHTS + ["h0"])
  # The general recursion gives the same, biases included.
  _, general = ref.squared_error_gradients(xs, y, params, h0)
  _assert_close(general, expected, WEIGHTS + ["b_z", "b_r", "b_g", "h0"])


def test_loss_at_every_step_over_five_steps_equals_gradient_tape():
  layer, params, xs, ys, h0 = _problem(5, seed=3)
  loss, expected = _tape(layer, xs, h0,
                         lambda hs: 0.5 * tf.reduce_sum((hs - ys) ** 2))
  hs, cache = ref.forward(xs, params, h0)
  assert 0.5 * np.sum((hs - ys) ** 2) == pytest.approx(loss, rel=1e-12)
  grads = ref.backward(hs - ys, cache, params)  # Each step's own term.
  _assert_close(grads, expected, WEIGHTS + ["b_z", "b_r", "b_g", "h0"])


@pytest.mark.parametrize("mistake,wrong", [
    ("W_hg_without_reset", ["W_hg"]),
    ("direct_path_only", WEIGHTS + ["h0"]),
])
def test_textbook_mistakes_in_the_backward_pass_are_caught(mistake, wrong):
  layer, params, xs, ys, h0 = _problem(5, seed=4)
  _, expected = _tape(layer, xs, h0,
                      lambda hs: 0.5 * tf.reduce_sum((hs - ys) ** 2))
  hs, cache = ref.forward(xs, params, h0)
  right = ref.backward(hs - ys, cache, params)
  mistaken = ref.backward(hs - ys, cache, params, mistake=mistake)
  _assert_close(right, expected, WEIGHTS + ["h0"])
  for name in wrong:
    assert np.abs(mistaken[name] - expected[name]).max() > 1e-3, name


def test_the_exercises_printed_last_step_formulas():
  """Where the exercise's printed answers go wrong (docs/theory.md, 4.3)."""
  layer, params, xs, ys, h0 = _problem(2, seed=5, h0_zero=True)
  y = ys[-1]
  _, expected = _tape(layer, xs, h0,
                      lambda hs: 0.5 * tf.reduce_sum((hs[-1] - y) ** 2))
  hs, cache = ref.forward(xs, params, h0)
  x2, h1, z2, r2, g2 = cache[1]
  d2 = hs[1] - y
  e_z2 = d2 * (h1 - g2) * z2 * (1 - z2)
  e_g2 = d2 * (1 - z2) * (1 - g2**2)
  # W_hz: the last factor is h(1); with h(2) it is wrong. With h0 = 0 the
  # step-1 term vanishes, so the last-step formula is then exact.
  np.testing.assert_allclose(h1.T @ e_z2, expected["W_hz"], atol=1e-9)
  assert np.abs(hs[1].T @ e_z2 - expected["W_hz"]).max() > 1e-2
  # W_xz and W_xg miss their step-1 path when written for step 2 only,
  # even with h0 = 0; W_xr's step-1 term is proportional to h0 and vanishes.
  closed = ref.two_step(xs, y, params, h0)
  assert np.abs(x2.T @ e_z2 - expected["W_xz"]).max() > 1e-3
  assert np.abs(x2.T @ e_g2 - expected["W_xg"]).max() > 1e-3
  np.testing.assert_allclose(closed["W_xz"], expected["W_xz"], atol=1e-9)
  e_r2 = (e_g2 @ params["W_hg"].T) * h1 * r2 * (1 - r2)
  np.testing.assert_allclose(x2.T @ e_r2, expected["W_xr"], atol=1e-9)
  # With h0 != 0 the last-step W_hz formula is no longer exact.
  layer, params, xs, ys, h0 = _problem(2, seed=5)
  y = ys[-1]
  _, expected = _tape(layer, xs, h0,
                      lambda hs: 0.5 * tf.reduce_sum((hs[-1] - y) ** 2))
  hs, cache = ref.forward(xs, params, h0)
  (_, h1, z2, r2, g2) = cache[1]
  d2 = hs[1] - y
  e_z2 = d2 * (h1 - g2) * z2 * (1 - z2)
  e_g2 = d2 * (1 - z2) * (1 - g2**2)
  e_r2 = (e_g2 @ params["W_hg"].T) * h1 * r2 * (1 - r2)
  # ... nor are W_hr's and W_hg's: each recurrent matrix meets h0 at step 1.
  for name, last_step in (("W_hz", h1.T @ e_z2), ("W_hr", h1.T @ e_r2),
                          ("W_hg", (r2 * h1).T @ e_g2)):
    assert np.abs(last_step - expected[name]).max() > 1e-3, name
