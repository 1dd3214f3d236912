"""Exact perplexity of a model over a dataset, and of a trained workdir."""
import tensorflow as tf

from kerasrnn import config as config_lib
from kerasrnn.data import pipelines
from kerasrnn.data.corpus import SPLITS
from kerasrnn.data.corpus import load_corpus
from kerasrnn.errors import UserError
from kerasrnn.models import build_model
from kerasrnn.training import workdir as workdir_lib
from kerasrnn.training.callbacks import reset_states
from kerasrnn.training.metrics import Perplexity


def perplexity(model, dataset):
  """Returns (perplexity, target tokens) of `model` over `dataset`.

  Stateful layers start from zero state and carry it across batches, as in
  training; dropout is off.
  """
  reset_states(model)
  metric = Perplexity()

  @tf.function(reduce_retracing=True)
  def step(x, y):
    metric.update_state(y, model(x, training=False))

  for x, y in dataset:
    step(x, y)
  return float(metric.result()), int(metric.count.numpy())


def evaluate(workdir, split="test", batch_size=None, mode=None):
  """Evaluates a run's best checkpoint on one split of its corpus.

  Args:
    workdir: a kerasrnn-train workdir.
    split: 'train', 'valid' or 'test'.
    batch_size: evaluation batch size (default: the run's).
    mode: 'stream' or 'sentence' (default: the run's); sentence mode scores
      every sentence from a fresh state, as the exported model does.

  Returns:
    {"split", "mode", "batch_size", "perplexity", "target_tokens"}.
  """
  if split not in SPLITS:
    raise UserError(f"unknown split {split!r} (one of {', '.join(SPLITS)})")
  config = workdir_lib.load_config(workdir)
  if mode:
    config.data.mode = mode
  if batch_size:
    config.data.batch_size = batch_size
  config_lib.validate(config)
  vocab = workdir_lib.load_vocab(workdir)
  corpus = load_corpus(config.data, vocab)
  model = build_model(config, len(vocab))
  model.load_weights(workdir_lib.best_weights(workdir))
  ppl, tokens = perplexity(
      model, pipelines.make_dataset(config.data, corpus, split))
  return {"split": split, "mode": config.data.mode,
          "batch_size": config.data.batch_size, "perplexity": ppl,
          "target_tokens": tokens}
