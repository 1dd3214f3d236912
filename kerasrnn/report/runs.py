"""Reads runs from their workdirs, finished or still in progress."""
import dataclasses
import glob
import math
import os

import ml_collections

from kerasrnn import workdir as wd
from kerasrnn.errors import UserError
from kerasrnn.models.parameters import model_parameters

SUMMARY_FIELDS = ("run", "model", "dropout", "optimizer", "learning_rate",
                  "parameters", "epochs", "best_epoch", "train_perplexity",
                  "val_perplexity", "test_perplexity", "test_word_perplexity",
                  "wall_minutes", "status")


def cell_name(cell):
  """'lstm' -> 'LSTM', 'gru' -> 'GRU', 'transformer' -> 'Transformer'."""
  return {"transformer": "Transformer"}.get(cell, cell.upper())


@dataclasses.dataclass
class Run:
  """One workdir: its config, history.csv rows (floats) and results.json."""
  path: str
  config: dict
  history: list
  results: dict  # None while the run is in progress.
  vocab_size: int

  @property
  def finished(self):
    return self.results is not None

  @property
  def name(self):
    return os.path.basename(os.path.normpath(self.path))

  def model_name(self):
    """"LSTM 2x200", "LSTM 2x200 adaptive" (with the adaptive softmax),
    "LSTM 2x200, 8000 pieces" (a SentencePiece model's)."""
    m = self.config["model"]
    data = self.config.get("data", {})
    # The pieces asked for (the model's size), else the vocabulary's.
    pieces = data.get("max_vocab_size") or self.vocab_size
    return (f"{cell_name(m['cell'])} {m['num_layers']}x{m['hidden_size']}"
            + (" adaptive" if m.get("softmax") == "adaptive" else "")
            + (f", {pieces} pieces" if data.get("tokenizer") == "sentencepiece"
               else ""))

  def label(self):
    m, t = self.config["model"], self.config["train"]
    dropout = f"dropout {m['dropout']:g}" if m["dropout"] else "no dropout"
    return (f"{self.model_name()}, {dropout}, "
            f"{t['optimizer'].upper()} lr {t['learning_rate']:g}")

  def best(self):
    """The history row with the lowest validation perplexity (or None)."""
    return wd.best_row(self.history)

  def summary(self):
    """The run's row of the summary table.

    Validation and test perplexity of a finished run are its best
    checkpoint's (results.json, as every other document quotes them); of a
    run in progress, its best row's in history.csv. The train figure is
    the running mean since the row before the best (dropout on).
    """
    m, t = self.config["model"], self.config["train"]
    best = dict(self.best() or {})
    if self.finished and "test_perplexity" in self.results:
      best["val_perplexity"] = self.results["valid_perplexity"]
      best["test_perplexity"] = self.results["test_perplexity"]
      best["test_word_perplexity"] = self.results.get("test_word_perplexity")
    per_word = best.get("test_word_perplexity")
    if per_word is None or not math.isfinite(per_word):  # Not recorded.
      per_word = ""
    params = model_parameters(ml_collections.ConfigDict(m), self.vocab_size)
    last = self.history[-1]
    done = (f"{last['epoch']:.3g}/{t['epochs']}" if not t.get("steps") else
            f"{last['epoch']:.3g} ({last['step']:,.0f}/{t['steps']:,} steps)")
    return {
        "run": self.name,
        "model": self.model_name(),
        "dropout": m["dropout"], "optimizer": t["optimizer"],
        "learning_rate": t["learning_rate"],
        "parameters": sum(params.values()),
        "epochs": done,
        "best_epoch": _whole(best["epoch"]) if best else "",
        "train_perplexity": best.get("train_perplexity", ""),
        "val_perplexity": best.get("val_perplexity", ""),
        "test_perplexity": best.get("test_perplexity", ""),
        "test_word_perplexity": per_word,
        "wall_minutes": round(last["seconds"] / 60, 1),
        "status": "finished" if self.finished else "in progress"}


def _whole(value):
  return int(value) if float(value).is_integer() else round(value, 3)


def load_run(path):
  """Reads one workdir (finished or not)."""
  config = wd.read_json(path, "config.json")
  if config is None:
    raise UserError(f"{path} is not a kerasrnn workdir (no config.json)")
  history = wd.read_history(path)
  if history and math.isnan(history[-1]["tokens"]):  # An epoch history.
    tokens = ((wd.read_json(path, "data.json") or {}).get("tokens") or
              {}).get("train", math.nan)
    history = wd.with_steps(history, math.nan, tokens)
  results = wd.read_json(path, "results.json")
  if results and "vocab_size" in results:
    vocab_size = results["vocab_size"]
  elif os.path.exists(wd.path(path, "vocab.txt")):
    with open(wd.path(path, "vocab.txt"), encoding="utf-8") as f:
      vocab_size = sum(1 for _ in f)
  else:
    raise UserError(f"{path} has neither vocab.txt nor results.json: copy "
                    "one of them from the run's workdir")
  return Run(path, config, history, results, vocab_size)


def find_runs(patterns):
  """Runs with at least one evaluation, from comma-separated paths or globs."""
  # In the order given; each glob's matches sorted.
  paths = dict.fromkeys(p for pattern in patterns.split(",") if pattern
                        for p in sorted(glob.glob(pattern))
                        if os.path.exists(os.path.join(p, "config.json")))
  runs = [r for r in map(load_run, paths) if r.history]
  if not runs:
    raise UserError(f"no kerasrnn runs with a finished evaluation match "
                    f"{patterns!r}")
  return runs
