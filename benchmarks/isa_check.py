r"""Does an ISA restriction restrict? GFLOP/s of TensorFlow's and XLA's matmul.

Run it natively and under the restriction; what the restriction reaches runs
slower under it:

  python benchmarks/isa_check.py
  XLA_FLAGS=--xla_cpu_max_isa=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/isa_check.py

On the Intel Xeon of 2026-11-30 (commit a888b1f) (TF 2.21), `ONEDNN_MAX_CPU_ISA=AVX2` took
TensorFlow's MatMul from ~270 to ~152 GFLOP/s, but XLA's dot ran at ~260
under `--xla_cpu_max_isa=AVX2` and even `=SSE4_2`: the cap reaches XLA's
element-wise code, not its matrix products. An XLA step therefore cannot be
restricted to AVX2 this way (docs/results.md, "XLA's ISA cap").
"""
import json
import os
import sys
import time

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

_SHAPE = flags.DEFINE_list("shape", ["400", "200", "10000"],
                           "m,k,n of [m,k] x [k,n] (default: the small "
                           "model's output layer).")
_CALLS = flags.DEFINE_integer("calls", 50, "Calls per timed round.")
_ROUNDS = flags.DEFINE_integer("rounds", 5, "Timed rounds (median).")


def main(argv):
  del argv
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from machine import machine  # pylint: disable=g-import-not-at-top
  m, k, n = (int(v) for v in _SHAPE.value)
  a, b = tf.random.normal([m, k]), tf.random.normal([k, n])
  result = {"shape": [m, k, n], **machine()}
  for name, jit in (("tensorflow_matmul", False), ("xla_dot", True)):
    f = tf.function(tf.matmul, jit_compile=jit)
    f(a, b).numpy()
    seconds = []
    for _ in range(_ROUNDS.value):
      start = time.perf_counter()
      for _ in range(_CALLS.value):
        y = f(a, b)
      y.numpy()
      seconds.append((time.perf_counter() - start) / _CALLS.value)
    result[f"{name}_gflops"] = round(2 * m * k * n / np.median(seconds) / 1e9,
                                     1)
  print(json.dumps(result))


if __name__ == "__main__":
  app.run(main)
