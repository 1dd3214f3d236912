"""Exact perplexity of a model over a dataset, and of a trained workdir."""
import math

from kerasrnn import config as config_lib
from kerasrnn import fast_path
from kerasrnn import workdir as wd
from kerasrnn.data import pipelines
from kerasrnn.data.corpus import SPLITS
from kerasrnn.data.corpus import load_corpus
from kerasrnn.errors import UserError
from kerasrnn.training.callbacks import reset_states


def perplexity(model, dataset, callbacks=()):
  """Returns (perplexity, target tokens) of a compiled model over `dataset`.

  `model` is a compiled `LanguageModel`; this is Keras's `evaluate`, so the
  compiled test step (XLA under train.jit_compile) and the model's exact
  perplexity metric do the work. Stateful layers start from zero state and
  carry it across batches, as in training; dropout is off. `callbacks`:
  Keras callbacks for the evaluation.
  """
  reset_states(model)
  logs = model.evaluate(dataset, verbose=0, return_dict=True,
                        callbacks=list(callbacks))
  return float(logs["perplexity"]), int(model.perplexity.count.numpy())


def per_word(perplexity, targets, split):
  """The perplexity per word of a pass that scored `targets` tokens of
  `split` with `perplexity` per token: exp(total NLL / words), where words
  are each line's whitespace-separated words plus one end of line, the
  count a word-level model of that text divides by (for a whitespace-
  tokenised corpus such as PTB, its tokens). None for a store without word
  counts (prepared by kerasrnn before 0.4).

  Sentence mode scores every token: exact. Stream mode leaves out the
  split's last (tokens mod batch_size) tokens, under one batch: their
  share of the words is left out with them, pro rata.
  """
  words = split.num_words
  if words is None or not targets or not math.isfinite(perplexity):
    return None if words is None else perplexity
  scored = words * targets / split.num_tokens
  return math.exp(math.log(perplexity) * targets / scored)


def load_best_model(workdir, config, vocab_size, use_cudnn="auto",
                    stateful=True, precision=None):
  """The model `config` describes, with the best checkpoint of `workdir`
  (`stateful`: as training and evaluation run it; False in sentence mode
  for a model of any batch that reads each row from zero state), computing
  in `precision` (default: train.precision, as the run trained)."""
  model = fast_path.build_model(
      config, vocab_size, use_cudnn=use_cudnn, stateful=stateful,
      precision=precision or config.train.precision)
  wd.load_best(model, workdir)
  return model


def best_weight_values(workdir):
  """{variable path: array} of a run's best checkpoint (to compare runs)."""
  model = load_best_model(workdir, wd.load_config(workdir),
                          len(wd.load_vocab(workdir)))
  return {v.path: v.numpy() for v in model.weights}


def evaluate(workdir, split="test", batch_size=None, mode=None):
  """Evaluates a run's best checkpoint on one split of its corpus.

  Args:
    workdir: a kerasrnn-train workdir.
    split: 'train', 'valid' or 'test'.
    batch_size: evaluation batch size (default: the run's).
    mode: 'stream' or 'sentence' (default: the run's); sentence mode scores
      every sentence from a fresh state, as the exported model does,
      whatever data.max_length (the chunks carry the state).

  Returns:
    {"split", "mode", "batch_size", "perplexity", "target_tokens",
    "word_perplexity", "words"} (`per_word`; the last two None for a store
    without word counts).
  """
  if split not in SPLITS:
    raise UserError(f"unknown split {split!r} (one of {', '.join(SPLITS)})")
  config = wd.load_config(workdir)
  if mode:
    config.data.mode = mode
  if batch_size:
    config.data.batch_size = batch_size
  config_lib.validate(config)
  vocab = wd.load_vocab(workdir)
  corpus = load_corpus(config.data, vocab)
  model = load_best_model(workdir, config, len(vocab))
  model.compile(**fast_path.compile_options(config))
  ppl, tokens = perplexity(
      model, pipelines.make_dataset(config.data, corpus, split))
  return {"split": split, "mode": config.data.mode,
          "batch_size": config.data.batch_size, "perplexity": ppl,
          "target_tokens": tokens,
          "word_perplexity": per_word(ppl, tokens, corpus.splits[split]),
          "words": corpus.splits[split].num_words}
