"""Every figure docs/theory.md quotes from a committed result is that result.

Each check names the text as the doc prints it and recomputes it from the
committed file it comes from (docs/study, docs/speed), so a rerun that moves
a figure, or an edit that mistypes one, fails here.
"""
import collections
import csv
import json
import os
import statistics

import pytest

from conftest import ROOT
from conftest import smoke_config

DOCS = os.path.join(ROOT, "docs")


@pytest.fixture(scope="module")
def theory():
  with open(os.path.join(DOCS, "theory.md"), encoding="utf-8") as f:
    return " ".join(f.read().split())  # Line breaks as spaces.


def _results(run):
  with open(os.path.join(DOCS, "study", run, "results.json")) as f:
    return json.load(f)


def _last_train_perplexity(run):
  with open(os.path.join(DOCS, "study", run, "history.csv")) as f:
    return float(list(csv.DictReader(f))[-1]["train_perplexity"])


def _trajectory(cell, lr):
  with open(os.path.join(DOCS, "study", "trajectory.jsonl")) as f:
    for line in f:
      row = json.loads(line)
      if row["cell"] == cell and row["learning_rate"] == lr:
        return row["running_train_perplexity"]["kerasrnn"]
  raise AssertionError(f"no trajectory for {cell} at lr {lr}")


def _medians(name):
  """{(framework, cell): median tokens/s} of a docs/speed file."""
  runs = collections.defaultdict(list)
  with open(os.path.join(DOCS, "speed", name)) as f:
    for row in map(json.loads, f):
      framework = "torch" if row["framework"].startswith("torch") else "ours"
      runs[framework, row["cell"]].append(row["tokens_per_second"])
      if "stock_keras_tokens_per_second" in row:
        runs["stock", row["cell"]].append(row["stock_keras_tokens_per_second"])
  return {k: statistics.median(v) for k, v in runs.items()}


def _check(theory, quoted, computed):
  assert quoted == computed, f"the doc says {quoted}, the result is {computed}"
  assert quoted in theory, f"{quoted!r} is no longer in docs/theory.md"


def test_study_figures(theory):
  test = lambda run: f"{_results(run)['test_perplexity']:.2f}"

  def gap(run, epoch):  # Validation / running training perplexity.
    with open(os.path.join(DOCS, "study", run, "history.csv")) as f:
      row = list(csv.DictReader(f))[epoch - 1]
    return float(row["val_perplexity"]) / float(row["train_perplexity"])

  _check(theory, "test perplexity 114.97 against 121.18",
         f"test perplexity {test('lstm')} against {test('gru_lr05')}")
  _check(theory, "LSTM with SGD 111.35, GRU with Adam 111.50",
         f"LSTM with SGD {test('lstm_dropout')}, GRU with Adam "
         f"{test('gru_dropout_adam')}")
  _check(theory, "(test 168.76)", f"(test {test('gru')})")
  _check(theory, "(121.18 vs 114.97)",
         f"({test('gru_lr05')} vs {test('lstm')})")
  _check(theory, "40.21 vs 41.00", f"{_last_train_perplexity('lstm'):.2f} vs "
         f"{_last_train_perplexity('gru_lr05'):.2f}")
  _check(theory, "ratio is 3.09 against the LSTM's 2.98",
         f"ratio is {gap('gru_lr05', 13):.2f} against the LSTM's "
         f"{gap('lstm', 13):.2f}")
  def val(run, epoch):
    with open(os.path.join(DOCS, "study", run, "history.csv")) as f:
      return float(list(csv.DictReader(f))[epoch - 1]["val_perplexity"])

  _check(theory, "(189.28 vs 174.12 after the first, 126.90 vs 119.88",
         f"({val('gru_lr05', 1):.2f} vs {val('lstm', 1):.2f} after the first, "
         f"{val('gru_lr05', 13):.2f} vs {val('lstm', 13):.2f}")
  assert all(val("gru_lr05", e) > val("lstm", e) for e in range(1, 14))
  _check(theory, "best) 2.18 against 1.84",
         f"best) {gap('gru_lr05', 5):.2f} against {gap('lstm', 5):.2f}")


def test_trajectory_figures(theory):
  gru, lstm = _trajectory("gru", 1.0), _trajectory("lstm", 1.0)
  _check(theory, "from 9,944 to 161,890 at step 4",
         f"from {gru['1']:,.0f} to {gru['4']:,.0f} at step 4")
  assert max(lstm.values()) == lstm["1"]
  _check(theory, "above its first value (9,920)",
         f"above its first value ({lstm['1']:,.0f})")
  _check(theory, "the spike is small (10,551)",
         f"the spike is small ({max(_trajectory('gru', 0.5).values()):,.0f})")
  _check(theory, "from 9,944 to 161,890 in four steps",
         f"from {gru['1']:,.0f} to {gru['4']:,.0f} in four steps")


def test_speed_figures(theory):
  m = _medians("vs_torch.jsonl")
  ratio = lambda framework: f"{m[framework, 'gru'] / m[framework, 'lstm']:.2f}"
  _check(theory,
         "kerasrnn LSTM 6,331 vs GRU 6,704 tokens/s (GRU 1.06×)",
         f"kerasrnn LSTM {m['ours', 'lstm']:,.0f} vs GRU "
         f"{m['ours', 'gru']:,.0f} tokens/s (GRU {ratio('ours')}×)")
  _check(theory, "PyTorch LSTM 5,674 vs GRU 6,239 (1.10×)",
         f"PyTorch LSTM {m['torch', 'lstm']:,.0f} vs GRU "
         f"{m['torch', 'gru']:,.0f} ({ratio('torch')}×)")
  _check(theory, "stock Keras LSTM 4,910 vs GRU 4,347 (0.89×",
         f"stock Keras LSTM {m['stock', 'lstm']:,.0f} vs GRU "
         f"{m['stock', 'gru']:,.0f} ({ratio('stock')}×")
  old = _medians("intel_xeon_2026-11-27_vs_torch.jsonl")
  _check(theory, "(PyTorch LSTM 5,658 vs GRU 5,464)",
         f"(PyTorch LSTM {old['torch', 'lstm']:,.0f} vs GRU "
         f"{old['torch', 'gru']:,.0f})")


@pytest.mark.slow
def test_padding_figures_on_ptb(theory, ptb_dir):
  from kerasrnn.data import summary  # pylint: disable=g-import-not-at-top
  table = {}
  for batch in (20, 64):
    for bucket in (False, True):
      config = smoke_config(ptb_dir, "sentence", {
          "data.max_tokens": 0, "data.batch_size": batch,
          "data.bucket": bucket, "data.num_buckets": 32})
      stats = summary.describe(config)["splits"]["train"]
      table[batch, bucket] = f"{100 * stats['padding_overhead']:.1f} %"
  _check(theory, "| 20 | 97.2 % | 4.0 % |",
         f"| 20 | {table[20, False]} | {table[20, True]} |")
  _check(theory, "| 64 | 131.2 % | 6.7 % |",
         f"| 64 | {table[64, False]} | {table[64, True]} |")


def test_transformer_section_figures(theory):
  from configs import study  # pylint: disable=g-import-not-at-top
  from kerasrnn.models.parameters import model_parameters  # pylint: disable=g-import-not-at-top
  count = lambda v: sum(model_parameters(study.get_config(v).model,
                                         10_001).values())
  _check(theory, "parameters 4,976,001 vs 4,652,001",
         f"parameters {count('transformer'):,} vs {count('lstm'):,}")
  d, f, v, t = 200, 800, 10_001, 63
  block = 4 * d * d + 2 * d * f  # Projections and feed-forward.
  lstm = 2 * 8 * d * d + d * v
  attention = 2 * 2 * d * sum(range(1, 65)) / 64  # t + 1 keys, averaged.
  transformer = 2 * block + attention + d * v
  _check(theory, "(2.99 M vs 2.64 M multiply–adds",
         f"({transformer / 1e6:.2f} M vs {lstm / 1e6:.2f} M multiply–adds")
  _check(theory, "about 1.13× the 2×200 LSTM",
         f"about {transformer / lstm:.2f}× the 2×200 LSTM")
  _check(theory, "| 480,000 + 25,600 |",
         f"| {block:,} + {2 * (t + 1) * d:,} |")


def test_transformer_measured_cost(theory):
  runs = collections.defaultdict(list)
  with open(os.path.join(DOCS, "speed", "amd_epyc_2026-11-28.jsonl")) as f:
    for row in map(json.loads, f):
      runs[row["variant"]].append(row["tokens_per_second"])
  lstm, transformer = runs["ptb_lstm"], runs["ptb_transformer"]
  assert len(lstm) == len(transformer) == 3
  ratios = sorted(a / b for a, b in zip(lstm, transformer))
  median = lambda v: f"{statistics.median(v):,.0f}"
  _check(theory, "LSTM trained at 2,921 tokens/s (median; 2,899–3,387)",
         f"LSTM trained at {median(lstm)} tokens/s (median; "
         f"{min(lstm):,.0f}–{max(lstm):,.0f})")
  _check(theory, "the Transformer at 2,496 (2,460–2,582)",
         f"the Transformer at {median(transformer)} "
         f"({min(transformer):,.0f}–{max(transformer):,.0f})")
  cost = statistics.median(lstm) / statistics.median(transformer)
  _check(theory, "costs the Transformer 1.17× the LSTM's** (1.13–1.36×",
         f"costs the Transformer {cost:.2f}× the LSTM's** "
         f"({ratios[0]:.2f}–{ratios[-1]:.2f}×")
