"""Every shipped config loads, validates, and says how to run it."""
import glob
import gzip
import importlib
import json
import os

import pytest

from conftest import ROOT
from kerasrnn import config as config_lib
from kerasrnn.errors import UserError

CONFIGS = sorted(os.path.basename(p)[:-3] for p in glob.glob(
    os.path.join(ROOT, "configs", "*.py")) if not p.endswith("__init__.py"))


def _variants(name):
  module = importlib.import_module(f"configs.{name}")
  return list(getattr(module, "VARIANTS", {None: None})), module


@pytest.mark.parametrize("name", CONFIGS)
def test_config_validates_and_documents_its_command(name):
  variants, module = _variants(name)
  assert f"--config=configs/{name}.py" in module.__doc__
  for variant in variants:
    config_lib.validate(module.get_config(variant))


def test_small_is_zarembas_small_config():
  from configs import small  # pylint: disable=g-import-not-at-top
  c = small.get_config()
  assert (c.model.hidden_size, c.model.num_layers, c.model.init_scale) == (
      200, 2, 0.1)
  assert (c.train.epochs, c.train.learning_rate, c.train.decay_after,
          c.train.decay, c.train.clip_norm) == (13, 1.0, 4, 2.0, 5.0)
  assert (c.data.batch_size, c.data.num_steps, c.model.dropout) == (20, 20, 0)


def test_study_has_the_four_runs_and_a_control():
  from configs import study  # pylint: disable=g-import-not-at-top
  runs = {v: study.get_config(v) for v in study.VARIANTS}
  assert [(c.model.cell, c.model.dropout, c.train.optimizer,
           c.train.learning_rate) for c in runs.values()] == [
               ("lstm", 0.0, "sgd", 1.0), ("lstm", 0.5, "sgd", 1.0),
               ("gru", 0.0, "sgd", 1.0), ("gru", 0.5, "adam", 0.001),
               ("gru", 0.0, "sgd", 0.5), ("transformer", 0.2, "adam", 0.001)]
  with pytest.raises(UserError, match="needs a variant"):
    study.get_config()


def test_config_json_round_trip_has_no_differences():
  from configs import small  # pylint: disable=g-import-not-at-top
  c = small.get_config()
  again = config_lib.from_dict(json.loads(config_lib.to_json(c)))
  assert config_lib.differences(c.to_dict(), again.to_dict()) == []


@pytest.mark.parametrize("variant", [None, "quick", "long"])
def test_modern_recipe_fits_the_parameter_budget(variant):
  from configs import modern  # pylint: disable=g-import-not-at-top
  from kerasrnn.models.parameters import model_parameters  # pylint: disable=g-import-not-at-top
  c = config_lib.validate(modern.get_config(variant))
  assert c.model.tie_embeddings and c.model.locked_dropout
  assert c.model.weight_drop > 0 and c.train.ema_momentum > 0
  total = sum(model_parameters(c.model, 10_001).values())
  assert total <= 15_000_000, total  # Issue 14's budget (PTB: 10,001 ids).


@pytest.mark.slow
def test_the_wikipedia_recipe_trains_by_the_step_on_gzip_shards(tmp_path):
  """configs/wikipedia.py on a corpus laid out as the Wikipedia folder is
  (gzip shards of raw paragraphs), shrunk: evaluations and saves inside
  the epoch, stopped by its time budget and continued by the same
  command, then extended (as its docstring tells a user)."""
  from conftest import grammar_sentences  # pylint: disable=g-import-not-at-top
  from conftest import run_tool  # pylint: disable=g-import-not-at-top
  from kerasrnn import workdir as wd  # pylint: disable=g-import-not-at-top
  data = tmp_path / "wikipedia"
  data.mkdir()
  lines = grammar_sentences(1_200, seed=4)
  paragraphs = [" ".join(lines[i:i + 3]).capitalize() + "."
                for i in range(0, len(lines), 3)]
  for name, part in (("train-00", paragraphs[:160]),
                     ("train-01", paragraphs[160:340]),
                     ("valid", paragraphs[340:370]),
                     ("test", paragraphs[370:])):
    with gzip.open(data / f"{name}.txt.gz", "wt", encoding="utf-8") as f:
      f.write("\n".join(part) + "\n")
  workdir = str(tmp_path / "run")
  args = ["--config=configs/wikipedia.py", f"--config.data.dir={data}",
          "--config.model.hidden_size=16", "--config.data.batch_size=4",
          "--config.model.adaptive_cutoffs=(40,200)",
          "--config.train.eval_every_steps=40",
          "--config.train.save_every_steps=15",
          "--config.train.eval_tokens=500", f"--workdir={workdir}"]
  stopped = run_tool("train", *args, "--config.train.max_hours=0.0003")
  assert stopped.returncode == 0, stopped.stderr[-3000:]
  assert "run the same command to continue" in stopped.stderr
  assert not os.path.exists(wd.path(workdir, "results.json"))
  finished = run_tool("train", *args)
  assert finished.returncode == 0, finished.stderr[-3000:]
  results = wd.read_json(workdir, "results.json")
  steps_per_epoch = results["steps"]  # train.epochs = 1.
  rows = wd.read_history(workdir)
  assert [r["step"] for r in rows] == [
      *range(40, steps_per_epoch, 40), steps_per_epoch]
  assert rows[-1]["epoch"] == 1 and results["valid_tokens"] > 500
  extended = run_tool("train", *args, "--config.train.epochs=2")
  assert extended.returncode == 0, extended.stderr[-3000:]
  assert wd.read_json(workdir, "results.json")["steps"] == 2 * steps_per_epoch
