r"""What resuming deep inside an epoch costs: the first steps after a resume
at a fraction of an epoch (default 90 %) against the same at its start.

A resumed run reads its training batches from the resume state's step on
(`kerasrnn.data.pipelines.Layout`): the step's window in stream mode, the
step's batch of the epoch's bucketed order in sentence mode, without
reading the batches before it. Per round and position, in one process
with the model compiled once (as a resumed command compiles it too):

  first_batch_s  building the training pipeline from the step (sentence
                 mode: the epoch's batch plan) and reading its first batch;
  fit_s          `fit` over the next --steps steps from a fresh pipeline
                 (what the first stretch of a resumed run does).

Positions alternate within each round; one JSON line per (mode, round,
position) with the machine, then the medians and their ratio.

  python benchmarks/resume_cost.py --config=configs/wikipedia.py \
      --config.data.store=stores/wikipedia --modes=stream,sentence \
      --out=docs/steps/resume_cost_amd_epyc_zen4.jsonl
"""
import json
import statistics
import time

from absl import app
from absl import flags
from ml_collections import config_flags

from machine import machine  # pylint: disable=g-bad-import-order
from kerasrnn import config as config_lib
from kerasrnn import fast_path
from kerasrnn.data import pipelines
from kerasrnn.data.corpus import load_corpus
from kerasrnn.training import train

_CONFIG = config_flags.DEFINE_config_file("config", "configs/wikipedia.py",
                                          "Config file.")
_MODES = flags.DEFINE_list("modes", ["stream", "sentence"], "Data modes.")
_AT = flags.DEFINE_float("at", 0.9, "Where to resume, a fraction of an epoch.")
_STEPS = flags.DEFINE_integer("steps", 64, "Steps of the timed fit.")
_ROUNDS = flags.DEFINE_integer("rounds", 5, "Alternated rounds.")
_OUT = flags.DEFINE_string("out", None, "Append the JSON lines here too.")


def _emit(record):
  line = json.dumps(record)
  print(line, flush=True)
  if _OUT.value:
    with open(_OUT.value, "a", encoding="utf-8") as f:
      f.write(line + "\n")


def measure(config, mode):
  config = config_lib.from_dict(config.to_dict())
  config.data.mode = mode
  config_lib.validate(config)
  corpus = load_corpus(config.data)
  model = train.compile_model(
      fast_path.build_model(config, len(corpus.vocab)), config)
  steps_per_epoch = pipelines.Layout(config.data, corpus, "train",
                                     training=True).steps_per_epoch
  positions = {"start": 0, "at": int(_AT.value * steps_per_epoch)}
  warm = pipelines.Layout(config.data, corpus, "train", training=True)
  model.fit(warm.dataset(0, _STEPS.value), verbose=0)  # Compiles.
  times = {p: {"first_batch_s": [], "fit_s": []} for p in positions}
  for round_ in range(_ROUNDS.value):
    order = list(positions) if round_ % 2 == 0 else list(positions)[::-1]
    for name in order:
      step = positions[name]
      start = time.perf_counter()
      layout = pipelines.Layout(config.data, corpus, "train", training=True)
      next(iter(layout.dataset(step, step + 1)))
      first = time.perf_counter() - start
      layout = pipelines.Layout(config.data, corpus, "train", training=True)
      start = time.perf_counter()
      model.fit(layout.dataset(step, step + _STEPS.value), verbose=0)
      fit = time.perf_counter() - start
      times[name]["first_batch_s"].append(first)
      times[name]["fit_s"].append(fit)
      _emit({"mode": mode, "round": round_, "position": name, "step": step,
             "steps_per_epoch": steps_per_epoch,
             "train_tokens": corpus.splits["train"].num_tokens,
             "first_batch_s": round(first, 4), "fit_s": round(fit, 4),
             "fit_steps": _STEPS.value, **machine()})
  summary = {"mode": mode, "summary": True, "at": _AT.value}
  for key in ("first_batch_s", "fit_s"):
    medians = {p: statistics.median(times[p][key]) for p in positions}
    summary[key] = {p: round(v, 4) for p, v in medians.items()}
    summary[f"{key}_ratio"] = round(medians["at"] / medians["start"], 3)
  _emit({**summary, **machine()})


def main(argv):
  del argv
  for mode in _MODES.value:
    measure(_CONFIG.value, mode)


if __name__ == "__main__":
  app.run(main)
