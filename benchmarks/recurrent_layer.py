r"""One recurrent layer's forward + backward pass, kerasrnn against PyTorch.

Times the time loop alone (by default Zaremba's small layer: 200 units,
batch 20, 20 steps, unrolled) to say where the training step's time goes.
Runs in either environment and prints one JSON line:

  python benchmarks/recurrent_layer.py --cell=lstm                # kerasrnn
  ~/torch-ref/bin/python benchmarks/recurrent_layer.py --cell=lstm --torch \
      | python benchmarks/machine.py

kerasrnn's side is `kerasrnn.models.recurrent.LSTM/GRU` (input projection
hoisted, Keras's loop) in a `tf.function` with its gradient (with
--jit_compile: compiled by XLA as one program), and reports
the graph's number of ops; PyTorch's is `nn.LSTM/GRU` and reports the
kernel that took most of its time (`aten::mkldnn_rnn_layer*` means oneDNN's
fused RNN primitive: the whole sequence in one call). Best of 5 repeats of
50 passes, after warm-up. Restrict both to AVX2 as benchmarks/vs_torch.sh
does.
"""
import argparse
import collections
import json
import os
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [_HERE, os.path.dirname(_HERE)]


def best_ms(run, sync, repeats=5, passes=50):
  for _ in range(10):
    run()
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(passes):
      out = run()
    sync(out)
    best = min(best, (time.perf_counter() - start) / passes * 1e3)
  return best


def kerasrnn_layer(cell, jit_compile, units, batch, steps):
  import tensorflow as tf
  from kerasrnn.models import recurrent
  layer = {"lstm": recurrent.LSTM, "gru": recurrent.GRU}[cell](
      units, return_sequences=True, unroll=True)
  x = tf.random.normal([batch, steps, units])
  layer(x)

  @tf.function(jit_compile=jit_compile)
  def run():
    with tf.GradientTape() as tape:
      tape.watch(x)
      loss = tf.reduce_sum(layer(x))
    return tape.gradient(loss, [x] + layer.trainable_weights)

  ms = best_ms(run, lambda out: out[0].numpy())
  ops = run.get_concrete_function().graph.get_operations()
  return {"framework": f"kerasrnn (tf {tf.__version__})",
          "jit_compile": jit_compile, "ms": round(ms, 2),
          "graph_ops": len(ops),
          "top_op_types": collections.Counter(
              o.type for o in ops).most_common(6)}


def torch_layer(cell, units, batch, steps):
  import torch
  from torch.profiler import profile, ProfilerActivity
  torch.set_num_threads(os.cpu_count())
  layer = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](
      units, units, batch_first=True)
  x = torch.randn(batch, steps, units, requires_grad=True)

  def run():
    y, _ = layer(x)
    y.sum().backward()
    return y

  ms = best_ms(run, lambda out: None)
  with profile(activities=[ProfilerActivity.CPU]) as prof:
    run()
  top = max(prof.key_averages(), key=lambda e: e.self_cpu_time_total)
  return {"framework": f"torch {torch.__version__}", "ms": round(ms, 2),
          "top_kernel": top.key}


def main():
  # argparse, not absl: --torch runs in the PyTorch reference's venv, which
  # has neither absl nor TensorFlow.
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--cell", default="lstm", choices=["lstm", "gru"])
  parser.add_argument("--units", type=int, default=200)
  parser.add_argument("--batch", type=int, default=20)
  parser.add_argument("--steps", type=int, default=20)
  parser.add_argument("--jit_compile", action="store_true",
                      help="kerasrnn's pass compiled by XLA as one program")
  parser.add_argument("--torch", action="store_true",
                      help="time PyTorch's layer (in its environment)")
  args = parser.parse_args()
  shape = (args.units, args.batch, args.steps)
  line = {"cell": args.cell, "units": args.units, "batch": args.batch,
          "steps": args.steps}
  if args.torch:  # benchmarks/machine.py adds the machine
    line.update(torch_layer(args.cell, *shape))
  else:
    from machine import machine  # pylint: disable=g-import-not-at-top
    line.update(kerasrnn_layer(args.cell, args.jit_compile, *shape),
                **machine())
  print(json.dumps(line))


if __name__ == "__main__":
  main()
