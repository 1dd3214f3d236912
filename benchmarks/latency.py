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
