"""Seeded synthetic Zipf corpora for the scale benchmarks (no flags: any
benchmark may import it)."""
import os

import numpy as np

_SEED = 0


def write_corpus(directory, tokens, vocab, seed=_SEED, held_out=None):
  """train/valid/test.txt of a Zipf corpus: `tokens` words in train (and
  `held_out`, default tokens / 100 at most 1 M, in each of valid and test),
  seeded."""
  os.makedirs(directory, exist_ok=True)
  rng = np.random.default_rng(seed)
  cdf = np.cumsum(1.0 / np.arange(1, vocab + 1))
  cdf /= cdf[-1]
  words = np.array([f"w{i}".encode() for i in range(vocab)], object)
  if held_out is None:
    held_out = min(tokens // 100, 10**6)
  for split, n in (("train", tokens), ("valid", held_out),
                   ("test", held_out)):
    with open(os.path.join(directory, f"{split}.txt"), "wb") as f:
      left = n
      while left > 0:
        lengths = np.maximum(rng.poisson(20, 50_000), 1)
        lengths = lengths[:np.searchsorted(np.cumsum(lengths), left, "right")]
        if lengths.sum() < min(left, 50_000):  # The last, shorter sentence.
          lengths = np.append(lengths, left - lengths.sum())
        ids = np.searchsorted(cdf, rng.random(int(lengths.sum())))
        tokens_list = words[ids].tolist()
        ends = np.cumsum(lengths)
        f.write(b"".join(b" ".join(tokens_list[e - l:e]) + b"\n"
                         for l, e in zip(lengths.tolist(), ends.tolist())))
        left -= int(lengths.sum())
