r"""Corpus scale: preparing a token store, and training from it, against N.

Writes a seeded synthetic corpus (Zipf-distributed words, `--vocab` distinct,
sentence lengths Poisson around 20) of N training tokens, then measures, each
in a fresh process:

  prepare  `kerasrnn-data --prepare=STORE`: wall time, tokens/s, peak
           anonymous memory (RssAnon: not the file pages the kernel can
           drop), disk used by the store;
  train    `kerasrnn-train` from the store (configs/small.py, stream mode):
           seconds from the process's start to its first training step,
           and its RssAnon after `--steps` steps.

  python benchmarks/scale.py --tokens=10000000,100000000 --work=/tmp/scale \
      --out=docs/scale/amd_epyc_2026-12-02.jsonl

One JSON line per (N, phase), with the machine; `--plot` draws cost vs N
from such lines. Corpora and stores are kept in --work (gigabytes at 100 M
tokens): never in the repository.
"""
import json
import os
import subprocess
import sys
import threading
import time

from absl import app
from absl import flags

from zipf import write_corpus  # pylint: disable=g-bad-import-order

_TOKENS = flags.DEFINE_list("tokens", ["10000000"], "Training tokens N.")
_VOCAB = flags.DEFINE_integer("vocab", 267_735, "Distinct words.")
_WORK = flags.DEFINE_string("work", "/tmp/kerasrnn-scale",
                            "Folder for corpora and stores.")
_OUT = flags.DEFINE_string("out", None, "Append the JSON lines here too.")
_STEPS = flags.DEFINE_integer("steps", 20, "Training steps to run.")
_PHASES = flags.DEFINE_list("phases", ["prepare", "train"], "What to run.")
_TRAIN_SET = flags.DEFINE_list(
    "train_set", [], "Config overrides of the training run, field=value.")
_PLOT = flags.DEFINE_string("plot", None, "Draw this PNG from --out's lines.")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _rss_anon(pid):
  try:
    with open(f"/proc/{pid}/status") as f:
      for line in f:
        if line.startswith("RssAnon:"):
          return int(line.split()[1]) * 1024
  except OSError:
    return 0
  return 0


def run_measured(command, env=None):
  """Runs `command`; returns (seconds, peak RssAnon bytes, stdout)."""
  start = time.time()
  process = subprocess.Popen(command, cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
  peak = [0]

  def poll():
    while process.poll() is None:
      peak[0] = max(peak[0], _rss_anon(process.pid))
      time.sleep(0.05)

  poller = threading.Thread(target=poll)
  poller.start()
  stdout, stderr = process.communicate()
  poller.join()
  if process.returncode:
    raise RuntimeError(f"{command[:4]} failed: {stderr[-2000:]}")
  return time.time() - start, peak[0], stdout


def _disk(path):
  return sum(os.path.getsize(os.path.join(d, f))
             for d, _, fs in os.walk(path) for f in fs)


# The training child: kerasrnn-train's own function, with a callback that
# reports the first step and the memory after --steps steps, then stops.
_TRAIN_CHILD = """
import json, os, sys, time
sys.path.insert(0, {root!r})
import keras
from absl import logging
from configs import small
from kerasrnn import config as config_lib
from kerasrnn.training import train

def rss_anon():
  for line in open("/proc/self/status"):
    if line.startswith("RssAnon:"):
      return int(line.split()[1]) * 1024

class Report(keras.callbacks.Callback):
  def on_train_batch_end(self, batch, logs=None):
    if batch == 0:
      self.first = time.time() - {start!r}
    if batch + 1 >= {steps}:
      print(json.dumps({{"first_step_seconds": round(self.first, 2),
                         "rss_anon_bytes": rss_anon()}}), flush=True)
      os._exit(0)

config = small.get_config()
config_lib.override(config, {overrides!r})
train.train_and_evaluate(config, {workdir!r}, [Report()])
"""


def measure(tokens):
  work = os.path.join(_WORK.value, f"n{tokens}")
  corpus, store = os.path.join(work, "corpus"), os.path.join(work, "store")
  base = {"tokens": tokens, "vocab": _VOCAB.value, **_machine()}
  if not os.path.exists(os.path.join(corpus, "test.txt")):
    t = time.time()
    write_corpus(corpus, tokens, _VOCAB.value)
    print(f"wrote the corpus in {time.time() - t:.0f} s", file=sys.stderr)
  settings = ["--config=configs/small.py", "--config.data.source=text",
              f"--config.data.dir={corpus}"]
  rows = []
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  if "prepare" in _PHASES.value:
    subprocess.run(["rm", "-rf", store], check=True)
    seconds, peak, _ = run_measured(
        [sys.executable, "-m", "kerasrnn.cli.data", *settings,
         f"--prepare={store}"], env)
    rows.append({**base, "phase": "prepare", "seconds": round(seconds, 1),
                 "tokens_per_second": round(tokens / seconds),
                 "peak_rss_anon_bytes": peak, "store_bytes": _disk(store),
                 "text_bytes": _disk(corpus)})
  if "train" in _PHASES.value:
    workdir = os.path.join(work, "run")
    subprocess.run(["rm", "-rf", workdir], check=True)
    # One step per execution, so that the first step is seen when it ends.
    overrides = {"data.source": "text", "data.dir": corpus,
                 "data.store": store, "train.verbose": 0,
                 "train.steps_per_execution": 1}
    for item in _TRAIN_SET.value:
      key, value = item.split("=", 1)
      overrides[key] = json.loads(value)
    start = time.time()
    child = _TRAIN_CHILD.format(root=ROOT, start=start, steps=_STEPS.value,
                                overrides=overrides, workdir=workdir)
    seconds, peak, stdout = run_measured([sys.executable, "-c", child], env)
    report = json.loads(stdout.strip().splitlines()[-1])
    rows.append({**base, "phase": "train", "overrides": overrides,
                 "steps": _STEPS.value, **report,
                 "peak_rss_anon_bytes": peak})
  return rows


def _machine():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from machine import machine  # pylint: disable=g-import-not-at-top
  return {**machine(), "tensorflow": tf.__version__,
          "date": time.strftime("%Y-%m-%d")}


def plot(lines_path, png):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  rows = [json.loads(l) for l in open(lines_path) if l.startswith("{")]
  prep = sorted((r for r in rows if r["phase"] == "prepare"),
                key=lambda r: r["tokens"])
  trained = sorted((r for r in rows if r["phase"] == "train"),
                   key=lambda r: r["tokens"])
  fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
  n = [r["tokens"] for r in prep]
  a.loglog(n, [r["seconds"] for r in prep], "o-", label="prepare: seconds")
  a.loglog(n, [r["peak_rss_anon_bytes"] / 1e6 for r in prep], "s-",
           label="prepare: peak RssAnon (MB)")
  a.loglog(n, [r["store_bytes"] / 1e6 for r in prep], "^-",
           label="store on disk (MB)")
  a.set_xlabel("training tokens")
  a.legend()
  n = [r["tokens"] for r in trained]
  b.semilogx(n, [r["first_step_seconds"] for r in trained], "o-",
             label="train: first step (s)")
  b.semilogx(n, [r["rss_anon_bytes"] / 1e9 for r in trained], "s-",
             label="train: RssAnon (GB)")
  b.set_xlabel("training tokens")
  b.set_ylim(bottom=0)
  b.legend()
  fig.suptitle(f"kerasrnn token store, {prep[0]['cpu'] if prep else ''}")
  fig.tight_layout()
  fig.savefig(png, dpi=100)


def main(argv):
  del argv
  if _PLOT.value:
    plot(_OUT.value, _PLOT.value)
    return
  for tokens in _TOKENS.value:
    for row in measure(int(float(tokens))):
      line = json.dumps(row)
      print(line, flush=True)
      if _OUT.value:
        os.makedirs(os.path.dirname(_OUT.value) or ".", exist_ok=True)
        with open(_OUT.value, "a", encoding="utf-8") as f:
          f.write(line + "\n")


if __name__ == "__main__":
  app.run(main)
