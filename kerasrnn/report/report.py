"""kerasrnn-report's work: convergence plots and the summary table."""
import csv
import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
from matplotlib import ticker  # pylint: disable=g-import-not-at-top,wrong-import-position

from kerasrnn.report.runs import SUMMARY_FIELDS  # pylint: disable=wrong-import-position
from kerasrnn.report.runs import find_runs  # pylint: disable=wrong-import-position

_CURVES = (("train_perplexity", "train"), ("val_perplexity", "validation"),
           ("test_perplexity", "test"))


# x axes of the comparison plots: (history key or function of a row, label).
_X = {"epoch": (lambda r: r["epoch"], "epoch"),
      "tokens": (lambda r: r["tokens"] / 1e6, "training tokens (millions)"),
      "hours": (lambda r: r["seconds"] / 3600, "hours (training and "
                "evaluation)")}


def _axes(title, x="epoch"):
  fig, ax = plt.subplots(figsize=(7, 4.5))
  ax.set_yscale("log")
  plain = ticker.FuncFormatter(lambda v, _: f"{v:g}")
  ax.yaxis.set_major_formatter(plain)
  ax.yaxis.set_minor_locator(ticker.LogLocator(subs=(1.2, 1.5, 2, 3, 5, 7)))
  ax.yaxis.set_minor_formatter(plain)
  ax.set_xlabel(_X[x][1])
  ax.set_ylabel("perplexity (log scale)")
  ax.set_title(title)
  ax.grid(True, which="both", alpha=0.3)
  return fig, ax


def _save(fig, ax, path):
  ax.legend(fontsize="small")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def convergence_plot(run, path):
  """Train, validation and test perplexity of one run by epoch."""
  fig, ax = _axes(f"{run.name}: {run.label()}")
  epochs = [r["epoch"] for r in run.history]
  for key, name in _CURVES:
    ax.plot(epochs, [r[key] for r in run.history], marker="o", label=name)
  return _save(fig, ax, path)


def comparison_plot(runs, key, name, path, x="epoch"):
  """One curve per run of the `key` column (e.g. val_perplexity) against
  `x`: 'epoch', 'tokens' (trained on) or 'hours' (since the run began)."""
  fig, ax = _axes(f"{name} perplexity of all runs", x)
  for run in runs:
    ax.plot([_X[x][0](r) for r in run.history], [r[key] for r in run.history],
            marker="o", label=f"{run.name} ({run.label()})")
  return _save(fig, ax, path)


def _fmt(key, value):
  if not isinstance(value, float):
    return str(value)
  # Hyperparameters as given (Adam's 0.001), measured figures to 2 decimals.
  return f"{value:g}" if key in ("dropout", "learning_rate") else f"{value:.2f}"


def write_tables(rows, out):
  with open(os.path.join(out, "summary.csv"), "w", encoding="utf-8") as f:
    writer = csv.DictWriter(f, SUMMARY_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
  lines = ["| " + " | ".join(SUMMARY_FIELDS) + " |",
           "|" + "---|" * len(SUMMARY_FIELDS)]
  lines += ["| " + " | ".join(_fmt(k, r[k]) for k in SUMMARY_FIELDS) + " |"
            for r in rows]
  note = ("\nValidation and test perplexities are those of each run's best "
          "checkpoint (lowest validation perplexity): from results.json once "
          "a run has finished, from its history.csv while it runs. The train "
          "figure is the running mean since the evaluation before the best, with dropout on.\n")
  with open(os.path.join(out, "summary.md"), "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n" + note)


def write_report(patterns, out):
  """Writes plots and summary tables for the runs matching `patterns`.

  Args:
    patterns: comma-separated workdirs or globs (runs still in progress are
      included with the evaluations they have done).
    out: output directory.

  Returns:
    The summary rows.
  """
  runs = find_runs(patterns)
  os.makedirs(out, exist_ok=True)
  for run in runs:
    convergence_plot(run, os.path.join(out, f"{run.name}.png"))
  comparison_plot(runs, "train_perplexity", "Training",
                  os.path.join(out, "train_perplexity.png"))
  comparison_plot(runs, "val_perplexity", "Validation",
                  os.path.join(out, "val_perplexity.png"))
  for x in ("tokens", "hours"):
    comparison_plot(runs, "val_perplexity", "Validation",
                    os.path.join(out, f"val_perplexity_by_{x}.png"), x)
  # Per word: the figure that compares runs of other tokenisations (word
  # and subword); in history.csv since kerasrnn 0.4.
  if any(math.isfinite(r["val_word_perplexity"]) for run in runs
         for r in run.history):
    for x, suffix in (("epoch", ""), ("hours", "_by_hours")):
      comparison_plot(runs, "val_word_perplexity", "Validation (per word)",
                      os.path.join(out, f"val_word_perplexity{suffix}.png"), x)
  rows = [run.summary() for run in runs]
  write_tables(rows, out)
  return rows
