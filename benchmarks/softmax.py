r"""Full vs adaptive softmax: training tokens/s and peak memory by vocabulary.

Runs benchmarks/train_throughput.py (the real training step, stream mode,
the 2x200 LSTM of configs/small.py) on seeded Zipf-ranked ids (`--ids=zipf`:
word r has frequency ~1/r, as benchmarks/scale.py's corpora), each
vocabulary with the full and the adaptive softmax, alternated, `--rounds`
rounds, one process per run (so each peak memory is its own). Nothing else
may run meanwhile. From the project root:

  python benchmarks/softmax.py --out=docs/scale/softmax_$(hostname).jsonl

then prints the table (medians, ranges, adaptive/full ratio per round):

  python benchmarks/softmax.py --table=docs/scale/softmax_$(hostname).jsonl

`--quality=DIR` compares what the two learn instead: it writes a seeded
Zipf corpus of 267,735 words into DIR (every word once, in shuffled
sentences, then `--quality_tokens` Zipf tokens, so that the vocabulary is
all of them; 20,000-token valid and test splits) and trains configs/small.py
one epoch on it with each softmax, the same steps, through kerasrnn-train:

  python benchmarks/softmax.py --quality=/tmp/zipf267k \
      --out=docs/scale/softmax_quality.jsonl
"""
import json
import os
import statistics
import subprocess
import sys

from absl import app
from absl import flags

_VOCABS = flags.DEFINE_list("vocabs", ["10000", "50000", "267735"],
                            "Vocabulary sizes.")
# Cutoffs per vocabulary: ~7-20 % of the words in the head, then clusters.
_CUTOFFS = flags.DEFINE_list(
    "cutoffs", ["2000", "5000:20000", "20000:60000"],
    "Adaptive cutoffs per vocabulary, ':'-separated, in --vocabs' order.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Alternated rounds.")
_STEPS = flags.DEFINE_integer("steps", 30, "Timed steps (full softmax at "
                              "vocabularies over 100k: a third of these).")
_OUT = flags.DEFINE_string("out", None, "Append the JSON lines here.")
_TABLE = flags.DEFINE_string("table", None, "Print the table of this file.")
_QUALITY = flags.DEFINE_string("quality", None,
                               "Folder for the quality comparison's corpus "
                               "and runs (kept out of the repository).")
_QUALITY_TOKENS = flags.DEFINE_integer("quality_tokens", 200_000,
                                       "Zipf tokens after the covering ones.")
_QUALITY_VOCAB = 267_735
_QUALITY_CUTOFFS = "(20000, 60000)"

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(vocab, cutoffs):
  steps = _STEPS.value if cutoffs or vocab <= 100_000 else _STEPS.value // 3
  command = [sys.executable, os.path.join(ROOT, "benchmarks",
                                          "train_throughput.py"),
             f"--vocab_size={vocab}", "--ids=zipf", f"--steps={steps}",
             "--warmup=5"]
  if cutoffs:
    command += ["--set=model.softmax=adaptive",
                f"--set=model.adaptive_cutoffs=({','.join(cutoffs)},)"]
  out = subprocess.run(command, capture_output=True, text=True, check=True,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  return json.loads(out.stdout.strip().splitlines()[-1])


def table(path):
  rows = [json.loads(l) for l in open(path, encoding="utf-8") if l.strip()]
  by = {}
  for r in rows:
    by.setdefault((r["vocab_size"], r["softmax"]), []).append(r)
  lines = ["| vocabulary | cutoffs | full tokens/s | adaptive tokens/s | "
           "adaptive / full, per round | full peak RSS | adaptive peak RSS |",
           "|---|---|---|---|---|---|---|"]
  fmt = lambda xs: (f"{statistics.median(xs):,.0f} "
                    f"({min(xs):,.0f}-{max(xs):,.0f})")
  for vocab in sorted({v for v, _ in by}):
    full, fast = by.get((vocab, "full"), []), by.get((vocab, "adaptive"), [])
    speed = lambda rs: [r["tokens_per_second"] for r in rs]
    ratios = [a / b for a, b in zip(speed(fast), speed(full))]
    memory = lambda rs: f"{statistics.median(r['max_rss_mb'] for r in rs):,.0f} MB"
    lines.append(
        f"| {vocab:,} | {tuple(fast[0]['adaptive_cutoffs']) if fast else ''} "
        f"| {fmt(speed(full))} | {fmt(speed(fast))} | "
        f"{statistics.median(ratios):.2f}x ({', '.join(f'{x:.2f}' for x in ratios)}) "
        f"| {memory(full)} | {memory(fast)} |")
  first = rows[0]
  lines.append(f"\nCPU {first['cpu']} ({', '.join(first['cpu_isa'])}), "
               f"{first['threads']} threads, {first['framework']}; "
               f"{len(rows)} runs.")
  return "\n".join(lines)


def _covering_corpus(directory, vocab, tokens):
  """zipf.write_corpus's Zipf corpus, with every word once in train first."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import zipf  # pylint: disable=g-import-not-at-top
  zipf.write_corpus(directory, tokens, vocab, held_out=20_000)
  words = np.random.default_rng(1).permutation(vocab)
  train = os.path.join(directory, "train.txt")
  zipf = open(train, encoding="utf-8").read()
  with open(train, "w", encoding="utf-8") as f:
    for start in range(0, vocab, 20):
      f.write(" ".join(f"w{i}" for i in words[start:start + 20]) + "\n")
    f.write(zipf)


def quality(directory):
  """Trains configs/small.py one epoch with each softmax; JSON lines."""
  corpus = os.path.join(directory, "corpus")
  if not os.path.exists(os.path.join(corpus, "test.txt")):
    _covering_corpus(corpus, _QUALITY_VOCAB, _QUALITY_TOKENS.value)
  for softmax in ("full", "adaptive"):
    workdir = os.path.join(directory, softmax)
    command = [sys.executable, "-m", "kerasrnn.cli.train",
               "--config=configs/small.py", "--config.data.source=text",
               f"--config.data.dir={corpus}", "--config.train.epochs=1",
               "--config.train.verbose=0", f"--workdir={workdir}"]
    if softmax == "adaptive":
      command += ["--config.model.softmax=adaptive",
                  f"--config.model.adaptive_cutoffs={_QUALITY_CUTOFFS}"]
    subprocess.run(command, check=True, cwd=ROOT,
                   env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    results = json.load(open(os.path.join(workdir, "results.json")))
    from kerasrnn import fast_path  # pylint: disable=g-import-not-at-top
    yield {"softmax": softmax, "corpus": f"Zipf, {_QUALITY_VOCAB} words, "
           f"each once + {_QUALITY_TOKENS.value} Zipf tokens",
           "command": " ".join(command[1:]), **results,
           "cpu": fast_path.cpu()[0]}


def main(argv):
  del argv
  if _TABLE.value:
    print(table(_TABLE.value))
    return
  if _QUALITY.value:
    for row in quality(_QUALITY.value):
      line = json.dumps(row)
      print(line, flush=True)
      if _OUT.value:
        with open(_OUT.value, "a", encoding="utf-8") as f:
          f.write(line + "\n")
    return
  if len(_CUTOFFS.value) != len(_VOCABS.value):
    raise app.UsageError("--cutoffs needs one entry per --vocabs entry")
  for _ in range(_ROUNDS.value):
    for vocab, cutoffs in zip(_VOCABS.value, _CUTOFFS.value):
      for adaptive in (False, True):
        result = _run(int(vocab), cutoffs.split(":") if adaptive else None)
        line = json.dumps(result)
        print(line, flush=True)
        if _OUT.value:
          with open(_OUT.value, "a", encoding="utf-8") as f:
            f.write(line + "\n")
  if _OUT.value:
    print(table(_OUT.value))


if __name__ == "__main__":
  app.run(main)
