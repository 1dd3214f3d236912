r"""The PyTorch eager peer of benchmarks/serving_latency.py: same shapes, same calls.

Runs in the PyTorch reference's own venv (../shared/bench/torch_reference.py
says how to make it; no TensorFlow, no kerasrnn). It reads the vocabulary of
a kerasrnn export and builds the same model with random weights (latency
does not depend on their values): embedding -> nn.LSTM / nn.GRU -> linear ->
log-softmax, under torch.inference_mode, on `--threads` threads.

  ~/torch-ref/bin/python benchmarks/serving_latency_torch.py \
      --vocab=export/ptb_small/1/assets/vocab.txt --cell=lstm

What is timed is what a Python server would do per request:
- `score_1x20`: the 20-word sentence of serving_latency.py split on
  whitespace, looked up in a dict (unknown -> <unk>), read from <eos>, its
  words and <eos> scored: the log-probabilities gathered and summed.
- `next_words_1x20`: the same read, the top 10 words after it.
- `score_batch64_tokens_per_second`: 64 copies of the sentence at once.
- `next_token`: one more token from a carried state (the `step` peer).
- `rnn_only_1x21`: the recurrent layers alone over the embedded sentence
  (21 positions): what oneDNN's fused RNN kernel takes for them, a floor
  for any reading of the sentence on this CPU.
- `generate_per_token`: `generate`'s peer (read the sentence, then sample
  at temperature 1 and feed each token with the state carried, until
  <eos> or the limit; padding never sampled): the least-squares line of a
  call's time against its new tokens, limits 1, 2, ..., 41 in turn;
  `generate_first_token`: the same with a limit of 1.
Prints one JSON line (benchmarks/machine.py adds the CPU to it).
"""
import argparse
import json
import time

import numpy as np
import torch
from torch import nn

from latency import latencies
from latency import marginal
from latency import summary

SENTENCE = ("the company said it expects to report a loss for the third "
            "quarter because of lower prices and higher costs")
UNK, EOS = 1, 2


class Model(nn.Module):

  def __init__(self, cell, vocab, hidden, layers):
    super().__init__()
    self.embedding = nn.Embedding(vocab, hidden)
    self.rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell](
        hidden, hidden, layers, batch_first=True)
    self.logits = nn.Linear(hidden, vocab)

  def forward(self, ids, state=None):
    out, state = self.rnn(self.embedding(ids), state)
    return torch.log_softmax(self.logits(out), dim=-1), state


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--vocab", required=True, help="an export's assets/vocab.txt")
  p.add_argument("--cell", default="lstm", choices=["lstm", "gru"])
  p.add_argument("--hidden_size", type=int, default=200)
  p.add_argument("--num_layers", type=int, default=2)
  p.add_argument("--threads", type=int, default=2)
  p.add_argument("--calls", type=int, default=200)
  p.add_argument("--warmup", type=int, default=10)
  a = p.parse_args()
  torch.set_num_threads(a.threads)
  torch.manual_seed(0)
  with open(a.vocab, encoding="utf-8") as f:
    words = [line.rstrip("\n") for line in f]
  index = {w: i for i, w in enumerate(words)}
  model = Model(a.cell, len(words), a.hidden_size, a.num_layers).eval()

  def read(sentences):
    ids = [[EOS] + [index.get(w, UNK) for w in s.split()] for s in sentences]
    return torch.tensor(ids), model(torch.tensor(ids))[0]

  def score(sentences):
    ids, log_probs = read(sentences)
    targets = torch.cat([ids[:, 1:], torch.full((len(sentences), 1), EOS)],
                        dim=1)
    picked = log_probs.gather(2, targets[:, :, None])[:, :, 0]
    log_likelihood = picked.sum(dim=1)
    return log_likelihood, torch.exp(-log_likelihood / targets.shape[1])

  def next_words(sentences):
    _, log_probs = read(sentences)
    top = torch.topk(log_probs[:, -1], 10)
    return [[words[i] for i in row] for row in top.indices.tolist()]

  def generate(sentence, max_tokens):
    ids = torch.tensor([[EOS] + [index.get(w, UNK) for w in sentence.split()]])
    log_probs, state = model(ids)
    new = []
    while len(new) < max_tokens:
      logits = log_probs[0, -1].clone()
      logits[0] = -float("inf")  # Padding is never sampled.
      token = int(torch.multinomial(torch.softmax(logits, -1), 1))
      if token == EOS:
        break
      new.append(words[token])
      log_probs, state = model(torch.tensor([[token]]), state)
    return " ".join(new), len(new)

  out = {"framework": f"torch {torch.__version__} eager", "cell": a.cell,
         "vocab_size": len(words), "threads": a.threads}
  calls, warmup = a.calls, a.warmup
  with torch.inference_mode():
    one = [SENTENCE]
    out["score_1x20"] = summary(latencies(lambda: score(one), calls, warmup))
    out["next_words_1x20"] = summary(
        latencies(lambda: next_words(one), calls, warmup))
    batch = [SENTENCE] * 64
    ms = latencies(lambda: score(batch), calls // 4, warmup)
    out["score_batch64_tokens_per_second"] = round(
        64 * 21 / (np.median(ms) / 1000), 1)
    embedded = model.embedding(torch.randint(3, 1000, (1, 21)))
    out["rnn_only_1x21"] = summary(latencies(lambda: model.rnn(embedded),
                                              calls, warmup))
    _, state = model(torch.randint(3, 1000, (1, 10)))
    token = torch.tensor([[5]])
    out["next_token"] = summary(latencies(lambda: model(token, state),
                                          calls, warmup))
    out["generate_first_token"] = summary(latencies(
        lambda: generate(SENTENCE, 1), calls, warmup))
    tokens, ms = [], []
    for i in range(2 * calls):
      start = time.perf_counter()
      tokens.append(generate(SENTENCE, 1 + i % 41)[1])
      ms.append(1000 * (time.perf_counter() - start))
    out["generate_per_token"] = marginal(tokens, ms)
  print(json.dumps(out))


if __name__ == "__main__":
  main()
