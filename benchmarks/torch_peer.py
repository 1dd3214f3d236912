"""kerasrnn's PyTorch peer for training speed: the project's copy of the
reference every speed ratio in docs/results.md is held against.

The same model and step as pytorch/examples' word_language_model
(Embedding -> nn.LSTM/nn.GRU -> Linear; truncated BPTT with the hidden
state carried across batches; cross-entropy; SGD; global-norm clipping at
5), Zaremba et al.'s small configuration by default, on random ids. At
--precision=float32 it is the workplace reference
(../shared/bench/torch_reference.py) line for line; --precision=bfloat16
runs the forward pass and the loss under `torch.autocast("cpu",
dtype=torch.bfloat16)`, PyTorch's mixed precision on a CPU (the weights
and the optimizer stay float32), the peer of kerasrnn's
train.precision=mixed_bfloat16.

Set-up (CPU wheel, apart from the project's environment):
    python3 -m venv ~/torch-ref && ~/torch-ref/bin/pip install torch==2.13.0 numpy
Run (benchmarks/vs_torch.sh alternates it with benchmarks/train_throughput.py):
    ~/torch-ref/bin/python benchmarks/torch_peer.py --cell=lstm --precision=bfloat16
It prints one JSON line (tokens/s, ms per step).
"""
import argparse
import contextlib
import json
import time

import torch
import torch.nn as nn


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--cell", default="lstm", choices=["lstm", "gru"])
  p.add_argument("--hidden_size", type=int, default=200)
  p.add_argument("--num_layers", type=int, default=2)
  p.add_argument("--vocab_size", type=int, default=10_000)
  p.add_argument("--batch_size", type=int, default=20)
  p.add_argument("--num_steps", type=int, default=20)
  p.add_argument("--steps", type=int, default=100, help="timed training steps")
  p.add_argument("--warmup", type=int, default=10)
  p.add_argument("--threads", type=int, default=0, help="0: all cores")
  p.add_argument("--precision", default="float32",
                 choices=["float32", "bfloat16"])
  a = p.parse_args()
  if a.threads:
    torch.set_num_threads(a.threads)
  torch.manual_seed(0)
  V, H, B, T = a.vocab_size, a.hidden_size, a.batch_size, a.num_steps
  rnn_cls = {"lstm": nn.LSTM, "gru": nn.GRU}[a.cell]

  class LM(nn.Module):

    def __init__(self):
      super().__init__()
      self.emb = nn.Embedding(V, H)
      self.rnn = rnn_cls(H, H, a.num_layers)
      self.out = nn.Linear(H, V)

    def forward(self, x, h):
      o, h = self.rnn(self.emb(x), h)
      return self.out(o), h

  model = LM()
  opt = torch.optim.SGD(model.parameters(), lr=1.0)
  loss_fn = nn.CrossEntropyLoss()
  n = a.steps + a.warmup
  x = torch.randint(0, V, (n, T, B))
  y = torch.randint(0, V, (n, T, B))

  def autocast():
    if a.precision == "bfloat16":
      return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()

  def run(lo, hi):
    h = None
    for i in range(lo, hi):
      if h is not None:
        h = (tuple(t.detach() for t in h) if isinstance(h, tuple)
             else h.detach())
      opt.zero_grad()
      with autocast():
        out, h = model(x[i], h)
        loss = loss_fn(out.reshape(-1, V), y[i].reshape(-1))
      loss.backward()
      nn.utils.clip_grad_norm_(model.parameters(), 5.0)
      opt.step()

  run(0, a.warmup)
  t = time.perf_counter()
  run(a.warmup, n)
  dt = time.perf_counter() - t
  print(json.dumps({
      "framework": f"torch {torch.__version__}", "cell": a.cell,
      "hidden_size": H, "num_layers": a.num_layers, "batch_size": B,
      "num_steps": T, "precision": a.precision,
      "threads": torch.get_num_threads(),
      "tokens_per_second": round(a.steps * B * T / dt, 1),
      "ms_per_step": round(1000 * dt / a.steps, 2),
  }))


if __name__ == "__main__":
  main()
