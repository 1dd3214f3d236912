"""kerasrnn-report on fake runs: figures equal the CSVs, plots are written."""
import csv
import os

import pytest

from conftest import smoke_config
from kerasrnn.errors import UserError
from kerasrnn.report import report
from kerasrnn import workdir as wd
from kerasrnn.data.vocabulary import Vocabulary

HEADER = ("epoch,learning_rate,train_perplexity,val_perplexity,"
          "test_perplexity,seconds,tokens_per_second\n")


def _fake_run(root, name, rows, results, **overrides):
  path = os.path.join(root, name)
  config = smoke_config("", overrides=overrides)
  os.makedirs(path)
  Vocabulary.build([["a", "b", "c"]]).save(wd.path(path, "vocab.txt"))
  wd.write_json(path, "config.json", config.to_dict())
  with open(os.path.join(path, "history.csv"), "w") as f:
    f.write(HEADER + "".join(",".join(map(str, r)) + "\n" for r in rows))
  if results:  # A finished run.
    wd.write_json(path, "results.json", results)
  return path


@pytest.fixture
def runs(tmp_path):
  root = str(tmp_path / "runs")
  _fake_run(root, "lstm", [(1, 1, 300.5, 200.25, 190.0, 60, 1000),
                           (2, 1, 150.0, 160.0, 155.5, 60, 1000),
                           (3, 0.5, 120.0, 165.0, 158.0, 60, 1000)],
            {"epochs": 3, "valid_perplexity": 160.004, "test_perplexity": 155.496},
            **{"train.epochs": 3})
  _fake_run(root, "gru_running", [(1, 1, 310.0, 210.0, 200.0, 30, 2000),
                                  (2, 1, 160.0, 170.0, 165.0, 30, 2000)],
            False, **{"model.cell": "gru", "model.dropout": 0.5})
  _fake_run(root, "one_epoch", [(1, 0.001, 400.0, 300.0, 290.0, 45, 900)],
            False, **{"train.optimizer": "adam",
                      "train.learning_rate": 0.001})
  return root


def test_summary_figures_are_the_best_rows_of_the_csvs(runs, tmp_path):
  out = str(tmp_path / "report")
  rows = {r["run"]: r for r in report.write_report(f"{runs}/*", out)}
  assert rows["lstm"]["best_epoch"] == 2
  # A finished run: train from its best epoch's row, valid/test from its
  # best checkpoint's evaluation (results.json), as every document quotes.
  assert (rows["lstm"]["train_perplexity"], rows["lstm"]["val_perplexity"],
          rows["lstm"]["test_perplexity"]) == (150.0, 160.004, 155.496)
  assert rows["lstm"]["epochs"] == "3/3" and rows["lstm"]["status"] == "finished"
  assert rows["lstm"]["wall_minutes"] == 3.0
  assert rows["gru_running"]["status"] == "in progress"
  assert rows["gru_running"]["model"] == "GRU 1x16"
  assert rows["gru_running"]["dropout"] == 0.5
  assert rows["gru_running"]["val_perplexity"] == 170.0
  assert rows["gru_running"]["epochs"] == "2/2"
  assert rows["one_epoch"]["best_epoch"] == 1
  assert rows["one_epoch"]["optimizer"] == "adam"
  assert rows["lstm"]["parameters"] == 6 * 16 + 4 * (16 * 16 * 2 + 16) + 16 * 6 + 6
  with open(os.path.join(out, "summary.csv")) as f:
    table = {r["run"]: r for r in csv.DictReader(f)}
  assert float(table["lstm"]["test_perplexity"]) == 155.496
  md = open(os.path.join(out, "summary.md")).read()
  assert "| lstm | LSTM 1x16 |" in md and "| 160.00 | 155.50 |" in md
  assert "| 170.00 | 165.00 |" in md  # In progress: from history.csv.
  assert "| adam | 0.001 |" in md  # Not rounded away to 0.00.


def test_plots_are_written_per_run_and_for_comparison(runs, tmp_path):
  out = str(tmp_path / "report")
  report.write_report(f"{runs}/*", out)
  for name in ("lstm", "gru_running", "one_epoch", "train_perplexity",
               "val_perplexity"):
    path = os.path.join(out, f"{name}.png")
    assert os.path.getsize(path) > 10_000, name
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_runs_with_per_word_figures_get_per_word_plots(runs, tmp_path):
  out = str(tmp_path / "report")
  report.write_report(f"{runs}/*", out)  # Histories of kerasrnn 0.2.
  assert not os.path.exists(os.path.join(out, "val_word_perplexity.png"))
  path = os.path.join(runs, "pieces")
  _fake_run(runs, "pieces", [], None, **{
      "data.tokenizer": "sentencepiece", "data.max_vocab_size": 8})
  wd.write_history(path, [
      dict(step=10 * e, epoch=e, tokens=100 * e, learning_rate=1,
           train_perplexity=50 / e, val_perplexity=40 / e,
           test_perplexity=39 / e, seconds=60 * e, tokens_per_second=10,
           val_word_perplexity=90 / e, test_word_perplexity=88 / e)
      for e in (1, 2)])
  rows = {r["run"]: r for r in report.write_report(f"{runs}/*", out)}
  assert rows["pieces"]["model"] == "LSTM 1x16, 8 pieces"
  assert rows["pieces"]["val_perplexity"] == 20
  for name in ("val_word_perplexity", "val_word_perplexity_by_hours"):
    assert os.path.getsize(os.path.join(out, f"{name}.png")) > 10_000


def test_no_runs_is_a_clear_error(tmp_path):
  with pytest.raises(UserError, match="no kerasrnn runs"):
    report.write_report(str(tmp_path / "nothing*"), str(tmp_path / "out"))


def test_a_copied_run_needs_vocab_txt_or_results_json(runs, tmp_path):
  finished, running = os.path.join(runs, "lstm"), os.path.join(runs, "gru_running")
  wd.write_json(finished, "results.json", {"epochs": 3, "vocab_size": 6})
  os.remove(os.path.join(finished, "vocab.txt"))
  os.remove(os.path.join(running, "vocab.txt"))
  with pytest.raises(UserError, match="neither vocab.txt nor results.json"):
    report.write_report(running, str(tmp_path / "a"))
  rows = report.write_report(finished, str(tmp_path / "b"))
  assert rows[0]["parameters"] == 6 * 16 + 4 * (16 * 16 * 2 + 16) + 16 * 6 + 6
