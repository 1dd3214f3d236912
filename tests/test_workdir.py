import os
import shutil

import keras
import pytest

from conftest import smoke_config
from kerasrnn import workdir as wd
from kerasrnn.data.corpus import load_corpus
from kerasrnn.errors import UserError
from kerasrnn.training import train


def _corpus(config):
  return load_corpus(config.data)


def test_check_accepts_the_same_run_with_other_paths_and_execution(tiny_dir,
                                                                   tmp_path):
  config = smoke_config(tiny_dir)
  run = str(tmp_path / "run")
  assert not wd.check_config(run, config)
  wd.claim(run, config, _corpus(config))
  config.data.dir = "/elsewhere/ptb"
  config.train.verbose = 2
  config.train.jit_compile = False
  config.train.distribute = "mirrored"
  assert wd.check_config(run, config)


def test_check_refuses_a_different_run(tiny_dir, tmp_path):
  config = smoke_config(tiny_dir)
  wd.claim(str(tmp_path), config, _corpus(config))
  config.model.dropout = 0.5
  with pytest.raises(UserError, match="model.dropout: 0.0 -> 0.5"):
    wd.check_config(str(tmp_path), config)


def test_data_fingerprint_follows_content_not_path(tiny_dir, tmp_path):
  config = smoke_config(tiny_dir)
  copy = shutil.copytree(tiny_dir, tmp_path / "copy")
  moved = smoke_config(str(copy))
  assert (wd.data_fingerprint(_corpus(config)) ==
          wd.data_fingerprint(_corpus(moved)))
  with open(os.path.join(copy, "ptb.test.txt"), "a", encoding="utf-8") as f:
    f.write(" the cat \n")
  changed = wd.data_fingerprint(_corpus(moved))
  assert changed["tokens"]["test"] == (
      wd.data_fingerprint(_corpus(config))["tokens"]["test"] + 3)
  assert changed["sha256"] != wd.data_fingerprint(_corpus(config))["sha256"]


class _Stop(Exception):
  pass


class _StopAfterFirstEpoch(keras.callbacks.Callback):
  """Ends a run after epoch 1 is saved (it runs after kerasrnn's callbacks)."""

  def on_epoch_end(self, epoch, logs=None):
    raise _Stop


@pytest.mark.slow
def test_copied_workdir_resumes_with_data_elsewhere(corpus_dir, tmp_path):
  data = str(shutil.copytree(corpus_dir, tmp_path / "data"))
  first = str(tmp_path / "first")
  with pytest.raises(_Stop):
    train.train_and_evaluate(smoke_config(data), first,
                             [_StopAfterFirstEpoch()])
  epoch_1 = wd.read_history(first)
  assert [r["epoch"] for r in epoch_1] == ["1"]

  # Another machine: the workdir and the same data under other paths.
  moved = shutil.copytree(first, tmp_path / "moved")
  data_copy = shutil.copytree(data, tmp_path / "data_copy")
  results = train.train_and_evaluate(smoke_config(str(data_copy)), str(moved))
  rows = wd.read_history(moved)
  assert [r["epoch"] for r in rows] == ["1", "2"]
  assert rows[0] == epoch_1[0]  # Epoch 1 was not trained again.
  assert results["epochs"] == 2
  assert wd.load_config(moved).data.dir == str(data_copy)

  # Other data under the run's own settings are refused, untouched.
  other = shutil.copytree(data, tmp_path / "other")
  with open(os.path.join(other, "ptb.test.txt"), "a", encoding="utf-8") as f:
    f.write(" det0 noun0 verb0 det0 noun1 \n")
  before = open(os.path.join(first, "history.csv")).read()
  with pytest.raises(UserError, match="holds a run on other data"):
    train.train_and_evaluate(smoke_config(str(other)), first)
  assert open(os.path.join(first, "history.csv")).read() == before


def test_history_rows_of_a_redone_epoch_replace_the_old_ones(tmp_path):
  row = dict.fromkeys(wd.HISTORY_FIELDS, "1.0")
  for epoch in (1, 2, 3, 2):
    wd.write_history_row(str(tmp_path), dict(row, epoch=epoch,
                                              seconds=f"{epoch}.5"))
  rows = wd.read_history(str(tmp_path))
  assert [(r["epoch"], r["seconds"]) for r in rows] == [("1", "1.5"),
                                                         ("2", "2.5")]
