"""The workdir: the contract between training and everything after it.

  config.json   the resolved config        vocab.txt     the vocabulary
  data.json     the data's fingerprint     history.csv   one row per evaluation
  results.json  the final figures          checkpoints/  best.weights.h5, best.json
  backup/       resume state               tensorboard/  TensorBoard logs
  workers/<id>/ the other workers' own resume state (multi-worker runs)
  sentencepiece.model  a subword run's SentencePiece model (data.tokenizer)
  .lock         names the one training writing the workdir, while it runs

Training writes a workdir; evaluation, export and report read it. One
training at a time: `locked` holds an OS lock on the workdir for the whole
run, and a second training is refused in one line. Every file is written
through `kerasrnn.files.atomic_path` (a temporary and a rename), so a killed
process leaves the previous version, never half a file, and readers always
see whole files. A file that cannot be read back gives one line naming it
and what to do (`FIXES`); where an older good copy exists, training resumes
from it, losing at most the steps since the state before the damaged one.

The resume state (backup/) holds the last two saved states, each named by
its step: the weights with the optimizer's variables, the rest of the
training's state (`step-N.state.npz`: the recurrent state carried in
stream mode, the dropout seeds, the sums since the last history row), and
history.csv as it was then. The last state stays when the run ends, so a
finished run can be extended. (Workdirs of kerasrnn before 0.3 hold
`epoch-N` states, at epoch ends; they resume too.)

A run is identified by what it computes: its config without the fields that
only say where the data are or how the run executes (`PORTABLE_FIELDS`), and
its data's content (`data.json`). A workdir copied to another machine
resumes there with its data in another folder; other data are refused.
"""
import contextlib
import csv
import fcntl
import io
import math
import os
import re
import socket
import time

from absl import logging

from kerasrnn import compat
from kerasrnn import config as config_lib
from kerasrnn import files
from kerasrnn.data import subword
from kerasrnn.data.vocabulary import Vocabulary
from kerasrnn.errors import UserError

# Fields that may differ when a run resumes: where the data are, how the run
# is distributed, compiled or shown. They change speed or logs, not results.
# And the run's length (`LENGTH_FIELDS`): raised, a finished run trains on.
PORTABLE_FIELDS = ("data.dir", "data.store", "data.tfds_data_dir",
                   "data.sentencepiece_model",
                   "train.distribute",
                   "train.jit_compile", "train.steps_per_execution",
                   "train.verbose", "train.max_hours",
                   "train.save_every_steps", "train.log_every_steps")
LENGTH_FIELDS = ("train.epochs", "train.steps")
# One row per evaluation: the step, the epoch it falls in (a fraction), the
# target tokens trained on, the last update's learning rate, perplexities
# (training's since the row before), seconds of training and evaluation
# since the run began, and training's tokens/s since the row before.
# Then validation and test perplexity per word (`evaluation.per_word`;
# NaN without word counts, and in rows of kerasrnn before 0.4).
HISTORY_FIELDS = ("step", "epoch", "tokens", "learning_rate",
                  "train_perplexity", "val_perplexity", "test_perplexity",
                  "seconds", "tokens_per_second", "val_word_perplexity",
                  "test_word_perplexity")
# history.csv of kerasrnn 0.3: no per-word perplexities.
STEP_HISTORY_FIELDS = HISTORY_FIELDS[:-2]
# history.csv of kerasrnn before 0.3: one row per epoch, seconds per epoch.
EPOCH_HISTORY_FIELDS = ("epoch", "learning_rate", "train_perplexity",
                        "val_perplexity", "test_perplexity", "seconds",
                        "tokens_per_second")
BEST = "checkpoints/best.weights.h5"
BACKUP = "backup"
LOCK = ".lock"
KEEP_STATES = 2

_RESTORE = ("restore it from a copy of the workdir, or train again in a new "
            "--workdir")
# What to do when a file of the workdir is damaged, by file.
FIXES = {
    "config.json": f"it holds the run's settings: {_RESTORE}",
    "data.json": "delete it to resume without checking the data "
                 "(kerasrnn-train writes it again)",
    "vocab.txt": "delete it and run the same kerasrnn-train command: it "
                 "builds it again from the training data (data.json checks "
                 "that it is the same)",
    "history.csv": "while the run is unfinished, kerasrnn-train restores it "
                   f"from backup/; otherwise {_RESTORE}",
    "results.json": "run the same kerasrnn-train command again: it computes "
                    "the results again from the best checkpoint",
    "checkpoints/best.json": "delete it: it only records the best step, "
                             "which history.csv also holds",
    BEST: "while the run trains, its next better evaluation replaces it; "
          f"otherwise {_RESTORE}",
}


def path(workdir, name):
  return os.path.join(workdir, name)


@contextlib.contextmanager
def locked(workdir):
  """Holds the exclusive lock of `workdir` (created if need be) in the block.

  An OS lock (flock) on the directory itself: the kernel releases it when
  its holder ends or is killed, so a killed run never leaves a stale lock.
  The holder names itself in workdir/.lock (pid, host, start time; removed
  at the end); a second holder is refused with one line quoting it, and
  changes nothing in the workdir. Leftover temporaries of killed writers
  are removed once the lock is held.
  """
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise UserError(f"--workdir {workdir} is a file, not a directory; pass a "
                    "new directory or a run's workdir")
  try:
    os.makedirs(workdir, exist_ok=True)
    fd = os.open(workdir, os.O_RDONLY | os.O_DIRECTORY)
  except OSError as e:
    raise UserError(f"cannot create the workdir {workdir} "
                    f"({files.reason(e)}); pass a directory you can write "
                    "to") from None
  holder = path(workdir, LOCK)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      try:
        with open(holder, encoding="utf-8") as f:
          who = f.read().strip()
      except OSError:
        who = ""
      raise UserError(
          f"{workdir} is in use by another training ({who or 'starting'}); "
          "wait for it to end or stop it, or use another --workdir") from None
    files.write_text(holder, f"pid {os.getpid()} on {socket.gethostname()} "
                     f"since {time.strftime('%Y-%m-%d %H:%M:%S %Z')}\n")
    for directory in (workdir, path(workdir, "checkpoints"),
                      path(workdir, BACKUP)):
      files.remove_leftovers(directory)
    try:
      yield
    finally:
      if os.path.exists(holder):
        os.remove(holder)
  finally:
    os.close(fd)


def read_json(workdir, name):
  """The JSON file `name` of `workdir`, or None if it does not exist."""
  p = path(workdir, name)
  if not os.path.exists(p):
    return None
  return files.read_json(p, FIXES[name])


def write_json(workdir, name, value):
  files.write_json(path(workdir, name), value)


# Sentence mode's layout: 2 = sentences longer than data.max_length read in
# chunks that carry the state (kerasrnn 0.4); before, cut into separate rows.
SENTENCE_LAYOUT = 2


def data_fingerprint(corpus):
  """{sha256, tokens, vocab_size, sentence_layout}: the content of a
  corpus's vocabulary and token ids (`kerasrnn.data.store.fingerprint`),
  and how sentence mode lays them out."""
  return {"sha256": corpus.fingerprint,
          "tokens": {n: int(s.num_tokens) for n, s in corpus.splits.items()},
          "vocab_size": len(corpus.vocab),
          "sentence_layout": SENTENCE_LAYOUT}


def _identity_differences(stored, current):
  """The differences between two config dicts that change what a run computes."""
  return [d for d in config_lib.differences(config_lib.with_defaults(stored),
                                            current)
          if not d.startswith(tuple(f + ":" for f in PORTABLE_FIELDS
                                    + LENGTH_FIELDS))]


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


def check_data(workdir, corpus, data):
  """Refuses to resume a run on data other than those it started with, or
  a sentence-mode run whose batches this version lays out otherwise.

  Args:
    workdir: the run's directory.
    corpus: the `Corpus` it is given now.
    data: the run's `config.data`.
  """
  stored = read_json(workdir, "data.json")
  if stored is None:  # Runs from before data.json; nothing to compare.
    return
  now = data_fingerprint(corpus)
  if stored.get("sha256") != now["sha256"]:
    raise UserError(
        f"workdir {workdir} holds a run on other data (tokens per split "
        f"{stored.get('tokens')}, now {now['tokens']}); point data.dir at the "
        "run's data or use a new --workdir")
  if data.mode != "sentence" or stored.get("sentence_layout",
                                           1) == SENTENCE_LAYOUT:
    return
  longest = int(corpus.splits["train"].lengths.max(initial=0))
  if longest > data.max_length:
    raise UserError(
        f"workdir {workdir} holds a sentence-mode run of kerasrnn before 0.4, "
        f"which cut sentences longer than data.max_length={data.max_length} "
        f"(the longest has {longest} tokens) into separate rows; this version "
        "reads them in chunks that carry the state, so its steps would not "
        "continue that run: train it again in a new --workdir, or finish it "
        "with kerasrnn 0.3")


def claim(workdir, config, corpus):
  """Writes the run's vocab.txt (and sentencepiece.model), data.json and
  config.json into `workdir`."""
  os.makedirs(workdir, exist_ok=True)
  corpus.vocab.save(path(workdir, "vocab.txt"))
  if corpus.sentencepiece_model:
    files.copy_file(corpus.sentencepiece_model,
                    path(workdir, subword.MODEL_FILE))
  write_json(workdir, "data.json", data_fingerprint(corpus))
  # Last: config.json marks a run (and records this machine's data.dir).
  files.write_text(path(workdir, "config.json"), config_lib.to_json(config))


def load_config(workdir):
  config = read_json(workdir, "config.json")
  if config is None:
    raise UserError(f"{workdir} is not a kerasrnn workdir (no config.json); "
                    "pass the --workdir of a kerasrnn-train run")
  return config_lib.from_dict(config)


def load_vocab(workdir):
  """The run's `Vocabulary`; a missing, cut or corrupt vocab.txt is one line."""
  p = path(workdir, "vocab.txt")
  vocab = Vocabulary.load(p, FIXES["vocab.txt"])
  expected = (read_json(workdir, "data.json") or {}).get("vocab_size")
  if expected and expected != len(vocab):
    raise files.DamagedFile(p, f"{len(vocab)} words, data.json says "
                            f"{expected}", FIXES["vocab.txt"])
  return vocab


def load_best(model, workdir):
  """Loads the best checkpoint of `workdir` into `model`."""
  weights = path(workdir, BEST)
  if not os.path.exists(weights):
    raise UserError(f"{workdir} has no checkpoint yet ({BEST} is written "
                    "after the first evaluation)")
  files.load_weights(model, weights, FIXES[BEST])


def save_best(workdir, model, info):
  """Writes `model`'s weights as the best checkpoint, then its best.json."""
  files.save_weights(model, path(workdir, BEST))
  write_json(workdir, "checkpoints/best.json", info)


def read_history(workdir):
  """Rows of history.csv as dicts of floats ([] if there is none).

  A history of kerasrnn before 0.3 (one row per epoch) comes in today's
  fields: `seconds` summed up to each row, `step` and `tokens` NaN (they
  need the data; `with_steps` fills them in).

  Raises:
    DamagedFile: if the file is cut short, not UTF-8, or its rows are not
      in increasing steps (epochs) with numbers in every field.
  """
  p = path(workdir, "history.csv")
  if not os.path.exists(p):
    return []
  text = files.read_text(p, FIXES["history.csv"])
  header, *lines = csv.reader(io.StringIO(text))

  def damaged(why):
    return files.DamagedFile(p, why, FIXES["history.csv"])

  if tuple(header) not in (HISTORY_FIELDS, STEP_HISTORY_FIELDS,
                           EPOCH_HISTORY_FIELDS):
    raise damaged("its header is not kerasrnn's")
  if not text.endswith("\n"):
    raise damaged("its last line is cut short")
  rows = []
  for number, fields in enumerate(lines, 1):
    if len(fields) != len(header):
      raise damaged(f"row {number} has {len(fields)} fields")
    try:
      row = dict(zip(header, map(float, fields)))
    except ValueError:
      raise damaged(f"row {number} holds a field that is not a number") from None
    rows.append(row)
  if tuple(header) == EPOCH_HISTORY_FIELDS:
    if [r["epoch"] for r in rows] != list(range(1, len(rows) + 1)):
      raise damaged("its rows are not epochs 1, 2, ...")
    total = 0.0
    for row in rows:
      total += row["seconds"]
      row.update(seconds=round(total, 1), step=math.nan, tokens=math.nan)
  elif any(b["step"] <= a["step"] for a, b in zip(rows, rows[1:])):
    raise damaged("its steps do not increase")
  return [{f: r.get(f, math.nan) for f in HISTORY_FIELDS} for r in rows]


def with_steps(rows, steps_per_epoch, tokens_per_epoch):
  """An epoch history's rows (`read_history`) with their steps and tokens."""
  return [dict(r, step=r["epoch"] * steps_per_epoch,
               tokens=r["epoch"] * tokens_per_epoch)
          if math.isnan(r["step"]) else r for r in rows]


def write_history(workdir, rows):
  """Writes history.csv: `rows`, dicts of `HISTORY_FIELDS`, numbers."""
  out = io.StringIO()
  writer = csv.DictWriter(out, HISTORY_FIELDS, lineterminator="\n")
  writer.writeheader()
  writer.writerows({k: _six_digits(v) for k, v in r.items()} for r in rows)
  files.write_text(path(workdir, "history.csv"), out.getvalue())


def _six_digits(value):
  value = float(value)
  return str(int(value)) if value.is_integer() else f"{value:.6g}"


def write_history_row(workdir, row):
  """Adds the row of step `row["step"]`, dropping rows of later steps.

  A run killed after writing step k resumes at step k or earlier; writing
  a step again replaces what the interrupted run wrote for it.
  """
  write_history(workdir, [r for r in read_history(workdir)
                          if r["step"] < row["step"]] + [row])


def best_row(rows):
  """The first row with the lowest finite validation perplexity, or None.

  The best checkpoint holds this row's weights: training saves them when
  an evaluation beats every earlier one in history.csv.
  """
  finite = [r for r in rows if math.isfinite(r["val_perplexity"])]
  return min(finite, key=lambda r: r["val_perplexity"], default=None)


def _saved(directory, kind):
  """{number: weights file} of the `kind` ('step' or 'epoch') states."""
  if not os.path.isdir(directory):
    return {}
  found = (re.fullmatch(kind + r"-(\d+)\.weights\.h5", n)
           for n in os.listdir(directory))
  return {int(m.group(1)): path(directory, m.group(0)) for m in found if m}


def save_state(workdir, model, step, arrays):
  """Writes the resume state after `step` updates into backup/.

  First a copy of history.csv, then `arrays` ({name: array}, the rest of
  the training's state) as step-N.state.npz, then the weights with the
  optimizer's variables (whose file marks the state complete); the last
  `KEEP_STATES` states are kept, anything else in backup/ is removed.
  """
  directory = path(workdir, BACKUP)
  history = path(workdir, "history.csv")
  stem = path(directory, f"step-{step}")
  if os.path.exists(history):
    files.write_text(f"{stem}.history.csv",
                     files.read_text(history, FIXES["history.csv"]))
  files.write_arrays(f"{stem}.state.npz", arrays)
  files.save_weights(model, f"{stem}.weights.h5")
  keep = {f"step-{s}.{kind}" for s in sorted(_saved(directory, "step"))[
      -KEEP_STATES:] for kind in ("weights.h5", "state.npz", "history.csv")}
  for name in os.listdir(directory):
    if name not in keep:
      os.remove(path(directory, name))


def _states(workdir, steps_per_epoch):
  """[(step, weights file, state file or None)], newest first: this
  version's states, and epoch-end states of older versions."""
  directory = path(workdir, BACKUP)
  states = [(s, w, w.replace(".weights.h5", ".state.npz"))
            for s, w in _saved(directory, "step").items()]
  epochs = list(_saved(directory, "epoch").items())
  epochs += compat.keras_backup_state(directory)
  states += [(e * steps_per_epoch, w, None) for e, w in epochs]
  return sorted(states, reverse=True)


def state_steps(workdir, steps_per_epoch):
  """The steps of the resume states in a run's backup/, oldest first."""
  return sorted({s for s, _, _ in _states(workdir, steps_per_epoch)})


def restore_state(workdir, model, steps_per_epoch, at_most=None):
  """Loads the newest readable resume state into `model`.

  A damaged state is passed over for the one before it (its steps are then
  trained again; logged). A damaged or missing history.csv is restored from
  the state's copy.

  Args:
    workdir: the run's directory.
    model: the compiled model, built.
    steps_per_epoch: steps per epoch (older versions' states are per epoch).
    at_most: only states of this step or earlier (a multi-worker run
      resumes where every worker has a state); None = any.

  Returns:
    (step, arrays): the updates the state holds (0: no state, train from
    the start) and the arrays saved with it ({} for an epoch-end state).
  """
  states = [s for s in _states(workdir, steps_per_epoch)
            if at_most is None or s[0] <= at_most]
  if not states:
    return 0, {}
  if not model.optimizer.built:
    model.optimizer.build(model.trainable_variables)
  damaged = []
  for step, weights, arrays in states:
    try:
      files.load_weights(model, weights, "")
      arrays = files.read_arrays(arrays, "") if arrays else {}
    except files.DamagedFile as e:
      damaged.append(e.problem)
      continue
    if damaged:
      logging.warning("%s: resuming from the state of step %d instead "
                      "(the steps after it are trained again)",
                      "; ".join(damaged), step)
    _restore_history(workdir, weights.replace(".weights.h5", ".history.csv"))
    return step, arrays
  directory = path(workdir, BACKUP)
  raise UserError(
      f"every resume state in {directory} is damaged ({'; '.join(damaged)}); "
      f"delete {directory} to train again from step 0 (history.csv and the "
      "best checkpoint are kept), or restore it from a copy of the workdir")


def _restore_history(workdir, copy):
  """Puts back history.csv from a state's copy if it is damaged."""
  try:
    if read_history(workdir) or not os.path.exists(copy):
      return
    logging.warning("history.csv is missing; restored from %s", copy)
  except files.DamagedFile as e:
    if not os.path.exists(copy):
      raise
    logging.warning("%s; restored it from %s", e.problem, copy)
  files.write_text(path(workdir, "history.csv"),
                   files.read_text(copy, FIXES["history.csv"]))
