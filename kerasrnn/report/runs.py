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
                  "val_perplexity", "test_perplexity", "wall_minutes", "status")


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

  def label(self):
    m, t = self.config["model"], self.config["train"]
    dropout = f"dropout {m['dropout']:g}" if m["dropout"] else "no dropout"
    return (f"{cell_name(m['cell'])} {m['num_layers']}x{m['hidden_size']}, "
            f"{dropout}, {t['optimizer'].upper()} lr {t['learning_rate']:g}")

  def best(self):
    """The epoch row with the lowest validation perplexity (or None)."""
    rows = [r for r in self.history if not math.isnan(r["val_perplexity"])]
    return min(rows, key=lambda r: r["val_perplexity"]) if rows else None

  def summary(self):
    """The run's row of the summary table.

    Validation and test perplexity of a finished run are its best
    checkpoint's (results.json, as every other document quotes them); of a
    run in progress, its best epoch's in history.csv. The train figure is
    the running mean over the best epoch (dropout on).
    """
    m, t = self.config["model"], self.config["train"]
    best = dict(self.best() or {})
    if self.finished and "test_perplexity" in self.results:
      best["val_perplexity"] = self.results["valid_perplexity"]
      best["test_perplexity"] = self.results["test_perplexity"]
    params = model_parameters(ml_collections.ConfigDict(m), self.vocab_size)
    return {
        "run": self.name,
        "model": f"{cell_name(m['cell'])} {m['num_layers']}x{m['hidden_size']}"
                 + (" adaptive" if m.get("softmax") == "adaptive" else ""),
        "dropout": m["dropout"], "optimizer": t["optimizer"],
        "learning_rate": t["learning_rate"],
        "parameters": sum(params.values()),
        "epochs": f"{len(self.history)}/{t['epochs']}",
        "best_epoch": int(best["epoch"]) if best else "",
        "train_perplexity": best.get("train_perplexity", ""),
        "val_perplexity": best.get("val_perplexity", ""),
        "test_perplexity": best.get("test_perplexity", ""),
        "wall_minutes": round(sum(r["seconds"] for r in self.history) / 60, 1),
        "status": "finished" if self.finished else "in progress"}


def load_run(path):
  """Reads one workdir (finished or not)."""
  config = wd.read_json(path, "config.json")
  if config is None:
    raise UserError(f"{path} is not a kerasrnn workdir (no config.json)")
  history = [{k: float(v) for k, v in r.items()}
             for r in wd.read_history(path)]
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
  """Runs with at least one epoch, from comma-separated paths or globs."""
  # In the order given; each glob's matches sorted.
  paths = dict.fromkeys(p for pattern in patterns.split(",") if pattern
                        for p in sorted(glob.glob(pattern))
                        if os.path.exists(os.path.join(p, "config.json")))
  runs = [r for r in map(load_run, paths) if r.history]
  if not runs:
    raise UserError(f"no kerasrnn runs with a finished epoch match "
                    f"{patterns!r}")
  return runs
