"""End-to-end runs of the real training loop on tiny data (marked slow)."""
import csv
import json
import os
import signal
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from conftest import precisions
from conftest import ROOT
from conftest import score_in_requests
from conftest import smoke_config
from kerasrnn import workdir as wd
from kerasrnn.errors import UserError
from kerasrnn.models import build_model
from kerasrnn.training import evaluation
from kerasrnn.training import train

pytestmark = pytest.mark.slow


def _history(workdir):
  with open(os.path.join(workdir, "history.csv")) as f:
    return list(csv.DictReader(f))


@pytest.fixture
def smoke(corpus_dir):
  """Smoke config on the first 5,000 tokens of each split of `corpus_dir`."""
  return lambda variant=None, **o: smoke_config(corpus_dir, variant, o)


@pytest.mark.parametrize("variant", [None, "sentence", "gru"])
def test_smoke_run_writes_the_workdir(smoke, tmp_path, variant):
  workdir = str(tmp_path / "run")
  results = train.train_and_evaluate(smoke(variant), workdir)
  for name in ("config.json", "vocab.txt", "history.csv", "results.json",
               "checkpoints/best.weights.h5", "checkpoints/best.json"):
    assert os.path.exists(os.path.join(workdir, name)), name
  rows = _history(workdir)
  assert [int(r["epoch"]) for r in rows] == [1, 2]
  assert [float(r["learning_rate"]) for r in rows] == [1.0, 0.5]
  best = min(rows, key=lambda r: float(r["val_perplexity"]))
  assert results["best_epoch"] == int(best["epoch"])
  assert results["valid_perplexity"] == pytest.approx(
      float(best["val_perplexity"]), rel=1e-4)
  assert results["epochs"] == 2 and results["parameters"] > 0
  # kerasrnn-evaluate reads only the workdir and gets the same figure.
  again = evaluation.evaluate(workdir, "test")
  assert again["perplexity"] == pytest.approx(results["test_perplexity"],
                                              rel=1e-6)
  assert again["target_tokens"] == results["test_tokens"]
  # A word model of whitespace-split text: per word = per token, except
  # that stream mode's dropped tail is left out pro rata.
  assert again["word_perplexity"] == pytest.approx(again["perplexity"],
                                                   rel=1e-9)
  assert results["test_word_perplexity"] == pytest.approx(
      results["test_perplexity"], rel=1e-9)
  # Its <unk> hides the held-out words it lacks: the rate is recorded.
  assert 0 < results["test_oov_rate"] < 0.2


def test_exact_perplexity_unpadded_equals_bucketed(smoke, tmp_path):
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(smoke("sentence"), workdir)
  one = evaluation.evaluate(workdir, "valid", batch_size=1, mode="sentence")
  bucketed = evaluation.evaluate(workdir, "valid", batch_size=64,
                                 mode="sentence")
  assert one["target_tokens"] == bucketed["target_tokens"]
  assert bucketed["perplexity"] == pytest.approx(one["perplexity"], rel=1e-5)


def test_zero_output_layer_gives_vocabulary_size(smoke, tmp_path):
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(smoke(), workdir)
  from kerasrnn import workdir as wd  # pylint: disable=g-import-not-at-top
  from kerasrnn.models import build_model  # pylint: disable=g-import-not-at-top
  config, vocab = wd.load_config(workdir), wd.load_vocab(workdir)
  model = build_model(config, len(vocab))
  logits = model.get_layer("logits")
  for w in logits.weights:
    w.assign(w.numpy() * 0)
  model.save_weights(os.path.join(workdir, "checkpoints/best.weights.h5"))
  result = evaluation.evaluate(workdir, "test")
  assert result["perplexity"] == pytest.approx(len(vocab), rel=1e-5)


def test_finished_run_is_not_retrained(smoke, tmp_path):
  workdir = str(tmp_path / "run")
  first = train.train_and_evaluate(smoke(), workdir)
  stamp = os.path.getmtime(os.path.join(workdir, "history.csv"))
  assert train.train_and_evaluate(smoke(), workdir) == first
  assert os.path.getmtime(os.path.join(workdir, "history.csv")) == stamp


def test_workdir_of_another_config_is_refused_untouched(smoke, tmp_path):
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(smoke(), workdir)
  before = {n: open(os.path.join(workdir, n), "rb").read()
            for n in ("config.json", "history.csv", "results.json")}
  with pytest.raises(UserError, match="model.hidden_size: 16 -> 32"):
    train.train_and_evaluate(smoke(**{"model.hidden_size": 32}), workdir)
  for name, data in before.items():
    assert open(os.path.join(workdir, name), "rb").read() == data


_KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    import keras
    sys.path.insert(0, {root!r})
    from configs import smoke
    from kerasrnn.training import train

    class Kill(keras.callbacks.Callback):
      # fit runs once per epoch here (evaluations at epochs' ends).
      fits = 0
      def on_train_begin(self, logs=None):
        Kill.fits += 1
      def on_train_batch_end(self, batch, logs=None):
        if {when!r} == "mid_epoch" and batch >= 5 and Kill.fits == 2:
          os.kill(os.getpid(), signal.SIGKILL)
      def on_train_end(self, logs=None):
        if Kill.fits == 3:
          os.kill(os.getpid(), signal.SIGKILL)  # Before its evaluation.

    config = smoke.get_config({variant!r})
    config.data.dir = {data!r}
    config.train.epochs = 3
    train.train_and_evaluate(config, {workdir!r}, [Kill()])
""")


@pytest.fixture(scope="module")
def uninterrupted(corpus_dir, tmp_path_factory):
  """variant -> (results, history) of a 3-epoch smoke run, trained once."""
  runs = {}

  def run(variant):
    if variant not in runs:
      workdir = str(tmp_path_factory.mktemp("uninterrupted"))
      results = train.train_and_evaluate(
          smoke_config(corpus_dir, variant, {"train.epochs": 3}), workdir)
      runs[variant] = results, _history(workdir)
    return runs[variant]

  return run


@pytest.mark.parametrize("when,variant,epochs_before", [
    ("mid_epoch", None, 1), ("after_training", None, 2),
    ("mid_epoch", "sentence", 1), ("mid_epoch", "regularised", 1),
    ("mid_epoch", "adaptive", 1)])
def test_killed_run_resumes_where_it_stopped(corpus_dir, uninterrupted, tmp_path,
                                             when, variant, epochs_before):
  workdir = str(tmp_path / "run")
  script = _KILLED_RUN.format(root=ROOT, data=corpus_dir, workdir=workdir,
                              when=when, variant=variant)
  killed = subprocess.run([sys.executable, "-c", script], cwd=ROOT,
                          capture_output=True, timeout=300, check=False)
  assert killed.returncode == -signal.SIGKILL
  before = _history(workdir)
  assert [int(r["epoch"]) for r in before] == list(range(1, epochs_before + 1))
  assert not os.path.exists(os.path.join(workdir, "results.json"))

  env = dict(os.environ, KERASRNN_DATA_DIR=corpus_dir)
  config = "configs/smoke.py" + (f":{variant}" if variant else "")
  resumed = subprocess.run(
      [sys.executable, "-m", "kerasrnn.cli.train", f"--config={config}",
       f"--config.data.dir={corpus_dir}", "--config.train.epochs=3",
       f"--workdir={workdir}"], cwd=ROOT, env=env, capture_output=True,
      text=True, timeout=300, check=False)
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  rows = _history(workdir)
  assert [r["epoch"] for r in rows] == ["1", "2", "3"]
  assert rows[:epochs_before] == before  # Finished epochs were not redone.
  results = json.load(open(os.path.join(workdir, "results.json")))
  assert results["epochs"] == 3
  # The last state is kept (a finished run can be extended).
  assert wd.state_steps(workdir, 1)[-1] == results["steps"]
  # The resumed run is the uninterrupted run: same weights, same batches
  # in the same order (sentence mode: each epoch's order is drawn from
  # (seed, epoch), not from how often the pipeline was iterated).
  expected_results, expected_rows = uninterrupted(variant)
  for row, expected in zip(rows, expected_rows):
    for key in ("train_perplexity", "val_perplexity", "test_perplexity"):
      assert float(row[key]) == pytest.approx(float(expected[key]), rel=1e-5)
  for split in ("train", "valid", "test"):
    assert results[f"{split}_perplexity"] == pytest.approx(
        expected_results[f"{split}_perplexity"], rel=1e-5)


def test_a_run_that_diverges_before_its_first_checkpoint_says_so(smoke,
                                                                  tmp_path):
  config = smoke(**{"train.learning_rate": 1e30, "train.clip_norm": 0.0})
  with pytest.raises(UserError, match="training diverged .* before its "
                     "first checkpoint"):
    train.train_and_evaluate(config, str(tmp_path / "run"))
  rows = wd.read_history(str(tmp_path / "run"))
  assert rows and not np.isfinite(rows[-1]["train_perplexity"])


class _Averages(keras.callbacks.Callback):
  """Records, at each epoch's end (the end of each fit, before its
  evaluation), the trained weights and the optimizer's averages (then put
  back)."""

  def __init__(self):
    super().__init__()
    self.trained, self.averaged = [], []

  def on_train_end(self, logs=None):
    variables = self.model.trainable_variables
    trained = [keras.ops.convert_to_numpy(v) for v in variables]
    self.model.optimizer.use_average(variables)
    self.averaged.append([keras.ops.convert_to_numpy(v) for v in variables])
    for variable, value in zip(variables, trained):
      variable.assign(value)
    self.trained.append(trained)


@pytest.mark.parametrize("variant", [None, "sentence"])
def test_the_averaged_weights_are_validated_checkpointed_and_evaluated(
    smoke, tmp_path, variant):
  workdir = str(tmp_path / "run")
  averages = _Averages()
  config = smoke(variant, **{"train.ema_momentum": 0.9,
                             "model.locked_dropout": True,
                             "model.dropout": 0.2, "model.word_dropout": 0.1,
                             "model.weight_drop": 0.2})
  results = train.train_and_evaluate(config, workdir, [averages])
  best = results["best_epoch"] - 1
  model = evaluation.load_best_model(workdir, config, results["vocab_size"])
  checkpoint = [keras.ops.convert_to_numpy(v)
                for v in model.trainable_variables]
  for saved, averaged, trained in zip(checkpoint, averages.averaged[best],
                                      averages.trained[best]):
    np.testing.assert_array_equal(saved, averaged)
  assert any(not np.allclose(s, t) for s, t in
             zip(checkpoint, averages.trained[best]))
  # The history's validation figure is the averaged weights' perplexity,
  # and kerasrnn-evaluate (the checkpoint) gives it again.
  rows = _history(workdir)
  again = evaluation.evaluate(workdir, "valid")
  assert again["perplexity"] == pytest.approx(
      float(rows[best]["val_perplexity"]), rel=1e-4)
  assert results["valid_perplexity"] == pytest.approx(again["perplexity"],
                                                      rel=1e-6)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_the_weight_average_begins_after_ema_start_steps(optimizer):
  config = smoke_config("", overrides={
      "train.optimizer": optimizer, "train.learning_rate": 0.1,
      "train.ema_momentum": 0.9, "train.ema_start": 3})
  keras.utils.set_random_seed(0)
  variable = keras.Variable(np.ones(4, np.float32))
  opt = train.make_optimizer(config.train)
  opt.build([variable])
  averages, values = [], []
  for step in range(6):
    opt.apply([keras.ops.convert_to_tensor(np.full(4, step + 1.0, "float32"))],
              [variable])
    averages.append(keras.ops.convert_to_numpy(
        opt._model_variables_moving_average[0]))  # pylint: disable=protected-access
    values.append(keras.ops.convert_to_numpy(variable))
  for k in range(3):  # The first 3 updates: the average is the weights.
    np.testing.assert_array_equal(averages[k], values[k])
  for k in range(3, 6):  # Then it averages at momentum 0.9.
    np.testing.assert_allclose(averages[k],
                               0.9 * averages[k - 1] + 0.1 * values[k],
                               rtol=1e-6)
    assert not np.allclose(averages[k], values[k])


@pytest.fixture
def logged(monkeypatch):
  """The lines train.py logs at info level, as they read."""
  lines = []
  info = train.logging.info
  def record(message, *args):
    lines.append(message % args)
    info(message, *args)
  monkeypatch.setattr(train.logging, "info", record)
  return lines


def _assert_same_run(workdir, expected):
  """`workdir` holds the run `expected` ((results, history rows)) holds."""
  expected_results, expected_rows = expected
  rows = _history(workdir)
  assert [r["step"] for r in rows] == [r["step"] for r in expected_rows]
  for row, want in zip(rows, expected_rows, strict=True):
    for key in ("epoch", "tokens", "learning_rate", "train_perplexity",
                "val_perplexity", "test_perplexity"):
      assert float(row[key]) == pytest.approx(float(want[key]), rel=1e-5)
  results = json.load(open(os.path.join(workdir, "results.json")))
  for key in ("best_step", "steps", "epochs"):
    assert results[key] == expected_results[key]
  for split in ("train", "valid", "test"):
    assert results[f"{split}_perplexity"] == pytest.approx(
        expected_results[f"{split}_perplexity"], rel=1e-5)


def test_a_run_stopped_by_max_hours_continues_as_if_not_stopped(
    smoke, uninterrupted, tmp_path, logged):
  workdir = str(tmp_path / "run")
  # 0.36 s: each command trains one call of steps_per_execution steps.
  config = smoke(**{"train.epochs": 3, "train.max_hours": 1e-4})
  stops = []
  while "stopped_at_step" in (results := train.train_and_evaluate(config,
                                                                   workdir)):
    stops.append(results["stopped_at_step"])
    assert len(stops) < 20
  assert len(stops) >= 3 and stops == sorted(stops)
  assert sum("run the same command to continue" in line
             for line in logged) == len(stops)
  _assert_same_run(workdir, uninterrupted(None))


def test_a_stopped_run_ends_where_it_stopped_when_asked_for_its_steps(
    smoke, tmp_path):
  workdir = str(tmp_path / "run")
  config = smoke(**{"train.epochs": 3, "train.max_hours": 1e-4})
  stopped = train.train_and_evaluate(config, workdir)["stopped_at_step"]
  assert stopped % 50  # Between the evaluations at the epochs' ends.
  results = train.train_and_evaluate(
      smoke(**{"train.epochs": 3, "train.steps": stopped}), workdir)
  assert results["steps"] == stopped
  assert [float(r["step"]) for r in _history(workdir)] == [stopped]
  assert os.path.exists(os.path.join(workdir, "results.json"))


@pytest.mark.parametrize("longer", [{"train.epochs": 3},
                                    {"train.steps": 130}])
def test_a_finished_run_trains_on_when_asked_for_more(
    smoke, uninterrupted, tmp_path, logged, longer):
  workdir = str(tmp_path / "run")
  first = train.train_and_evaluate(smoke(**{"train.epochs": 2}), workdir)
  assert first["epochs"] == 2
  results = train.train_and_evaluate(smoke(**longer), workdir)
  assert f"extending the finished run in {workdir} from step 100 to " in (
      "".join(logged))
  if "train.epochs" in longer:
    _assert_same_run(workdir, uninterrupted(None))
  else:  # Steps past the second epoch, evaluated at the run's last step.
    assert results["steps"] == 130
    assert [float(r["step"]) for r in _history(workdir)][-2:] == [
        first["steps"], 130]
  # Asking for as much again (or less) changes nothing.
  assert train.train_and_evaluate(smoke(**longer), workdir) == results
  assert train.train_and_evaluate(smoke(**{"train.epochs": 1}),
                                  workdir) == results


@pytest.mark.parametrize("precision", [
    p for p in precisions() if getattr(p, "values", (p,))[0] != "float32"])
@pytest.mark.parametrize("mode", ["stream", "sentence"])
def test_each_precision_trains_resumes_evaluates_and_exports(
    smoke, tmp_path, precision, mode):
  from kerasrnn.serving import export  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  overrides = {"train.precision": precision, "data.mode": mode}
  whole = str(tmp_path / "whole")
  expected = train.train_and_evaluate(smoke(**overrides), whole)
  # Stopped after every call into TensorFlow and continued: the same run.
  workdir = str(tmp_path / "run")
  stopped = smoke(**overrides, **{"train.max_hours": 1e-4})
  stops = 0
  while "stopped_at_step" in train.train_and_evaluate(stopped, workdir):
    stops += 1
    assert stops < 20
  assert stops >= 1
  _assert_same_run(workdir, (expected, _history(whole)))
  # Checkpoints are float32, and kerasrnn-evaluate (in the run's precision)
  # gives results.json's figure.
  weights = evaluation.best_weight_values(workdir)
  assert {v.dtype for v in weights.values()} == {np.dtype("float32")}
  again = evaluation.evaluate(workdir, "test", mode="sentence")
  if mode == "sentence":
    assert again["perplexity"] == pytest.approx(expected["test_perplexity"],
                                                rel=1e-6)
  # The export is float32 (whatever the run's precision): its score of the
  # test sentences is near the run's own perplexity of them.
  version = export.export(workdir, str(tmp_path / "export"))
  dtypes = tf.train.load_checkpoint(os.path.join(
      version, "variables", "variables")).get_variable_to_dtype_map()
  assert {d for d in dtypes.values() if d.is_floating} == {tf.float32}
  loaded = tf.saved_model.load(version)
  with open(os.path.join(smoke().data.dir, "ptb.test.txt")) as f:
    lines = [l.strip() for l in f]
  scored = score_in_requests(loaded.signatures["score"], lines)
  tokens = np.cumsum(scored["num_tokens"].numpy())
  read = tokens <= again["target_tokens"]
  assert tokens[read][-1] == again["target_tokens"]
  exported = np.exp(-np.sum(scored["log_likelihood"].numpy()[read])
                    / again["target_tokens"])
  assert exported == pytest.approx(again["perplexity"], rel=0.01)
