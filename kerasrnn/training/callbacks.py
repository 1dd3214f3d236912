"""Keras callbacks of a training run; what they write survives restarts."""
import time

import keras
import numpy as np

from kerasrnn import workdir as wd
from kerasrnn.models import rnn_layers


def reset_states(model):
  for layer in rnn_layers(model):
    if layer.stateful:
      layer.reset_state()


def seed_states(model):
  """The states of the model's random seed generators (dropout masks)."""
  return [v for v in model.variables
          if v.path.endswith("seed_generator_state")]


class TrainingEpoch(keras.callbacks.Callback):
  """Draws each epoch's randomness from (seed, epoch), so that a resumed
  epoch is the uninterrupted one: the training pipeline's order (the epoch
  variable) and the dropout masks (each seed generator restarts its count
  at epoch * 2**20; Keras does not checkpoint seed generators).

  Args:
    variable: from `kerasrnn.data.pipelines.epoch_variable`.
  """

  def __init__(self, variable):
    super().__init__()
    self.variable = variable

  def on_train_begin(self, logs=None):
    self._seeds = [int(v.numpy()[0]) for v in seed_states(self.model)]

  def on_epoch_begin(self, epoch, logs=None):
    self.variable.assign(epoch)
    for state, seed in zip(seed_states(self.model), self._seeds):
      state.assign(np.array([seed, epoch * 2**20], state.dtype))


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


class AveragedWeights(keras.callbacks.Callback):
  """Evaluates and checkpoints the optimizer's moving average of the weights.

  With `use_ema` (train.ema_momentum), from the start of each epoch's
  validation to this callback's turn at the epoch's end, the model holds
  the average (`finalize_variable_values`, public Keras API): validation,
  `TestPerplexity` and `BestCheckpoint` (before this callback in the list)
  see it; then the trained weights come back for the next epoch and for
  `ResumeState` (after it), whose state also holds the average (an
  optimizer variable), so a resumed run averages on. Without EMA, nothing.
  """

  def __init__(self):
    super().__init__()
    self._trained = None

  def _active(self):
    return getattr(self.model.optimizer, "use_ema", False)

  def on_test_begin(self, logs=None):
    if self._active() and self._trained is None:
      variables = self.model.trainable_variables
      self._trained = [keras.ops.convert_to_numpy(v) for v in variables]
      self.model.optimizer.finalize_variable_values(variables)

  def on_epoch_end(self, epoch, logs=None):
    if self._trained is not None:
      for variable, value in zip(self.model.trainable_variables, self._trained):
        variable.assign(value)
      self._trained = None


class EpochHistory(keras.callbacks.Callback):
  """Writes the workdir's history.csv, one row per epoch, once per epoch.

  Args:
    workdir: the run's directory.
    train_tokens: target tokens per training epoch (for tokens/second).
  """

  def __init__(self, workdir, train_tokens):
    super().__init__()
    self.workdir = workdir
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
    wd.write_history_row(self.workdir,
                         {k: _six_digits(v) for k, v in row.items()})


def _six_digits(value):
  return value if isinstance(value, int) else f"{float(value):.6g}"


class BestCheckpoint(keras.callbacks.Callback):
  """Keeps the weights of the epoch with the lowest validation perplexity.

  An epoch's weights replace the checkpoint (atomically) when its validation
  perplexity, as history.csv records it, beats every earlier epoch's there.
  Deciding from history.csv, which `EpochHistory` writes before this runs,
  keeps the decision right across restarts at any moment: an epoch trained
  again after a kill compares itself with the same earlier epochs. A NaN or
  infinite perplexity never counts as better, so a diverged epoch cannot
  replace a good checkpoint. (`keras.callbacks.ModelCheckpoint` keeps its
  best value in memory only.)

  Args:
    workdir: the run's directory.
  """

  def __init__(self, workdir):
    super().__init__()
    self.workdir = workdir

  def on_epoch_end(self, epoch, logs=None):
    rows = wd.read_history(self.workdir)[:epoch + 1]
    best = wd.best_row(rows)
    if best is not None and int(best["epoch"]) == epoch + 1:
      wd.save_best(self.workdir, self.model,
                   {"epoch": epoch + 1,
                    "val_perplexity": float(best["val_perplexity"])})


class ResumeState(keras.callbacks.Callback):
  """Saves the resume state at each epoch's end (`workdir.save_state`).

  `workdir.restore_state` loads it before `fit` resumes at the next epoch.
  Keras's `BackupAndRestore` writes its weights and its epoch number to two
  files in place, so a kill between the two resumes the wrong epoch, and a
  half-written number ends the next start in a traceback; here each state
  is one file, written atomically, the epoch in its name.

  Args:
    workdir: the run's directory.
  """

  def __init__(self, workdir):
    super().__init__()
    self.workdir = workdir

  def on_epoch_end(self, epoch, logs=None):
    wd.save_state(self.workdir, self.model, epoch + 1)
