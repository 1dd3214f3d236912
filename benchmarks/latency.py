"""Latency percentiles of a call (NumPy only: benchmarks/serving_latency.py
and its PyTorch peer, benchmarks/serving_latency_torch.py, share it)."""
import time

import numpy as np


def latencies(fn, calls, warmup):
  """Milliseconds of each of `calls` calls of fn(), after `warmup` untimed."""
  for _ in range(warmup):
    fn()
  ms = []
  for _ in range(calls):
    start = time.perf_counter()
    fn()
    ms.append(1000 * (time.perf_counter() - start))
  return np.array(ms)


def summary(ms):
  return {"p50_ms": round(float(np.percentile(ms, 50)), 3),
          "p99_ms": round(float(np.percentile(ms, 99)), 3)}


def marginal(tokens, ms):
  """{ms_per_token, fixed_ms}: the least-squares line of calls' times `ms`
  against the tokens each generated (a token's cost, the rest's)."""
  if len(set(tokens)) < 2:
    raise ValueError("every call generated as many tokens: no slope")
  slope, intercept = np.polyfit(np.asarray(tokens, float), np.asarray(ms), 1)
  return {"ms_per_token": round(float(slope), 3),
          "fixed_ms": round(float(intercept), 3),
          "calls": len(ms), "mean_tokens": round(float(np.mean(tokens)), 1)}
