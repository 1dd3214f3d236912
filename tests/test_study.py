"""kerasrnn-study: trains its runs in turn, resumes, ends with the report."""
import os

import pytest

from conftest import ROOT
from conftest import smoke_config
from kerasrnn.errors import UserError
from kerasrnn import study

pytestmark = pytest.mark.slow


def test_study_trains_each_run_once_and_reports(corpus_dir, tmp_path):
  configs = {"lstm": smoke_config(corpus_dir, overrides={"train.epochs": 1}),
             "gru": smoke_config(corpus_dir, "gru", {"train.epochs": 1})}
  workdir = str(tmp_path / "study")
  rows = study.run_study(configs, workdir)
  assert [r["run"] for r in rows] == ["lstm", "gru"]
  assert all(r["status"] == "finished" for r in rows)
  assert os.path.exists(os.path.join(workdir, "report", "val_perplexity.png"))
  stamp = os.path.getmtime(os.path.join(workdir, "lstm", "history.csv"))
  study.run_study(configs, workdir)  # Again: nothing is retrained.
  assert os.path.getmtime(os.path.join(workdir, "lstm", "history.csv")) == stamp


def test_study_config_file_variants():
  configs = study.load_variants(os.path.join(ROOT, "configs", "study.py"))
  assert list(configs) == ["lstm", "lstm_dropout", "gru", "gru_dropout_adam",
                           "gru_lr05", "transformer"]
  with pytest.raises(UserError, match="unknown variants nope"):
    study.load_variants(os.path.join(ROOT, "configs", "study.py"), ["nope"])
  with pytest.raises(UserError, match="defines no VARIANTS"):
    study.load_variants(os.path.join(ROOT, "configs", "small.py"))
