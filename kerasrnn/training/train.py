"""Trains a language model from a config into a workdir, resumably."""
import os
import shutil
import time

from absl import logging
import keras
from keras import ops

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


def learning_rate_schedule(train):
  """Epoch (0-based) -> learning rate: constant, then divided every epoch."""

  def schedule(epoch, lr=None):
    del lr
    return train.learning_rate / train.decay**max(0, epoch + 1 - train.decay_after)

  return schedule


def make_optimizer(train):
  """SGD or Adam with global-norm clipping, in the paper's loss terms, and
  the moving average of the weights if train.ema_momentum asks for one
  (from step train.ema_start on: `averaged_from`)."""
  kwargs = dict(global_clipnorm=train.clip_norm or None)
  optimizer = {"sgd": keras.optimizers.SGD,
               "adam": keras.optimizers.Adam}[train.optimizer]
  if train.ema_momentum:
    kwargs.update(use_ema=True, ema_momentum=train.ema_momentum)
    optimizer = averaged_from(optimizer, train.ema_start)
  return optimizer(train.learning_rate, **kwargs)


def averaged_from(optimizer_class, start):
  """`optimizer_class` whose weight average begins after `start` steps.

  Keras's average (use_ema) starts at the first step, so after a short run
  much of it is still the early weights (0.998^900 = 16 % of them after
  900 steps at momentum 0.998). Until `start` updates are done the average
  here follows the weights (momentum 0); from then on it averages them at
  `ema_momentum`.
  """
  if not start:
    return optimizer_class

  class Averaged(optimizer_class):

    @property
    def ema_momentum(self):
      # Read by Keras's average update, at every step.
      return ops.where(self.iterations < start, 0.0, self._ema_momentum)

    @ema_momentum.setter
    def ema_momentum(self, value):
      self._ema_momentum = value

  Averaged.__name__ = optimizer_class.__name__
  return Averaged


def compile_model(model, config):
  """Compiles a `LanguageModel`: it brings its own loss and perplexity."""
  model.compile(optimizer=make_optimizer(config.train),
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
  any moment resumes from its last complete epoch; a finished run is not
  trained again.

  Args:
    config: a ConfigDict from `kerasrnn.config` (validated here).
    workdir: the run's directory (created; must be empty or hold this run).
    extra_callbacks: more Keras callbacks, run after kerasrnn's own.

  Returns:
    The results dict also written to results.json: best epoch, final
    train/valid/test perplexity of the best checkpoint, epochs, wall time,
    parameter count.
  """
  config_lib.validate(config)
  strategy = distribute.make_strategy(config.train.distribute)  # First op.
  chief, task_id = distribute.task(strategy)
  # Every worker of a multi-worker run trains alike; the chief writes the
  # run's workdir, the others a directory of their own (their resume state),
  # removed when they finish.
  run_dir = workdir if chief else wd.path(workdir, f"workers/{task_id}")
  with wd.locked(run_dir):
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


def _train(config, workdir, run_dir, strategy, chief, extra_callbacks):
  resumed = wd.check_config(run_dir, config)
  finished = _previous_results(workdir)
  damaged_results = not finished and os.path.exists(
      wd.path(workdir, "results.json"))
  vocab = _stored_vocab(run_dir) if resumed else None
  if finished and (vocab or not resumed):
    logging.info("%s already holds a finished run; nothing to do", workdir)
    return finished
  keras.utils.set_random_seed(config.train.seed)
  corpus = load_corpus(config.data, vocab)
  if resumed:
    wd.check_data(run_dir, corpus)
  wd.claim(run_dir, config, corpus)
  if finished:  # Only vocab.txt was missing or damaged.
    return finished
  epoch = pipelines.epoch_variable()
  batch_size = None  # The config's.
  if config.data.mode == "stream" and strategy.num_replicas_in_sync > 1:
    batch_size = distribute.replica_batch_size(strategy, config.data.batch_size)
    datasets = {s: distribute.stream_dataset(strategy, config.data, corpus, s)
                for s in corpus.splits}
  else:
    datasets = {s: pipelines.make_dataset(config.data, corpus, s,
                                          training=(s == "train"), epoch=epoch)
                for s in corpus.splits}
    if distribute.is_multi_worker(strategy):
      datasets = {s: distribute.shard_by_data(ds)
                  for s, ds in datasets.items()}
  with strategy.scope():
    model = compile_model(fast_path.build_model(
        config, len(corpus.vocab), batch_size=batch_size), config)
    # Where every worker has a state (a worker may have died between its
    # own save and another's).
    shared = distribute.common_epoch(strategy, wd.state_epochs(run_dir))
    initial_epoch = wd.restore_state(run_dir, model, at_most=shared)
    distribute.check_same_epoch(strategy, initial_epoch)
  if damaged_results and not initial_epoch:  # Finished, backup/ removed.
    initial_epoch = config.train.epochs
  if resumed:
    logging.info("resuming %s after epoch %d", run_dir, initial_epoch)
  _log_parameters(model, config, len(corpus.vocab))
  logging.info("%s", fast_path.describe(config))
  train_tokens = pipelines.num_targets(config.data, corpus.splits["train"])
  callbacks = _callbacks(config, run_dir, epoch, datasets["test"], train_tokens)
  start = time.time()
  with distribute.lost_workers_reported(strategy):
    model.fit(datasets["train"], validation_data=datasets["valid"],
              epochs=config.train.epochs, initial_epoch=initial_epoch,
              callbacks=callbacks + list(extra_callbacks),
              verbose=config.train.verbose, shuffle=False)
    if not os.path.exists(wd.path(run_dir, wd.BEST)):
      raise UserError("training diverged (perplexity not finite) before its "
                      "first checkpoint; lower train.learning_rate or "
                      "train.clip_norm and use a new --workdir")
    wd.load_best(model, run_dir)
    scores = {s: evaluation.perplexity(model, ds) for s, ds in datasets.items()}
  results = _results(run_dir, model, scores, len(corpus.vocab))
  results["last_session_seconds"] = round(time.time() - start, 1)
  if chief:
    wd.write_json(workdir, "results.json", results)
    shutil.rmtree(wd.path(workdir, wd.BACKUP), ignore_errors=True)
  else:
    shutil.rmtree(run_dir, ignore_errors=True)
    if not os.listdir(wd.path(workdir, "workers")):
      os.rmdir(wd.path(workdir, "workers"))
  logging.info("results: %s", results)
  return results


def _callbacks(config, run_dir, epoch, test_dataset, train_tokens):
  """kerasrnn's callbacks of one run, in the order they must run."""
  callbacks = [
      cb.TrainingEpoch(epoch),
      cb.ResetStates(),
      keras.callbacks.LearningRateScheduler(
          learning_rate_schedule(config.train)),
  ]
  if config.train.eval_test_every_epoch:
    callbacks.append(cb.TestPerplexity(
        lambda m: evaluation.perplexity(m, test_dataset)[0]))
  return callbacks + [
      cb.EpochHistory(run_dir, train_tokens),
      cb.BestCheckpoint(run_dir),
      # Validation, test perplexity and best checkpoint above see the
      # averaged weights; training and its backup (below) the trained ones.
      cb.AveragedWeights(),
      # Kept until results.json is written, so a run killed after its last
      # epoch resumes to the results instead of training again.
      cb.ResumeState(run_dir),
      keras.callbacks.TerminateOnNaN(),
      keras.callbacks.TensorBoard(wd.path(run_dir, "tensorboard"),
                                  write_graph=False),
  ]


def _results(run_dir, model, scores, vocab_size):
  """The run's results.json: the best checkpoint's figures and the history's."""
  history = wd.read_history(run_dir)
  results = {"best_epoch": int(wd.best_row(history)["epoch"]),
             "epochs": len(history),
             "wall_seconds": round(sum(float(r["seconds"]) for r in history), 1),
             "diverged": history[-1]["train_perplexity"] in ("nan", "inf"),
             "parameters": model.count_params(),
             "vocab_size": vocab_size}
  for split, (ppl, tokens) in scores.items():
    results[f"{split}_perplexity"] = ppl
    results[f"{split}_tokens"] = tokens
  return results
