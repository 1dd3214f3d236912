"""benchmarks/vs_torch_table.py and serving_table.py: the speed and serving
tables the docs quote."""
import json
import os
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import serving_table  # pylint: disable=g-import-not-at-top,wrong-import-position
import vs_torch_table  # pylint: disable=g-import-not-at-top,wrong-import-position

SPEED = os.path.join(ROOT, "docs", "speed")


def _run(framework, cell, tokens_per_second, avx2=False):
  run = {"framework": framework, "cell": cell,
         "tokens_per_second": tokens_per_second, "cpu": "Test CPU"}
  if avx2:
    run["isa_env"] = {"ONEDNN_MAX_CPU_ISA": "AVX2"}
  return run


def test_rounds_pair_each_kerasrnn_run_with_the_pytorch_run_before_it():
  runs = [_run("torch 2.13", "lstm", 100.0),
           _run("kerasrnn (keras 3)", "lstm", 110.0),
           _run("torch 2.13", "lstm", 90.0, avx2=True),
           _run("kerasrnn (keras 3)", "lstm", 81.0, avx2=True),
           _run("torch 2.13", "lstm", 120.0),
           _run("kerasrnn (keras 3)", "lstm", 150.0),
           _run("torch 2.13", "lstm", 80.0),
           _run("kerasrnn (keras 3)", "lstm", 60.0)]
  table = vs_torch_table.rounds(runs)
  assert table == {("lstm", "native", "float32"): [
      (100.0, 110.0), (120.0, 150.0), (80.0, 60.0)],
                   ("lstm", "AVX2", "float32"): [(90.0, 81.0)]}
  rows = vs_torch_table.markdown(table).splitlines()
  # Medians 100 and 110: 1.10; round by round 1.10, 1.25, 0.75.
  assert rows[2] == ("| LSTM | native | 100 (80–120) | 110 (60–150) | "
                     "**1.10** | 1.10, 1.25, 0.75 |")
  assert rows[3] == "| LSTM | AVX2 | 90 (90–90) | 81 (81–81) | **0.90** | 0.90 |"


def test_bfloat16_rounds_pair_autocast_with_mixed_bfloat16():
  runs = [_run("torch 2.13", "gru", 100.0),
          _run("kerasrnn (keras 3)", "gru", 130.0),
          {**_run("torch 2.13", "gru", 120.0), "precision": "bfloat16"},
          {**_run("kerasrnn (keras 3)", "gru", 180.0),
           "precision": "mixed_bfloat16"}]
  rows = vs_torch_table.markdown(vs_torch_table.rounds(runs)).splitlines()
  assert rows[2].startswith("| GRU | native | 100 (100–100) |")
  assert rows[3] == ("| GRU | native, bfloat16 | 120 (120–120) | "
                     "180 (180–180) | **1.50** | 1.50 |")


def test_a_kerasrnn_run_without_its_pytorch_run_is_an_error():
  with pytest.raises(ValueError, match="without its PyTorch run"):
    vs_torch_table.rounds([_run("torch 2.13", "gru", 1.0),
                           _run("kerasrnn (keras 3)", "lstm", 1.0)])


@pytest.mark.parametrize("names", [
    ["intel_xeon_2026-12-01_per_gate_build_vs_torch.jsonl"],
    ["intel_xeon_2026-12-01_per_gate_build_vs_torch.jsonl",
     "intel_xeon_2026-12-01_per_gate_build_vs_torch_more.jsonl"]])
def test_the_speed_log_quotes_the_committed_runs(names):
  runs = []
  for name in names:
    with open(os.path.join(SPEED, name), encoding="utf-8") as f:
      runs += [json.loads(line) for line in f]
  table = vs_torch_table.markdown(vs_torch_table.rounds(runs))
  with open(os.path.join(ROOT, "docs", "history", "training_speed.md"),
            encoding="utf-8") as f:
    results = f.read()
  for row in table.splitlines()[2:]:
    assert row in results, row


def _serving(framework, score_ms):
  return {"framework": framework, "cpu": "Test CPU", "cpu_isa": ["avx2"],
          "score_1x20": {"p50_ms": score_ms},
          "next_words_1x20": {"p50_ms": score_ms},
          "next_token": {"p50_ms": score_ms / 4},
          "next_token_after_prefix": {"10": {"step_p50_ms": score_ms / 2}},
          "generate_20_batch1": {"ms_per_new_token": score_ms / 2},
          "generate_per_token": {"ms_per_token": score_ms / 4,
                                 "fixed_ms": score_ms},
          "generate_first_token": {"p50_ms": score_ms},
          "score_batch64_tokens_per_second": 1000.0 / score_ms}


def test_serving_rounds_pair_each_export_run_with_the_pytorch_run_before_it():
  pairs = serving_table.rounds([
      _serving("torch 2.13 eager", 1.0), _serving("kerasrnn export", 2.0),
      _serving("torch 2.13 eager", 1.0), _serving("kerasrnn export", 4.0),
      _serving("torch 2.13 eager", 2.0), _serving("kerasrnn export", 3.0)])
  rows = serving_table.markdown(pairs).splitlines()
  # Medians 1 and 3: 3.00; round by round 2.00, 4.00, 1.50.
  assert rows[2] == ("| `score`, one 20-word sentence, p50 ms | 1.00 (1.00–2.00)"
                     " | 3.00 (2.00–4.00) | 3.00; 2.00, 4.00, 1.50 |")
  # generate's slope (0.25 ms a token, 0.75 for the export) replaces the
  # earlier runs' per new token, which these runs could also give.
  assert rows[5].startswith("| `generate`, per generated token") and (
      rows[5].endswith("| 3.00; 2.00, 4.00, 1.50 |"))
  assert not [r for r in rows if "prompt and sampling included" in r]
  with pytest.raises(ValueError, match="without its PyTorch run"):
    serving_table.rounds([_serving("kerasrnn export", 2.0)])


@pytest.mark.parametrize("name", [
    "vs_torch_lstm_amd_epyc_zen5.jsonl", "vs_torch_gru_amd_epyc_zen5.jsonl",
    "per_token_lstm_2threads_amd_epyc_zen5.jsonl",
    "per_token_lstm_1thread_amd_epyc_zen5.jsonl",
    "per_token_gru_2threads_amd_epyc_zen5.jsonl"])
def test_the_serving_results_quote_the_committed_runs(name):
  with open(os.path.join(ROOT, "docs", "serving", name), encoding="utf-8") as f:
    pairs = serving_table.rounds(json.loads(line) for line in f)
  with open(os.path.join(ROOT, "docs", "results.md"), encoding="utf-8") as f:
    results = f.read()
  # The table's rows and, where measured, TensorFlow's floors.
  rows = [r for r in serving_table.markdown(pairs).splitlines()[2:]
          if r.startswith(("|", "TensorFlow's floors"))]
  assert len(rows) >= 5
  for row in rows:
    assert row in results, row
