"""Keras callbacks of a training run; each is resume-safe and atomic."""
import csv
import io
import json
import math
import os
import time

import keras

from kerasrnn.models import rnn_layers

HISTORY_FIELDS = ("epoch", "learning_rate", "train_perplexity",
                  "val_perplexity", "test_perplexity", "seconds",
                  "tokens_per_second")


def write_atomically(path, data):
  """Writes text to `path` through a temporary file and a rename."""
  tmp = f"{path}.tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    f.write(data)
  os.replace(tmp, path)


def reset_states(model):
  for layer in rnn_layers(model):
    if layer.stateful:
      layer.reset_state()


class TrainingEpoch(keras.callbacks.Callback):
  """Sets the epoch variable the training pipeline's order is drawn from.

  Args:
    variable: from `kerasrnn.data.pipelines.epoch_variable`.
  """

  def __init__(self, variable):
    super().__init__()
    self.variable = variable

  def on_epoch_begin(self, epoch, logs=None):
    self.variable.assign(epoch)


class ResetStates(keras.callbacks.Callback):
  """Zeroes stateful RNN state at each epoch and before each evaluation."""

  def on_epoch_begin(self, epoch, logs=None):
    reset_states(self.model)

  def on_test_begin(self, logs=None):
    reset_states(self.model)


class TestPerplexity(keras.callbacks.Callback):
  """Adds `test_perplexity` to each epoch's logs (for convergence curves).

  Args:
    evaluate: a function (model) -> perplexity of the test split.
  """

  def __init__(self, evaluate):
    super().__init__()
    self._evaluate = evaluate

  def on_epoch_end(self, epoch, logs=None):
    if logs is not None:
      logs["test_perplexity"] = self._evaluate(self.model)


class EpochHistory(keras.callbacks.Callback):
  """Writes history.csv, one row per epoch, exactly once even after resumes.

  A row is keyed by its epoch (1-based): writing epoch k drops any rows of
  epoch >= k left by an interrupted run, then rewrites the file atomically.

  Args:
    path: the CSV file.
    train_tokens: target tokens per training epoch (for tokens/second).
  """

  def __init__(self, path, train_tokens):
    super().__init__()
    self.path = path
    self.train_tokens = train_tokens

  def on_epoch_begin(self, epoch, logs=None):
    self._start = time.perf_counter()
    self._train_seconds = None

  def on_test_begin(self, logs=None):
    if self._train_seconds is None:
      self._train_seconds = time.perf_counter() - self._start

  def on_epoch_end(self, epoch, logs=None):
    logs = logs or {}
    seconds = time.perf_counter() - self._start
    train_seconds = self._train_seconds or seconds
    row = {"epoch": epoch + 1,
           "learning_rate": logs.get("learning_rate", float("nan")),
           "train_perplexity": logs.get("perplexity", float("nan")),
           "val_perplexity": logs.get("val_perplexity", float("nan")),
           "test_perplexity": logs.get("test_perplexity", float("nan")),
           "seconds": round(seconds, 1),
           "tokens_per_second": round(self.train_tokens / train_seconds, 1)}
    rows = [r for r in read_history(self.path) if int(r["epoch"]) <= epoch]
    out = io.StringIO()
    writer = csv.DictWriter(out, HISTORY_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows + [{k: _fmt(v) for k, v in row.items()}])
    write_atomically(self.path, out.getvalue())


def _fmt(value):
  return value if isinstance(value, int) else f"{float(value):.6g}"


def read_history(path):
  """Rows of a history.csv as dicts of strings ([] if there is none)."""
  if not os.path.exists(path):
    return []
  with open(path, encoding="utf-8") as f:
    return list(csv.DictReader(f))


class BestCheckpoint(keras.callbacks.Callback):
  """Keeps the weights of the epoch with the lowest validation perplexity.

  The best value survives restarts (best.json beside the weights), weights
  are written to a temporary file and renamed, and a NaN perplexity never
  counts as better, so a diverged epoch cannot replace a good checkpoint.

  Args:
    directory: where best.weights.h5 and best.json go.
    monitor: the logs key to minimise.
  """

  def __init__(self, directory, monitor="val_perplexity"):
    super().__init__()
    self.directory = directory
    self.monitor = monitor
    self.weights_path = os.path.join(directory, "best.weights.h5")
    self.info_path = os.path.join(directory, "best.json")

  def best(self):
    if not os.path.exists(self.info_path):
      return None
    with open(self.info_path, encoding="utf-8") as f:
      return json.load(f)

  def on_epoch_end(self, epoch, logs=None):
    value = float((logs or {}).get(self.monitor, float("nan")))
    best = self.best()
    if math.isnan(value) or (best and value >= best[self.monitor]):
      return
    os.makedirs(self.directory, exist_ok=True)
    tmp = os.path.join(self.directory, "tmp.weights.h5")
    self.model.save_weights(tmp)
    os.replace(tmp, self.weights_path)
    write_atomically(self.info_path,
                     json.dumps({"epoch": epoch + 1, self.monitor: value}))
