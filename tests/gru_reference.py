"""A NumPy GRU with a hand-written backward pass through time.

The GRU of the published version (Cho et al., EMNLP 2014, their eq. 5-8),
i.e. Keras's `GRU(reset_after=False)`:

  z_t = sigmoid(x_t W_xz + h_{t-1} W_hz + b_z)          update gate
  r_t = sigmoid(x_t W_xr + h_{t-1} W_hr + b_r)          reset gate
  g_t = tanh(x_t W_xg + (r_t * h_{t-1}) W_hg + b_g)     candidate
  h_t = z_t * h_{t-1} + (1 - z_t) * g_t

(row vectors, `*` elementwise). It exists to make the derivation in
docs/theory.md executable; tests check it against Keras and tf.GradientTape.
`backward` is the general recursion (a loss at any steps); `two_step` is the
exercise's closed formulas, written out term by term.
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


# Textbook mistakes `backward` can make on purpose, to show that the tests
# catch them: W_hg's input taken as h_{t-1} instead of r_t * h_{t-1}, and
# BPTT truncated to the update gate's direct path (dh_{t-1} = dh_t * z_t).
MISTAKES = ("W_hg_without_reset", "direct_path_only")


def backward(dh, cache, params, mistake=None):
  """Backpropagation through time.

  Args:
    dh: dL/dh_t of the loss's own terms: <float>[batch, units] for a loss on
      the last state only, or <float>[time, batch, units] for a loss at
      every step (each step's term; the recurrence adds the rest).
    cache: from `forward`.
    params: the weights used in `forward`.
    mistake: None, or one of MISTAKES to make that mistake.

  Returns:
    {name: gradient} for every weight, plus 'h0' (dL/dh_0).
  """
  p = params
  dh = np.asarray(dh)
  direct = dh if dh.ndim == 3 else np.zeros((len(cache),) + dh.shape)
  if dh.ndim == 2:
    direct[-1] = dh
  grads = {k: np.zeros_like(v) for k, v in p.items()}
  carried = np.zeros_like(direct[0])
  for t in reversed(range(len(cache))):
    x, h_prev, z, r, g = cache[t]
    dh = direct[t] + carried
    # h_t = z * h_prev + (1 - z) * g
    dz = dh * (h_prev - g)
    dg = dh * (1 - z)
    dh_prev = dh * z  # The direct path through the update gate.
    # g = tanh(a_g), a_g = x W_xg + (r * h_prev) W_hg + b_g
    da_g = dg * (1 - g**2)
    grads["W_xg"] += x.T @ da_g
    hg_input = h_prev if mistake == "W_hg_without_reset" else r * h_prev
    grads["W_hg"] += hg_input.T @ da_g
    grads["b_g"] += da_g.sum(0)
    d_rh = da_g @ p["W_hg"].T  # dL/d(r * h_prev)
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
    carried = dh * z if mistake == "direct_path_only" else dh_prev
  grads["h0"] = carried
  return grads


def two_step(xs, y, params, h0):
  """The exercise: two steps, ε(2) = ½‖h(2) − y‖², its six gradients.

  Each formula as docs/theory.md writes it (section 4), with h(0) = h0
  (any value; the exercise's own answers assume h0 = 0).

  Args:
    xs: <float>[2, batch, input].
    y: <float>[batch, units].
    params: as from `from_keras`.
    h0: <float>[batch, units].

  Returns:
    {'W_xz', 'W_hz', 'W_xg', 'W_hg', 'W_xr', 'W_hr', 'h0': gradient}.
  """
  p = params
  hs, cache = forward(xs, p, h0)
  (x1, _, z1, r1, g1), (x2, h1, z2, r2, g2) = cache
  s = lambda v: v * (1 - v)  # sigmoid' from the sigmoid's value.
  d2 = hs[1] - y                                    # δ(2)
  e_z2 = d2 * (h1 - g2) * s(z2)                     # ε_z(2)
  e_g2 = d2 * (1 - z2) * (1 - g2**2)                # ε_g(2)
  rho2 = e_g2 @ p["W_hg"].T                         # ρ(2)
  e_r2 = rho2 * h1 * s(r2)                          # ε_r(2)
  d1 = (d2 * z2 + rho2 * r2 + e_z2 @ p["W_hz"].T    # δ(1): four paths
        + e_r2 @ p["W_hr"].T)
  e_z1 = d1 * (h0 - g1) * s(z1)
  e_g1 = d1 * (1 - z1) * (1 - g1**2)
  rho1 = e_g1 @ p["W_hg"].T
  e_r1 = rho1 * h0 * s(r1)
  return {
      "W_xz": x1.T @ e_z1 + x2.T @ e_z2,
      "W_hz": h0.T @ e_z1 + h1.T @ e_z2,
      "W_xg": x1.T @ e_g1 + x2.T @ e_g2,
      "W_hg": (r1 * h0).T @ e_g1 + (r2 * h1).T @ e_g2,
      "W_xr": x1.T @ e_r1 + x2.T @ e_r2,
      "W_hr": h0.T @ e_r1 + h1.T @ e_r2,
      "h0": d1 * z1 + rho1 * r1 + e_z1 @ p["W_hz"].T + e_r1 @ p["W_hr"].T,
  }


def squared_error_gradients(xs, y, params, h0=None):
  """Loss 0.5 * ||h_T - y||^2 and its gradients (the textbook exercise)."""
  hs, cache = forward(xs, params, h0)
  loss = 0.5 * np.sum((hs[-1] - y) ** 2)
  return loss, backward(hs[-1] - y, cache, params)
