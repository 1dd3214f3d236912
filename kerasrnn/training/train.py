"""Trains a language model from a config into a workdir, resumably."""
import dataclasses
import math
import os
import time

from absl import logging
import keras
from keras import ops
import numpy as np
import tensorflow as tf

from kerasrnn import config as config_lib
from kerasrnn import fast_path
from kerasrnn import files
from kerasrnn import workdir as wd
from kerasrnn.data import pipelines
from kerasrnn.data.corpus import load_corpus
from kerasrnn.errors import UserError
from kerasrnn.models.parameters import model_parameters
from kerasrnn.training import callbacks as cb
from kerasrnn.training import distribute
from kerasrnn.training import evaluation
from kerasrnn.training import schedules


def make_optimizer(train, rate=None):
  """SGD or Adam with global-norm clipping, in the paper's loss terms, and
  the moving average of the weights if train.ema_momentum asks for one
  (from step train.ema_start on: `averaged_from`); under
  train.precision=mixed_float16 wrapped in Keras's loss scaling.

  Args:
    train: the `config.train` ConfigDict.
    rate: a function (iterations) -> learning rate, read at every update
      (`schedules.scheduled`); None = the constant train.learning_rate.
  """
  kwargs = dict(global_clipnorm=train.clip_norm or None)
  optimizer = {"sgd": keras.optimizers.SGD,
               "adam": keras.optimizers.Adam}[train.optimizer]
  if train.ema_momentum:
    kwargs.update(use_ema=True, ema_momentum=train.ema_momentum)
    optimizer = averaged_from(optimizer, train.ema_start)
  if rate is not None:
    optimizer = schedules.scheduled(optimizer, rate)
  optimizer = optimizer(train.learning_rate, **kwargs)
  if train.precision == "mixed_float16":
    optimizer = LossScale(optimizer)
  return optimizer


class LossScale(keras.optimizers.LossScaleOptimizer):
  """Keras's dynamic loss scaling (2^15 at first, halved at each step whose
  gradients are not finite, which then updates nothing; doubled after 2,000
  finite ones), where a skipped step still counts as a step.

  kerasrnn's loop reads the batch of a step from the optimizer's step count
  (`iterations`); Keras's count only updates, so a skipped update would make
  the loop read a batch again, and differently after a resume.
  """

  @property
  def iterations(self):
    # The inner optimizer's count (Keras 3.8 kept a count of its own).
    return self.inner_optimizer.iterations

  def _stateful_handle_non_finite_grads(self):
    super()._stateful_handle_non_finite_grads()
    self.inner_optimizer.iterations.assign_add(1)


def averaged_from(optimizer_class, start):
  """`optimizer_class` with a weight average that kerasrnn's loop uses.

  Keras's `fit` puts the average into the weights at its end
  (`finalize_variable_values`); kerasrnn runs `fit` once per stretch of
  steps between evaluations and saves, so here that does nothing, and the
  loop puts the average in only to evaluate and checkpoint it
  (`use_average`, then the trained weights come back).

  Keras's average starts at the first step, so after a short run much of
  it is still the early weights (0.998^900 = 16 % of them after 900 steps
  at momentum 0.998). Until `start` updates are done the average here
  follows the weights (momentum 0); from then on it averages them at
  `ema_momentum`.
  """

  class Averaged(optimizer_class):

    @property
    def ema_momentum(self):
      # Read by Keras's average update, at every step.
      if not start:
        return self._ema_momentum
      return ops.where(self.iterations < start, 0.0, self._ema_momentum)

    @ema_momentum.setter
    def ema_momentum(self, value):
      self._ema_momentum = value

    def finalize_variable_values(self, var_list):
      del var_list  # fit's end: the weights stay the trained ones.

    def use_average(self, var_list):
      """Overwrites `var_list` with their averages."""
      super().finalize_variable_values(var_list)

  Averaged.__name__ = optimizer_class.__name__
  return Averaged


def compile_model(model, config, rate=None):
  """Compiles a `LanguageModel`: it brings its own loss and perplexity.

  Args:
    rate: the learning rate by step (see `make_optimizer`).
  """
  model.compile(optimizer=make_optimizer(config.train, rate),
                **fast_path.compile_options(config))
  return model


def _log_parameters(model, config, vocab_size):
  expected = model_parameters(config.model, vocab_size)
  for layer in model.layers:
    if layer.name in expected:
      logging.info("parameters %-10s %12s (formula %s)", layer.name,
                   f"{layer.count_params():,}", f"{expected[layer.name]:,}")
  logging.info("parameters total %s", f"{model.count_params():,}")


def train_and_evaluate(config, workdir, extra_callbacks=()):
  """Trains per `config`, writing everything to `workdir`; resumes if cut.

  One training at a time per workdir (`workdir.locked`). A run killed at
  any moment resumes from its last resume state (saved at every
  evaluation and every train.save_every_steps) and ends as the
  uninterrupted run would; one stopped by train.max_hours continues with
  the same command; a finished run is not trained again, unless
  train.steps or train.epochs now ask for more, when it trains on.

  Args:
    config: a ConfigDict from `kerasrnn.config` (validated here).
    workdir: the run's directory (created; must be empty or hold this run).
    extra_callbacks: more Keras callbacks for `fit` and the evaluations,
      run after kerasrnn's own (fit runs once per stretch of steps between
      evaluations or saves; an evaluation after the stretch that ends at
      it, and the resume state is saved after that).

  Returns:
    The results dict also written to results.json: best step, final
    train/valid/test perplexity of the best checkpoint, steps, wall time,
    parameter count; or, for a run stopped by train.max_hours,
    {"stopped_at_step": step}.
  """
  config_lib.validate(config)
  strategy = distribute.make_strategy(config.train.distribute)  # First op.
  chief, task_id = distribute.task(strategy)
  # Every worker of a multi-worker run trains alike; the chief writes the
  # run's workdir, the others a directory of their own (their resume state,
  # kept at the end as the chief's is, so that the run can be extended).
  run_dir = workdir if chief else wd.path(workdir, f"workers/{task_id}")
  # A peer lost at any point, start-up included (one that refused its
  # workdir), is one line on the others.
  with distribute.lost_workers_reported(strategy), wd.locked(run_dir):
    return _train(config, workdir, run_dir, strategy, chief, extra_callbacks)


def _previous_results(workdir):
  """results.json if the run finished, None if not; a damaged one is logged
  and computed again."""
  try:
    return wd.read_json(workdir, "results.json")
  except files.DamagedFile as e:
    logging.warning("%s; computing them again from the best checkpoint",
                    e.problem)
    return None


def _stored_vocab(run_dir):
  """The run's vocabulary, or None if vocab.txt must be built again (it is
  missing or damaged; data.json then checks that the rebuilt one is it)."""
  if not os.path.exists(wd.path(run_dir, "vocab.txt")):
    logging.warning("%s has no vocab.txt; building it again from the "
                    "training data", run_dir)
    return None
  try:
    return wd.load_vocab(run_dir)
  except files.DamagedFile as e:
    logging.warning("%s; building it again from the training data", e.problem)
    return None


def _same_length(run_dir, config):
  """Whether the stored config asks for the run's length that `config` does."""
  stored = config_lib.from_dict(wd.read_json(run_dir, "config.json")).train
  return (stored.epochs, stored.steps) == (config.train.epochs,
                                           config.train.steps)


def _train(config, workdir, run_dir, strategy, chief, extra_callbacks):
  # 1. Claim the workdir: this run, a finished one, or one to extend.
  resumed = wd.check_config(run_dir, config)
  finished = _previous_results(workdir)
  damaged_results = not finished and os.path.exists(
      wd.path(workdir, "results.json"))
  vocab = _stored_vocab(run_dir) if resumed else None
  if finished and vocab and _same_length(run_dir, config):
    logging.info("%s already holds a finished run; nothing to do", workdir)
    return finished
  # 2. Read the data.
  keras.utils.set_random_seed(config.train.seed)
  corpus = load_corpus(config.data, vocab)
  if resumed:
    wd.check_data(run_dir, corpus, config.data)
  data = _Data(config, corpus, strategy)
  total = config.train.steps or config.train.epochs * data.steps_per_epoch
  done = finished and finished.get(
      "steps", finished.get("epochs", 0) * data.steps_per_epoch)
  if finished and total <= done:
    wd.claim(run_dir, config, corpus)  # vocab.txt was missing or damaged.
    logging.info("%s already holds a finished run of %d steps; nothing to do",
                 workdir, done)
    return finished
  # 3. Build the model and put back where the run stopped.
  with strategy.scope():
    run = Run(config, data.steps_per_epoch, total)
    model = compile_model(fast_path.build_model(
        config, len(corpus.vocab), batch_size=data.replica_batch_size),
        config, rate=run.rate)
    run.seeds = [int(v.numpy()[0]) for v in cb.seed_states(model)]
    # Where every worker has a state (a worker may have died between its
    # own save and another's).
    shared = distribute.common_step(
        strategy, wd.state_steps(run_dir, data.steps_per_epoch))
    step, carried = wd.restore_state(run_dir, model, data.steps_per_epoch,
                                     at_most=shared)
    distribute.check_same_step(strategy, step)
  if finished and step < done:
    raise UserError(
        f"{workdir} finished before kerasrnn kept a run's last resume state, "
        "so it cannot train on; train the longer run in a new --workdir")
  if damaged_results and not step:  # Finished before 0.3: no state kept.
    step = total
  run.resume(run_dir, model, step, carried, data.tokens_per_epoch)
  wd.claim(run_dir, config, corpus)
  if finished and chief:
    logging.info("extending the finished run in %s from step %d to %d",
                 workdir, step, total)
    os.remove(wd.path(workdir, "results.json"))
  elif step:
    logging.info("resuming %s after step %d (epoch %.2f)", run_dir, step,
                 step / data.steps_per_epoch)
  _log_parameters(model, config, len(corpus.vocab))
  logging.info("%s", fast_path.describe(config))
  # 4. Train: stretches of steps between evaluations and saves.
  progress = cb.Progress(run, config.train.log_every_steps, run.writer,
                         config.train.verbose)
  callbacks = [progress, keras.callbacks.TerminateOnNaN()]
  while run.step < total:
    if run.step % data.steps_per_epoch == 0:
      cb.start_epoch(model, run.seeds, run.step // data.steps_per_epoch)
    end = run.next_stop(run.step)
    run.fit_starts()
    model.fit(data.train(run.step, end), epochs=1, verbose=0,
              callbacks=callbacks + list(extra_callbacks), shuffle=False)
    run.add(model)
    diverged = not math.isfinite(float(model.perplexity.result()))
    if run.is_evaluation(run.step) or diverged:
      _evaluate(run, model, data, run_dir, extra_callbacks)
    if diverged:
      break
    if progress.out_of_time:
      run.save(run_dir, model)
      logging.info(
          "stopped after train.max_hours=%g at step %d (epoch %.2f); run "
          "the same command to continue", config.train.max_hours,
          run.step, run.step / data.steps_per_epoch)
      return {"stopped_at_step": run.step}
    if run.is_save(run.step) or run.is_evaluation(run.step):
      run.save(run_dir, model)
  rows = wd.read_history(run_dir)
  if run.step and (not rows or rows[-1]["step"] < run.step):
    # A run stopped by train.max_hours between evaluations, ended where it
    # stopped (train.steps set to its step): its last step is validated.
    _evaluate(run, model, data, run_dir, extra_callbacks)
  if not os.path.exists(wd.path(run_dir, wd.BEST)):
    raise UserError("training diverged (perplexity not finite) before its "
                    "first checkpoint; lower train.learning_rate or "
                    "train.clip_norm and use a new --workdir")
  # 5. Results: the best checkpoint on every split.
  wd.load_best(model, run_dir)
  cb.reset_states(model)
  head = {"train": config.train.results_train_tokens}
  scores = {s: data.perplexity(model, s, head.get(s), extra_callbacks)
            for s in corpus.splits}
  results = _results(run_dir, model, scores, len(corpus.vocab))
  # What a word model's <unk> hides from its perplexity (0 with pieces).
  results.update({f"{s}_oov_rate": r for s, r in corpus.oov_rates.items()})
  if chief:
    wd.write_json(workdir, "results.json", results)
  logging.info("results: %s", results)
  return results


class _Data:
  """The run's datasets: training from any step, and one pass of each
  split for evaluation, laid out for the strategy."""

  def __init__(self, config, corpus, strategy):
    self.config, self.corpus, self.strategy = config, corpus, strategy
    data = config.data
    self.layout = pipelines.Layout(data, corpus, "train", training=True)
    self.steps_per_epoch = self.layout.steps_per_epoch
    self.tokens_per_epoch = pipelines.num_targets(data, corpus.splits["train"])
    self.replica_batch_size = None  # The config's.
    if strategy.num_replicas_in_sync > 1:
      self.replica_batch_size = distribute.replica_batch_size(
          strategy, data.batch_size)
    self._stream_replicas = (data.mode == "stream" and
                             strategy.num_replicas_in_sync > 1)
    self._held_out = {}

  def _distributed(self, corpus, split, training, start, stop):
    if self._stream_replicas:
      return distribute.stream_dataset(self.strategy, self.config.data,
                                       corpus, split, start, stop)
    if split == "train" and corpus is self.corpus:
      ds = self.layout.dataset(start, stop)
    else:
      ds = pipelines.Layout(self.config.data, corpus, split,
                            training).dataset(start, stop)
    if distribute.is_multi_worker(self.strategy):
      ds = distribute.shard_by_data(ds)
    return ds

  def train(self, start, stop):
    """The training batches of global steps [start, stop)."""
    return self._distributed(self.corpus, "train", True, start, stop)

  def split(self, split, tokens=0):
    """The `Split` `split`, or its first sentences up to `tokens` tokens
    (0, None: all)."""
    whole = self.corpus.splits[split]
    return whole.head(tokens) if tokens else whole

  def evaluation(self, split, tokens=0):
    """One pass over `self.split(split, tokens)`."""
    key = (split, tokens)
    if key not in self._held_out:
      corpus = dataclasses.replace(self.corpus, splits=dict(
          self.corpus.splits, **{split: self.split(split, tokens)}))
      self._held_out[key] = self._distributed(corpus, split, False, 0, None)
    return self._held_out[key]

  def perplexity(self, model, split, tokens=0, callbacks=()):
    """(perplexity, target tokens, perplexity per word) of one pass."""
    ppl, targets = evaluation.perplexity(
        model, self.evaluation(split, tokens), callbacks)
    return ppl, targets, evaluation.per_word(ppl, targets,
                                             self.split(split, tokens))


class Run:
  """The state of a training run between steps: what the resume state
  holds besides the weights, and the run's clock and schedule.

  Attributes:
    step: updates done.
    tokens: target tokens trained on.
    sums: [NLL, target tokens] trained since the last history row (the
      model's metric holds those of the current `fit`).
    seconds: training and evaluation time of the run before this command.
  """

  def __init__(self, config, steps_per_epoch, total_steps):
    self.train_config = config.train
    self.steps_per_epoch = steps_per_epoch
    self.total_steps = total_steps
    self.step, self.tokens, self.seconds = 0, 0.0, 0.0
    self.sums = np.zeros(2)
    self.seeds = []
    self.scale = schedules.plateau_scale()
    self._start = self._fit_start = time.monotonic()
    self._train_seconds = 0.0
    self.writer = self._valid_writer = None

  # -- the schedule, evaluations and saves --
  def rate(self, step):
    """The learning rate of the update after `step` updates."""
    return schedules.learning_rate(self.train_config, step,
                                   self.steps_per_epoch, self.total_steps,
                                   self.scale)

  def learning_rate(self, step):
    return float(keras.ops.convert_to_numpy(self.rate(max(step, 0))))

  def is_evaluation(self, step):
    every = self.train_config.eval_every_steps or self.steps_per_epoch
    return step % every == 0 or step == self.total_steps

  def is_save(self, step):
    every = self.train_config.save_every_steps
    return bool(every) and step % every == 0

  def next_stop(self, step):
    """The next step after `step` where `fit` stops: an evaluation, a save,
    an epoch's end or the run's end."""
    stops = [self.total_steps, _next_multiple(step, self.steps_per_epoch)]
    for every in (self.train_config.eval_every_steps,
                  self.train_config.save_every_steps):
      if every:
        stops.append(_next_multiple(step, every))
    return min(stops)

  def out_of_time(self, now):
    hours = self.train_config.max_hours
    return bool(hours) and now - self._start >= hours * 3600

  # -- counting --
  def train_sums(self, model):
    """[NLL, tokens] since the last row, the current `fit`'s included."""
    return self.sums + [float(model.perplexity.total.numpy()),
                        float(model.perplexity.count.numpy())]

  def fit_starts(self):
    self._fit_start = time.monotonic()

  def add(self, model):
    """Counts the `fit` that just ended."""
    nll, count = self.train_sums(model) - self.sums
    self.sums += [nll, count]
    self.tokens += count
    self.step = int(model.optimizer.iterations.numpy())
    self._train_seconds += time.monotonic() - self._fit_start

  def elapsed(self):
    return self.seconds + time.monotonic() - self._start

  def row(self, val, test):
    """The history row of an evaluation now, from the validation and test
    (perplexity, per word) (NaN: none); starts the next row's sums."""
    (val_perplexity, val_word), (test_perplexity, test_word) = val, test
    nll, count = self.sums
    row = {"step": self.step, "epoch": self.step / self.steps_per_epoch,
           "tokens": self.tokens,
           "learning_rate": self.learning_rate(self.step - 1),
           "train_perplexity": _exp(nll / count) if count else math.nan,
           "val_perplexity": val_perplexity,
           "test_perplexity": test_perplexity,
           "seconds": round(self.elapsed(), 1),
           "tokens_per_second": round(count / max(self._train_seconds, 1e-9),
                                      1),
           "val_word_perplexity": _nan_if_none(val_word),
           "test_word_perplexity": _nan_if_none(test_word)}
    self.sums[:] = 0
    self._train_seconds = 0.0
    return row

  def set_scale(self, rows):
    """plateau: learning_rate / decay for every validation that did not
    improve on the best before it (from history.csv, so a resumed run has
    the same)."""
    best, worse = math.inf, 0
    for r in rows:
      if r["val_perplexity"] < best:
        best = r["val_perplexity"]
      else:
        worse += 1
    if self.train_config.schedule == "plateau":
      self.scale.assign(1.0 / self.train_config.decay**worse)

  # -- the resume state --
  def save(self, run_dir, model):
    arrays = cb.carried_state(model)
    arrays.update(run_tokens=np.float64(self.tokens),
                  run_sums=np.asarray(self.sums, np.float64),
                  run_seconds=np.float64(self.elapsed()),
                  run_train_seconds=np.float64(self._train_seconds))
    wd.save_state(run_dir, model, self.step, arrays)

  def resume(self, run_dir, model, step, carried, tokens_per_epoch):
    """Takes up the state restored at `step` (`carried`: its arrays)."""
    self.step = step
    if carried:
      cb.set_carried_state(model, carried)
    rows = wd.read_history(run_dir)
    if rows and math.isnan(rows[-1]["step"]):  # An epoch history (< 0.3).
      rows = wd.with_steps(rows, self.steps_per_epoch, tokens_per_epoch)
      wd.write_history(run_dir, rows)
    rows = [r for r in rows if r["step"] <= step]
    self.tokens = float(carried.get(
        "run_tokens", rows[-1]["tokens"] if rows else 0.0))
    self.sums = np.array(carried.get("run_sums", [0.0, 0.0]), np.float64)
    self.seconds = float(carried.get(
        "run_seconds", rows[-1]["seconds"] if rows else 0.0))
    self._train_seconds = float(carried.get("run_train_seconds", 0.0))
    self._start = time.monotonic()
    self.set_scale(rows)
    self.writer = tf.summary.create_file_writer(
        wd.path(run_dir, "tensorboard/train"))
    self._valid_writer = tf.summary.create_file_writer(
        wd.path(run_dir, "tensorboard/validation"))

  def log_evaluation(self, row):
    with self._valid_writer.as_default(step=self.step):
      tf.summary.scalar("perplexity", row["val_perplexity"])
      if math.isfinite(row["test_perplexity"]):
        tf.summary.scalar("test_perplexity", row["test_perplexity"])
    per_word = row["val_word_perplexity"]
    if math.isfinite(per_word) and per_word != row["val_perplexity"]:
      with self._valid_writer.as_default(step=self.step):
        tf.summary.scalar("word_perplexity", per_word)
    logging.info("step %s (epoch %.2f): validation perplexity %.2f%s, "
                 "training %.2f, %s tokens/s", f"{self.step:,}", row["epoch"],
                 row["val_perplexity"],
                 f" ({per_word:.2f} per word)" if math.isfinite(per_word)
                 and per_word != row["val_perplexity"] else "",
                 row["train_perplexity"], f"{row['tokens_per_second']:,.0f}")


def _fit_sums(model):
  """[NLL, tokens] of the current `fit` (the model's perplexity metric)."""
  return np.array([float(model.perplexity.total.numpy()),
                   float(model.perplexity.count.numpy())])


def _exp(x):
  return math.exp(x) if x < 700 else math.inf  # NaN stays NaN.


def _next_multiple(step, every):
  return (step // every + 1) * every


def _evaluate(run, model, data, run_dir, callbacks):
  """Validates (and tests, if asked) at `run.step`: a history row, the best
  checkpoint if it is the best, the plateau schedule's factor. The carried
  recurrent state is kept for the training steps after it."""
  train = run.train_config
  carried = cb.carried_state(model)
  with cb.averaged_weights(model):
    val, _, val_word = data.perplexity(model, "valid", train.eval_tokens,
                                       callbacks)
    test, _, test_word = (data.perplexity(model, "test", 0, callbacks)
                          if train.eval_test_every_epoch
                          else (math.nan, 0, math.nan))
    row = run.row((val, val_word), (test, test_word))
    wd.write_history_row(run_dir, row)
    rows = wd.read_history(run_dir)
    best = wd.best_row(rows)
    if best is not None and best["step"] == run.step:
      wd.save_best(run_dir, model, {"step": run.step, "epoch": row["epoch"],
                                    "val_perplexity": val})
  cb.set_carried_state(model, carried)
  run.set_scale(rows)
  run.log_evaluation(row)


def _results(run_dir, model, scores, vocab_size):
  """The run's results.json: the best checkpoint's figures and the history's."""
  history = wd.read_history(run_dir)
  best = wd.best_row(history)
  results = {"best_step": int(best["step"]),
             "best_epoch": _number(best["epoch"]),
             "steps": int(history[-1]["step"]),
             "epochs": _number(history[-1]["epoch"]),
             "wall_seconds": history[-1]["seconds"],
             "diverged": not math.isfinite(history[-1]["train_perplexity"]),
             "parameters": model.count_params(),
             "vocab_size": vocab_size}
  for split, (ppl, tokens, per_word) in scores.items():
    results[f"{split}_perplexity"] = ppl
    results[f"{split}_tokens"] = tokens
    if per_word is not None:  # A store with word counts.
      results[f"{split}_word_perplexity"] = per_word
  return results


def _nan_if_none(value):
  return math.nan if value is None else value


def _number(value):
  """An int where a float is whole (epochs in results.json)."""
  return int(value) if float(value).is_integer() else round(value, 4)
