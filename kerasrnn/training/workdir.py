"""The workdir: the contract between training and everything after it.

  config.json   the resolved config        vocab.txt     the vocabulary
  history.csv   one row per epoch          results.json  the final figures
  checkpoints/  best.weights.h5, best.json backup/       resume state
  tensorboard/  TensorBoard logs
  workers/<id>/ the other workers' own state during a multi-worker run
"""
import json
import os

from kerasrnn import config as config_lib
from kerasrnn.data.vocabulary import Vocabulary
from kerasrnn.errors import UserError
from kerasrnn.training.callbacks import write_atomically


# Fields that change how a run shows or how fast it goes, not what it
# computes: a run may resume with other values.
NOT_RESULTS = ("train.verbose:", "train.jit_compile:")


def path(workdir, name):
  return os.path.join(workdir, name)


def check(workdir, config):
  """Refuses a workdir that holds a run of a different config.

  Returns:
    True if `workdir` already holds this run (to resume, or finished).
  """
  config_path = path(workdir, "config.json")
  if not os.path.exists(config_path):
    return False
  with open(config_path, encoding="utf-8") as f:
    stored = json.load(f)
  diff = [d for d in config_lib.differences(
      stored, json.loads(config_lib.to_json(config)))
            if not d.startswith(NOT_RESULTS)]
  if diff:
    raise UserError(f"workdir {workdir} holds a run with a different config "
                    f"({'; '.join(diff[:3])}); use a new --workdir or the "
                    "same config")
  return True


def claim(workdir, config, vocab):
  """Writes the run's config.json and vocab.txt into `workdir`."""
  os.makedirs(workdir, exist_ok=True)
  vocab.save(path(workdir, "vocab.txt"))  # First: config.json marks a run.
  write_atomically(path(workdir, "config.json"), config_lib.to_json(config))


def load_config(workdir):
  config_path = path(workdir, "config.json")
  if not os.path.exists(config_path):
    raise UserError(f"{workdir} is not a kerasrnn workdir (no config.json); "
                    "pass the --workdir of a kerasrnn-train run")
  with open(config_path, encoding="utf-8") as f:
    return config_lib.from_json(f.read())


def load_vocab(workdir):
  return Vocabulary.load(path(workdir, "vocab.txt"))


def best_weights(workdir):
  weights = path(workdir, "checkpoints/best.weights.h5")
  if not os.path.exists(weights):
    raise UserError(f"{workdir} has no checkpoint yet (checkpoints/"
                    "best.weights.h5 is written after the first epoch)")
  return weights


def best_weight_arrays(workdir):
  """The best checkpoint's arrays, by their path in the .weights.h5 file.

  For comparing runs weight by weight (e.g. distributed vs one device).
  """
  import h5py  # pylint: disable=g-import-not-at-top  (Keras's own dependency)
  arrays = {}
  with h5py.File(best_weights(workdir), "r") as f:
    f.visititems(lambda name, obj: arrays.__setitem__(name, obj[()])
                 if isinstance(obj, h5py.Dataset) else None)
  return arrays


def read_json(workdir, name):
  p = path(workdir, name)
  if not os.path.exists(p):
    return None
  with open(p, encoding="utf-8") as f:
    return json.load(f)


def write_json(workdir, name, value):
  write_atomically(path(workdir, name), json.dumps(value, indent=2) + "\n")
