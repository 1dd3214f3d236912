"""benchmarks/vs_torch_table.py: the speed tables results.md quotes."""
import json
import os
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
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
  assert table == {("lstm", "native"): [(100.0, 110.0), (120.0, 150.0),
                                        (80.0, 60.0)],
                   ("lstm", "AVX2"): [(90.0, 81.0)]}
  rows = vs_torch_table.markdown(table).splitlines()
  # Medians 100 and 110: 1.10; round by round 1.10, 1.25, 0.75.
  assert rows[2] == ("| LSTM | native | 100 (80–120) | 110 (60–150) | "
                     "**1.10** | 1.10, 1.25, 0.75 |")
  assert rows[3] == "| LSTM | AVX2 | 90 (90–90) | 81 (81–81) | **0.90** | 0.90 |"


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
