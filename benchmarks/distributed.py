r"""One device vs `mirrored` vs `multi_worker`: same training, and how fast.

Trains one config with kerasrnn-train, each run in fresh processes: on one
device, `mirrored` over `--devices` logical CPU devices, `multi_worker` as
`--devices` worker processes on this machine, and, as a control for how far
float rounding alone moves a run, on one device again with oneDNN's kernels
off (TF_ENABLE_ONEDNN_OPTS=0: same math, other summation orders). Prints one
JSON line per run: wall time of the command, the run's perplexities, and the
largest absolute weight difference to the one-device run.

  python benchmarks/distributed.py --data_dir=../shared/data/ptb \
      --workdir=/tmp/distributed

On a CPU-only machine the replicas share the same cores, so this measures
the cost of distribution, not a speed-up: the point is the equality.
"""
import json
import os
import shutil
import subprocess
import sys
import time

from absl import app
from absl import flags
import numpy as np

from kerasrnn.training import distribute
from kerasrnn.training import evaluation

_CONFIG = flags.DEFINE_string("config", "configs/smoke.py:sentence",
                              "Config file (sentence mode).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Folder with the PTB files.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Where the three runs go.")
_DEVICES = flags.DEFINE_integer("devices", 2, "Replicas / workers.")
_SET = flags.DEFINE_multi_string("set", [], "More config overrides (k=v).")
_RUNS = flags.DEFINE_list(
    "runs", ["one_device", "mirrored", "multi_worker",
             "one_device_without_onednn"],
    "Which runs; the weights are compared with <workdir>/one_device.")
flags.mark_flags_as_required(["data_dir", "workdir"])


def _command(workdir, *extra):
  overrides = [f"--config.{kv}" for kv in _SET.value]
  return [sys.executable, "-m", "kerasrnn.cli.train",
          f"--config={_CONFIG.value}", f"--config.data.dir={_DATA_DIR.value}",
          f"--workdir={workdir}", *overrides, *extra]


def _run(name):
  workdir = os.path.join(_WORKDIR.value, name)
  shutil.rmtree(workdir, ignore_errors=True)
  start = time.perf_counter()
  if name == "one_device":
    procs = [subprocess.Popen(_command(workdir), stderr=subprocess.DEVNULL)]
  elif name == "one_device_without_onednn":
    procs = [subprocess.Popen(
        _command(workdir), env=dict(os.environ, TF_ENABLE_ONEDNN_OPTS="0"),
        stderr=subprocess.DEVNULL)]
  elif name == "mirrored":
    procs = [subprocess.Popen(
        _command(workdir, f"--cpu_devices={_DEVICES.value}",
                 "--config.train.distribute=mirrored"),
        stderr=subprocess.DEVNULL)]
  else:
    procs = [subprocess.Popen(
        _command(workdir, "--config.train.distribute=multi_worker"),
        env=dict(os.environ, TF_CONFIG=c), stderr=subprocess.DEVNULL)
             for c in distribute.local_cluster(_DEVICES.value)]
  if any(p.wait() for p in procs):
    raise RuntimeError(f"{name} failed; run its command by hand to see why")
  return time.perf_counter() - start


def main(argv):
  del argv
  seconds = {name: _run(name) for name in _RUNS.value}
  reference = evaluation.best_weight_values(
      os.path.join(_WORKDIR.value, "one_device"))
  for name, took in seconds.items():
    workdir = os.path.join(_WORKDIR.value, name)
    with open(os.path.join(workdir, "results.json"), encoding="utf-8") as f:
      results = json.load(f)
    weights = evaluation.best_weight_values(workdir)
    row = {"run": name, "replicas": 1 if name.startswith("one_device") else
           _DEVICES.value, "config": _CONFIG.value, "set": _SET.value,
           "command_seconds": round(took, 1),
           "train_seconds": results["wall_seconds"],
           "max_abs_weight_diff": float(max(
               np.abs(weights[k] - reference[k]).max() for k in reference))}
    row.update({k: results[k] for k in ("train_perplexity", "valid_perplexity",
                                        "test_perplexity", "valid_tokens")})
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
  app.run(main)
