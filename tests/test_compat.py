"""The Keras-internals switch: used only where tested, and the public path."""
import os
import subprocess

import keras
import pytest

from conftest import ROOT
from conftest import error_line
from conftest import run_tool
from conftest import smoke_config
from kerasrnn import compat
from kerasrnn.models import build_model
from kerasrnn.models import recurrent
from kerasrnn.models import rnn_layers
from kerasrnn.training import train


def test_this_keras_is_in_the_tested_range():
  # CI installs the newest and the oldest supported versions: both must be
  # inside TESTED_KERAS, or the fast path would go untested.
  assert compat.internals_enabled()


@pytest.mark.parametrize("version", [(3, 7), (3, 16), (4, 0)])
def test_untested_keras_takes_the_stock_layers(monkeypatch, version):
  monkeypatch.setattr(compat, "keras_version", lambda: version)
  assert not compat.internals_enabled()
  model = build_model(smoke_config(""), vocab_size=20)
  assert [type(l) for l in rnn_layers(model)] == [keras.layers.LSTM]


def test_switch_off_by_environment(monkeypatch):
  monkeypatch.setenv(compat.ENV_SWITCH, "0")
  assert not compat.internals_enabled()
  monkeypatch.setenv(compat.ENV_SWITCH, "1")
  model = build_model(smoke_config(""), vocab_size=20)
  assert [type(l) for l in rnn_layers(model)] == [recurrent.LSTM]


def test_keras_internals_are_used_only_in_compat():
  found = subprocess.run(
      ["grep", "-rln", r"keras.src\|\._maybe\|_loss_tracker\|"
       r"training_metadata\|_symbolic_build", "kerasrnn/",
       "--include=*.py"], cwd=ROOT, capture_output=True, text=True).stdout
  assert found.split() == ["kerasrnn/compat.py"]


@pytest.mark.slow
@pytest.mark.parametrize("variant", [None, "sentence"])
def test_public_path_trains_like_the_fast_path(monkeypatch, corpus_dir,
                                               tmp_path, variant):
  config = smoke_config(corpus_dir, variant)
  fast = train.train_and_evaluate(config, str(tmp_path / "fast"))
  monkeypatch.setenv(compat.ENV_SWITCH, "0")
  public = train.train_and_evaluate(config, str(tmp_path / "public"))
  for split in ("train", "valid", "test"):
    ppl = public[f"{split}_perplexity"]
    assert ppl == pytest.approx(fast[f"{split}_perplexity"], rel=1e-4), split
    assert public[f"{split}_tokens"] == fast[f"{split}_tokens"]


@pytest.mark.parametrize("variant", ["", ":sentence"])
def test_distributed_training_without_internals_is_one_line(tmp_path,
                                                            tiny_dir, variant):
  line = error_line(run_tool(
      "train", f"--config=configs/smoke.py{variant}",
      f"--config.data.dir={tiny_dir}",
      "--cpu_devices=2", "--config.train.distribute=mirrored",
      f"--workdir={tmp_path / 'run'}",
      env={compat.ENV_SWITCH: "0"}))
  assert ("train.distribute needs kerasrnn's recurrent layers (each "
          "replica's own state)") in line
