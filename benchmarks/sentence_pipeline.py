r"""Sentence mode's input pipeline: microseconds per sentence, across versions.

Times one training epoch of `pipelines.make_dataset` in sentence mode
(configs/smoke.py's model settings do not matter: no model runs) over a
corpus, in a fresh process per measurement, for each kerasrnn checkout
given, alternating them round by round; prints one JSON line per
checkout with the median and every round.

  git worktree add /tmp/kr-before 2053b73    # a version to compare with
  python benchmarks/sentence_pipeline.py --data_dir=../shared/data/ptb \
      --checkouts=.,/tmp/kr-before --rounds=5

The same script runs against every checkout (it only calls
`kerasrnn.data.corpus.load_corpus` and `pipelines.make_dataset`, which all
versions have), so the figures compare the pipelines alone.
"""
import json
import os
import statistics
import subprocess
import sys

from absl import app
from absl import flags

_DATA_DIR = flags.DEFINE_string("data_dir", None, "A PTB-format corpus.")
_CHECKOUTS = flags.DEFINE_list("checkouts", ["."], "kerasrnn checkouts.")
_ROUNDS = flags.DEFINE_integer("rounds", 5, "Alternated rounds.")
_SET = flags.DEFINE_list("set", [], "Config overrides, field=value.")

_ONE = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from configs import smoke
from kerasrnn.data import pipelines
from kerasrnn.data.corpus import load_corpus
config = smoke.get_config()
config.data.dir, config.data.max_tokens = sys.argv[2], 0
config.data.mode, config.data.batch_size = "sentence", 20
for pair in json.loads(sys.argv[3]):
  field, value = pair.split("=", 1)
  section, name = field.split(".")
  config[section][name] = type(config[section][name])(value)
corpus = load_corpus(config.data)
ds = pipelines.make_dataset(config.data, corpus, "train", training=True)
start = time.perf_counter()
batches = sum(1 for _ in ds)
seconds = time.perf_counter() - start
sentences = corpus.splits["train"].num_sentences
print(json.dumps({"sentences": sentences, "batches": batches,
                  "seconds": seconds,
                  "us_per_sentence": 1e6 * seconds / sentences}))
"""


def _measure(checkout):
  out = subprocess.run(
      [sys.executable, "-c", _ONE, os.path.abspath(checkout),
       os.path.abspath(_DATA_DIR.value), json.dumps(_SET.value)],
      capture_output=True, text=True, check=True,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), cwd=checkout)
  return json.loads(out.stdout.strip().splitlines()[-1])


def _commit(checkout):
  return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=checkout,
                        capture_output=True, text=True).stdout.strip()


def main(argv):
  del argv
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  from machine import machine  # pylint: disable=g-import-not-at-top
  rounds = {c: [] for c in _CHECKOUTS.value}
  for _ in range(_ROUNDS.value):
    for checkout in _CHECKOUTS.value:
      rounds[checkout].append(_measure(checkout))
  for checkout, runs in rounds.items():
    print(json.dumps({
        "checkout": checkout, "commit": _commit(checkout),
        "sentences": runs[0]["sentences"], "batches": runs[0]["batches"],
        "us_per_sentence_median": round(statistics.median(
            r["us_per_sentence"] for r in runs), 1),
        "us_per_sentence": [round(r["us_per_sentence"], 1) for r in runs],
        "set": _SET.value, **machine()}))


if __name__ == "__main__":
  flags.mark_flag_as_required("data_dir")
  app.run(main)
