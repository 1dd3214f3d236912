"""The workdir: the contract between training and everything after it.

  config.json   the resolved config        vocab.txt     the vocabulary
  data.json     the data's fingerprint     history.csv   one row per epoch
  results.json  the final figures          checkpoints/  best.weights.h5, best.json
  backup/       resume state               tensorboard/  TensorBoard logs
  workers/<id>/ the other workers' own state during a multi-worker run

Training writes a workdir; evaluation, export and report read it. Every file
is written through a temporary file and a rename, so a killed process leaves
the previous version, never half a file.

A run is identified by what it computes: its config without the fields that
only say where the data are or how the run executes (`PORTABLE_FIELDS`), and
its data's content (`data.json`). A workdir copied to another machine
resumes there with its data in another folder; other data are refused.
"""
import csv
import hashlib
import io
import json
import os

from kerasrnn import config as config_lib
from kerasrnn.data.vocabulary import Vocabulary
from kerasrnn.errors import UserError

# Fields that may differ when a run resumes: where the data are, how the run
# is distributed, compiled or shown. They change speed or logs, not results.
PORTABLE_FIELDS = ("data.dir", "data.tfds_data_dir", "train.distribute",
                   "train.jit_compile", "train.steps_per_execution",
                   "train.verbose")
HISTORY_FIELDS = ("epoch", "learning_rate", "train_perplexity",
                  "val_perplexity", "test_perplexity", "seconds",
                  "tokens_per_second")


def path(workdir, name):
  return os.path.join(workdir, name)


def write_atomically(file_path, data):
  """Writes text to `file_path` through a temporary file and a rename."""
  tmp = f"{file_path}.tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    f.write(data)
  os.replace(tmp, file_path)


def read_json(workdir, name):
  """The JSON file `name` of `workdir`, or None if it does not exist."""
  p = path(workdir, name)
  if not os.path.exists(p):
    return None
  with open(p, encoding="utf-8") as f:
    return json.load(f)


def write_json(workdir, name, value):
  write_atomically(path(workdir, name), json.dumps(value, indent=2) + "\n")


def data_fingerprint(corpus):
  """{sha256, tokens}: the content of a corpus's vocabulary and token ids."""
  digest = hashlib.sha256("\n".join(corpus.vocab.words).encode("utf-8"))
  for name in sorted(corpus.splits):
    split = corpus.splits[name]
    digest.update(name.encode("utf-8"))
    digest.update(split.ids.astype("<i4").tobytes())
    digest.update(split.row_splits.astype("<i8").tobytes())
  return {"sha256": digest.hexdigest(),
          "tokens": {n: int(s.num_tokens) for n, s in corpus.splits.items()}}


def _identity_differences(stored, current):
  """The differences between two config dicts that change what a run computes."""
  return [d for d in config_lib.differences(config_lib.with_defaults(stored),
                                            current)
          if not d.startswith(tuple(f + ":" for f in PORTABLE_FIELDS))]


def check_config(workdir, config):
  """Refuses a workdir that holds a run of a different config.

  Returns:
    True if `workdir` already holds this run (to resume, or finished).
  """
  stored = read_json(workdir, "config.json")
  if stored is None:
    return False
  diff = _identity_differences(stored, config.to_dict())
  if diff:
    raise UserError(f"workdir {workdir} holds a run with a different config "
                    f"({'; '.join(diff[:3])}); use a new --workdir or the "
                    "same config")
  return True


def check_data(workdir, corpus):
  """Refuses to resume a run on data other than those it started with."""
  stored = read_json(workdir, "data.json")
  if stored is None:  # Runs from before data.json; nothing to compare.
    return
  now = data_fingerprint(corpus)
  if stored["sha256"] != now["sha256"]:
    raise UserError(
        f"workdir {workdir} holds a run on other data (tokens per split "
        f"{stored['tokens']}, now {now['tokens']}); point data.dir at the "
        "run's data or use a new --workdir")


def claim(workdir, config, corpus):
  """Writes the run's vocab.txt, data.json and config.json into `workdir`."""
  os.makedirs(workdir, exist_ok=True)
  corpus.vocab.save(path(workdir, "vocab.txt"))
  write_json(workdir, "data.json", data_fingerprint(corpus))
  # Last: config.json marks a run (and records this machine's data.dir).
  write_atomically(path(workdir, "config.json"), config_lib.to_json(config))


def load_config(workdir):
  config = read_json(workdir, "config.json")
  if config is None:
    raise UserError(f"{workdir} is not a kerasrnn workdir (no config.json); "
                    "pass the --workdir of a kerasrnn-train run")
  return config_lib.from_dict(config)


def load_vocab(workdir):
  return Vocabulary.load(path(workdir, "vocab.txt"))


def best_weights(workdir):
  weights = path(workdir, "checkpoints/best.weights.h5")
  if not os.path.exists(weights):
    raise UserError(f"{workdir} has no checkpoint yet (checkpoints/"
                    "best.weights.h5 is written after the first epoch)")
  return weights


def read_best(workdir):
  """{'epoch', <monitored value>} of the best checkpoint, or None."""
  return read_json(workdir, "checkpoints/best.json")


def save_best(workdir, model, info):
  """Writes `model`'s weights as the best checkpoint, then its best.json."""
  directory = path(workdir, "checkpoints")
  os.makedirs(directory, exist_ok=True)
  tmp = path(directory, "tmp.weights.h5")
  model.save_weights(tmp)
  os.replace(tmp, path(directory, "best.weights.h5"))
  write_json(workdir, "checkpoints/best.json", info)


def read_history(workdir):
  """Rows of history.csv as dicts of strings ([] if there is none)."""
  p = path(workdir, "history.csv")
  if not os.path.exists(p):
    return []
  with open(p, encoding="utf-8") as f:
    return list(csv.DictReader(f))


def write_history_row(workdir, row):
  """Adds epoch `row["epoch"]` (1-based), dropping rows of later epochs.

  A run killed after writing epoch k resumes at epoch k + 1 or earlier;
  writing an epoch again replaces what the interrupted run wrote for it.
  """
  rows = [r for r in read_history(workdir)
          if int(r["epoch"]) < int(row["epoch"])]
  out = io.StringIO()
  writer = csv.DictWriter(out, HISTORY_FIELDS, lineterminator="\n")
  writer.writeheader()
  writer.writerows(rows + [row])
  write_atomically(path(workdir, "history.csv"), out.getvalue())
