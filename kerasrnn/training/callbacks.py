"""The model's training state between steps, and the progress callback."""
import contextlib
import time

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from kerasrnn.models import rnn_layers


def reset_states(model):
  for layer in rnn_layers(model):
    if layer.stateful:
      layer.reset_state()


def seed_states(model):
  """The states of the model's random seed generators (dropout masks)."""
  return [v for v in model.variables
          if v.path.endswith("seed_generator_state")]


def epoch_seed(seed, epoch):
  """A seed generator's first seed in `epoch`: `seed` in epoch 0, then one
  drawn from (seed, epoch). TensorFlow's random ops read a seed modulo
  2**31 - 2, so each epoch has its own 2**31 draws (masks) before any
  repeats; with the epoch in the count, as before, an epoch of more than
  2**20 draws repeated the next epoch's masks."""
  if not epoch:
    return seed
  state = np.random.SeedSequence([seed % 2**32, epoch]).generate_state(1)
  return int(state[0]) % (2**31 - 2)


def start_epoch(model, seeds, epoch):
  """What each epoch starts from: zero recurrent state, and dropout masks
  drawn from (seed, epoch) (`epoch_seed`), so that an epoch does not
  depend on the ones before.

  Args:
    seeds: the generators' first seeds (`seed_states` before training).
  """
  reset_states(model)
  for state, seed in zip(seed_states(model), seeds):
    state.assign(np.array([epoch_seed(seed, epoch), 0], state.dtype))


def _copies(variable):
  """A variable's copies: one per replica for a replica-local one."""
  return getattr(variable, "values", None) or (variable,)


def _state_variables(model):
  return [v for layer in rnn_layers(model) if layer.stateful
          for v in (layer.states or ())]


def carried_state(model):
  """{name: array} of what a step hands the next one besides the weights:
  the stateful layers' recurrent state (every replica's copy) and the seed
  generators' states."""
  arrays = {}
  for i, v in enumerate(_state_variables(model)):
    arrays[f"rnn_state_{i}"] = np.stack(
        [keras.ops.convert_to_numpy(c) for c in _copies(v)])
  for i, v in enumerate(seed_states(model)):
    arrays[f"seed_state_{i}"] = keras.ops.convert_to_numpy(v)
  return arrays


def set_carried_state(model, arrays):
  """Puts back what `carried_state` took (arrays it lacks are left)."""
  for i, v in enumerate(_state_variables(model)):
    if f"rnn_state_{i}" in arrays:
      for copy, value in zip(_copies(v), arrays[f"rnn_state_{i}"]):
        copy.assign(value)
  for i, v in enumerate(seed_states(model)):
    if f"seed_state_{i}" in arrays:
      v.assign(arrays[f"seed_state_{i}"])


@contextlib.contextmanager
def averaged_weights(model):
  """Holds the optimizer's moving average of the weights in `model` in the
  block (`use_ema`, train.ema_momentum; `train.averaged_from`), then puts
  the trained weights back; without EMA, nothing."""
  # Under loss scaling the average is the inner optimizer's.
  optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)
  if not getattr(optimizer, "use_ema", False):
    yield
    return
  variables = model.trainable_variables
  trained = [keras.ops.convert_to_numpy(v) for v in variables]
  optimizer.use_average(variables)
  try:
    yield
  finally:
    for variable, value in zip(variables, trained):
      variable.assign(value)


class Progress(keras.callbacks.Callback):
  """Logs a progress line and TensorBoard scalars every few steps, and
  stops `fit` when the command's time budget is spent.

  Keras calls it once per `train.steps_per_execution` steps; a line is
  due every `every_steps` steps (0: about once a minute).

  Args:
    run: the training loop's `Run` (step counts, sums since the last
      history row, the learning rate, the budget).
    every_steps: train.log_every_steps.
    writer: a `tf.summary` writer for the training scalars, or None.
    verbose: 0 = no lines.
  """

  def __init__(self, run, every_steps, writer=None, verbose=1):
    super().__init__()
    self.run = run
    self.every_steps = every_steps
    self.writer = writer
    self.verbose = verbose
    self.out_of_time = False
    self._last = None

  def on_train_begin(self, logs=None):
    self._last = (time.monotonic(), self.run.step, self.run.tokens)

  def on_train_batch_end(self, batch, logs=None):
    step = int(self.model.optimizer.iterations.numpy())
    now = time.monotonic()
    if self.run.out_of_time(now):
      self.out_of_time = True
      self.model.stop_training = True
    last_time, last_step, _ = self._last
    due = (step // self.every_steps > last_step // self.every_steps
           if self.every_steps else now - last_time >= 60)
    if due:
      self._log(step, now)

  def _log(self, step, now):
    last_time, last_step, last_tokens = self._last
    nll, count = self.run.train_sums(self.model)
    tokens = self.run.tokens + float(self.model.perplexity.count.numpy())
    rate = (tokens - last_tokens) / max(now - last_time, 1e-9)
    seconds_per_step = (now - last_time) / max(step - last_step, 1)
    loss = nll / max(count, 1)
    lr = self.run.learning_rate(step - 1)
    self._last = (now, step, tokens)
    if self.writer is not None:
      with self.writer.as_default(step=step):
        tf.summary.scalar("perplexity", np.exp(loss))
        tf.summary.scalar("loss", loss)
        tf.summary.scalar("learning_rate", lr)
        tf.summary.scalar("tokens_per_second", rate)
    if self.verbose:
      to_epoch = -step % self.run.steps_per_epoch
      logging.info(
          "step %s/%s (epoch %.2f) | %s tokens/s | loss %.4f perplexity %.2f"
          " | lr %.4g | epoch ends in %s, run in %s", f"{step:,}",
          f"{self.run.total_steps:,}", step / self.run.steps_per_epoch,
          f"{rate:,.0f}", loss, np.exp(loss), lr,
          _duration(to_epoch * seconds_per_step),
          _duration((self.run.total_steps - step) * seconds_per_step))


def _duration(seconds):
  """'1 h 05 min', '3 min 20 s' or '12 s'."""
  seconds = int(round(seconds))
  hours, rest = divmod(seconds, 3600)
  minutes, seconds = divmod(rest, 60)
  if hours:
    return f"{hours} h {minutes:02d} min"
  return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"
