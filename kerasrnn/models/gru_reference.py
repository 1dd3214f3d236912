"""A NumPy GRU with a hand-written backward pass through time.

The original GRU (Cho et al. 2014), i.e. Keras's `GRU(reset_after=False)`:

  z_t = sigmoid(x_t W_xz + h_{t-1} W_hz + b_z)          update gate
  r_t = sigmoid(x_t W_xr + h_{t-1} W_hr + b_r)          reset gate
  g_t = tanh(x_t W_xg + (r_t * h_{t-1}) W_hg + b_g)     candidate
  h_t = z_t * h_{t-1} + (1 - z_t) * g_t

(row vectors, `*` elementwise). It exists to make the derivation in
docs/theory.md executable; tests check it against Keras and tf.GradientTape.
"""
import numpy as np

GATES = ("z", "r", "g")  # Keras's order in kernel, recurrent_kernel and bias.


def _sigmoid(a):
  return 1 / (1 + np.exp(-a))


def from_keras(kernel, recurrent_kernel, bias=None):
  """Splits Keras GRU(reset_after=False) weights into named matrices."""
  units = recurrent_kernel.shape[0]
  p = {}
  for i, gate in enumerate(GATES):
    cols = slice(i * units, (i + 1) * units)
    p[f"W_x{gate}"] = kernel[:, cols]
    p[f"W_h{gate}"] = recurrent_kernel[:, cols]
    p[f"b_{gate}"] = (np.zeros(units) if bias is None else bias[cols])
  return p


def forward(xs, params, h0=None):
  """Runs the GRU over xs <float>[time, batch, input].

  Returns:
    (hs <float>[time, batch, units], cache for `backward`).
  """
  p = params
  h = np.zeros((xs.shape[1], p["W_hz"].shape[0])) if h0 is None else h0
  hs, cache = [], []
  for x in xs:
    z = _sigmoid(x @ p["W_xz"] + h @ p["W_hz"] + p["b_z"])
    r = _sigmoid(x @ p["W_xr"] + h @ p["W_hr"] + p["b_r"])
    g = np.tanh(x @ p["W_xg"] + (r * h) @ p["W_hg"] + p["b_g"])
    cache.append((x, h, z, r, g))
    h = z * h + (1 - z) * g
    hs.append(h)
  return np.stack(hs), cache


def backward(dh_last, cache, params):
  """Backpropagation through time from dL/dh_T (loss on the last state only).

  Args:
    dh_last: <float>[batch, units] gradient of the loss w.r.t. h_T.
    cache: from `forward`.
    params: the weights used in `forward`.

  Returns:
    {name: gradient} for every weight, plus 'h0' (dL/dh_0).
  """
  p = params
  grads = {k: np.zeros_like(v) for k, v in p.items()}
  dh = dh_last
  for x, h_prev, z, r, g in reversed(cache):
    # h_t = z * h_prev + (1 - z) * g
    dz = dh * (h_prev - g)
    dg = dh * (1 - z)
    dh_prev = dh * z  # The direct path through the update gate.
    # g = tanh(a_g), a_g = x W_xg + (r * h_prev) W_hg + b_g
    da_g = dg * (1 - g**2)
    grads["W_xg"] += x.T @ da_g
    grads["W_hg"] += (r * h_prev).T @ da_g  # Not h_prev: the reset gate.
    grads["b_g"] += da_g.sum(0)
    d_rh = da_g @ p["W_hg"].T
    dr = d_rh * h_prev
    dh_prev += d_rh * r
    # r = sigmoid(a_r), z = sigmoid(a_z)
    da_r = dr * r * (1 - r)
    da_z = dz * z * (1 - z)
    for gate, da in (("r", da_r), ("z", da_z)):
      grads[f"W_x{gate}"] += x.T @ da
      grads[f"W_h{gate}"] += h_prev.T @ da
      grads[f"b_{gate}"] += da.sum(0)
      dh_prev += da @ p[f"W_h{gate}"].T
    dh = dh_prev
  grads["h0"] = dh
  return grads


def squared_error_gradients(xs, y, params):
  """Loss 0.5 * ||h_T - y||^2 and its gradients (the textbook exercise)."""
  hs, cache = forward(xs, params)
  loss = 0.5 * np.sum((hs[-1] - y) ** 2)
  return loss, backward(hs[-1] - y, cache, params)
