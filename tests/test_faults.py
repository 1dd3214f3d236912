"""The run directory under real operations: a second training, damaged files,
a full disk, and kills at any moment (docs/results.md, "Reliability").

Each fault is met with one line (exit status 2) or recovered from, and a run
that recovers ends equal to the uninterrupted run with the same seed.
"""
import glob
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest

from conftest import ROOT
from conftest import error_line
from conftest import run_tool
from conftest import smoke_config
from kerasrnn import workdir as wd
from kerasrnn.errors import UserError
from kerasrnn.training import evaluation
from kerasrnn.training import train

pytestmark = pytest.mark.slow
EPOCHS = 3


# Saves and evaluations inside epochs too (an epoch is 50 steps).
SAVED_OFTEN = {"train.save_every_steps": 7, "train.eval_every_steps": 20}


def _config(corpus_dir, **overrides):
  return smoke_config(corpus_dir, overrides={"train.epochs": EPOCHS,
                                             **overrides})


def _train_args(corpus_dir, workdir, variant=None, **overrides):
  config = "configs/smoke.py" + (f":{variant}" if variant else "")
  return [f"--config={config}", f"--config.data.dir={corpus_dir}",
          f"--config.train.epochs={EPOCHS}", f"--workdir={workdir}",
          *(f"--config.{k}={v}" for k, v in overrides.items())]


def _files(workdir):
  """{relative path: bytes} of every file under `workdir`."""
  out = {}
  for directory, _, names in os.walk(workdir):
    for name in names:
      p = os.path.join(directory, name)
      out[os.path.relpath(p, workdir)] = open(p, "rb").read()
  return out


def _truncate(path):
  os.truncate(path, os.path.getsize(path) // 2)


def _uninterrupted_run(directory, config):
  workdir = str(directory / "run")
  results = train.train_and_evaluate(config, workdir)
  return workdir, results, wd.read_history(workdir)


@pytest.fixture(scope="module")
def uninterrupted(corpus_dir, tmp_path_factory):
  """(workdir, results, history) of a 3-epoch smoke run, trained once."""
  return _uninterrupted_run(tmp_path_factory.mktemp("uninterrupted"),
                            _config(corpus_dir))


def _assert_equal_to(uninterrupted, workdir, results=None):
  """The run in `workdir` is the uninterrupted one: each evaluation once,
  the same perplexities, results and best checkpoint."""
  expected_dir, expected_results, expected_rows = uninterrupted
  rows = wd.read_history(workdir)
  assert [r["step"] for r in rows] == [r["step"] for r in expected_rows]
  for row, expected in zip(rows, expected_rows, strict=True):
    for key in ("epoch", "tokens", "learning_rate", "train_perplexity",
                "val_perplexity", "test_perplexity"):
      assert row[key] == pytest.approx(expected[key], rel=1e-5)
  results = results or wd.read_json(workdir, "results.json")
  assert results["epochs"] == EPOCHS
  assert results["best_step"] == expected_results["best_step"]
  for split in ("train", "valid", "test"):
    assert results[f"{split}_perplexity"] == pytest.approx(
        expected_results[f"{split}_perplexity"], rel=1e-5)
  config, vocab = wd.load_config(workdir), len(wd.load_vocab(workdir))
  got = evaluation.load_best_model(workdir, config, vocab).get_weights()
  want = evaluation.load_best_model(expected_dir, config, vocab).get_weights()
  for g, w in zip(got, want, strict=True):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)
  # The last state stays (a finished run can be extended).
  assert wd.state_steps(workdir, 1)[-1] == results["steps"]
  assert not glob.glob(os.path.join(workdir, "**", ".tmp-*"), recursive=True)


class _Stop(Exception):
  pass


class _StopBeforeEpoch(keras.callbacks.Callback):
  """Stops a run as `fit` starts epoch `epoch` + 1 (0-based `epoch`): fit
  runs once per epoch in `_config`."""

  def __init__(self, epoch):
    super().__init__()
    self.epoch = epoch
    self.fits = 0

  def on_train_begin(self, logs=None):
    self.fits += 1
    if self.fits > self.epoch:
      raise _Stop


def _state(workdir, which=-1, kind="weights.h5"):
  """The path of a resume state's file (the newest by default)."""
  step = wd.state_steps(workdir, 1)[which]
  return wd.path(workdir, f"{wd.BACKUP}/step-{step}.{kind}")


def _stopped_after(corpus_dir, workdir, epochs):
  """A run of `_config` stopped after `epochs` epochs (as a kill would)."""
  with pytest.raises(_Stop):
    train.train_and_evaluate(_config(corpus_dir), workdir,
                             [_StopBeforeEpoch(epochs)])
  assert len(wd.read_history(workdir)) == epochs
  return workdir


def test_a_second_training_is_refused_and_the_first_is_untouched(
    corpus_dir, uninterrupted, tmp_path):
  workdir = str(tmp_path / "run")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  first = subprocess.Popen(
      [sys.executable, "-m", "kerasrnn.cli.train",
       *_train_args(corpus_dir, workdir)], cwd=ROOT, env=env,
      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  try:
    deadline = time.time() + 120
    while not os.path.exists(wd.path(workdir, "config.json")):
      assert time.time() < deadline and first.poll() is None
      time.sleep(0.05)
    first.send_signal(signal.SIGSTOP)  # Holds the lock, mid-run.
    before = _files(workdir)
    line = error_line(run_tool("train", *_train_args(corpus_dir, workdir)))
    assert line.startswith(f"error: {workdir} is in use by another training "
                           f"(pid {first.pid} on ")
    assert "wait for it to end or stop it, or use another --workdir" in line
    assert _files(workdir) == before
  finally:
    first.send_signal(signal.SIGCONT)
  assert first.wait(timeout=300) == 0
  _assert_equal_to(uninterrupted, workdir)


@pytest.mark.parametrize("name,tool,message", [
    (wd.BEST, "evaluate", "while the run trains, its next better evaluation "
     "replaces it; otherwise restore it from a copy of the workdir"),
    (wd.BEST, "export", "while the run trains"),
    ("config.json", "evaluate", "it holds the run's settings"),
    ("vocab.txt", "export", "delete it and run the same kerasrnn-train "
     "command"),
    ("history.csv", "report", "otherwise restore it from a copy"),
    ("results.json", "report", "run the same kerasrnn-train command again"),
])
def test_a_damaged_file_of_a_finished_run_is_one_line(
    uninterrupted, tmp_path, name, tool, message):
  workdir = str(shutil.copytree(uninterrupted[0], tmp_path / "run"))
  _truncate(wd.path(workdir, name))
  args = {"evaluate": [f"--workdir={workdir}"],
          "export": [f"--workdir={workdir}", f"--export_base={tmp_path}/e"],
          "report": [f"--runs={workdir}", f"--out={tmp_path}/report"]}[tool]
  line = error_line(run_tool(tool, *args))
  assert line.startswith(f"error: {wd.path(workdir, name)} is damaged (")
  assert message in line


def test_train_rebuilds_the_results_and_vocabulary_of_a_finished_run(
    uninterrupted, tmp_path, corpus_dir):
  workdir = str(shutil.copytree(uninterrupted[0], tmp_path / "run"))
  vocab = open(wd.path(workdir, "vocab.txt"), "rb").read()
  _truncate(wd.path(workdir, "results.json"))
  _truncate(wd.path(workdir, "vocab.txt"))
  results = train.train_and_evaluate(_config(corpus_dir), workdir)
  assert open(wd.path(workdir, "vocab.txt"), "rb").read() == vocab
  # results.json is computed again from the best checkpoint (no epoch is
  # trained again: the history is unchanged).
  assert wd.read_history(workdir) == uninterrupted[2]
  _assert_equal_to(uninterrupted, workdir, results)


def test_a_damaged_newest_state_resumes_from_the_one_before(
    uninterrupted, tmp_path, corpus_dir):
  workdir = _stopped_after(corpus_dir, str(tmp_path / "run"), 2)
  _truncate(_state(workdir))
  (tmp_path / "run" / "history.csv").write_text("step,epoch,tokens,lear")
  train.train_and_evaluate(_config(corpus_dir), workdir)
  _assert_equal_to(uninterrupted, workdir)


def _as_epoch_history(workdir):
  """Rewrites history.csv as kerasrnn before 0.3 wrote it (per epoch)."""
  rows = wd.read_history(workdir)
  seconds = np.diff([0] + [r["seconds"] for r in rows])
  lines = [",".join(wd.EPOCH_HISTORY_FIELDS)] + [
      ",".join(f"{v:g}" for v in (
          r["epoch"], r["learning_rate"], r["train_perplexity"],
          r["val_perplexity"], r["test_perplexity"], s, r["tokens_per_second"]))
      for r, s in zip(rows, seconds, strict=True)]
  (open(wd.path(workdir, "history.csv"), "w")).write("\n".join(lines) + "\n")


@pytest.mark.parametrize("version", ["0.1", "0.2"])
def test_an_epoch_workdir_of_an_earlier_version_resumes(
    uninterrupted, tmp_path, corpus_dir, version):
  workdir = _stopped_after(corpus_dir, str(tmp_path / "run"), 1)
  backup = tmp_path / "run" / "backup"
  weights = _state(workdir)
  for name in os.listdir(backup):
    if not os.path.samefile(backup / name, weights):
      os.remove(backup / name)
  _as_epoch_history(workdir)
  if version == "0.1":  # As Keras's BackupAndRestore wrote it.
    os.rename(weights, backup / "latest.weights.h5")
    (backup / "training_metadata.json").write_text('{"epoch": 1, "batch": 0}')
  else:  # kerasrnn 0.2: a state per epoch.
    os.rename(weights, backup / "epoch-1.weights.h5")
  train.train_and_evaluate(_config(corpus_dir), workdir)
  _assert_equal_to(uninterrupted, workdir)


def test_every_state_damaged_is_one_line_and_changes_nothing(
    tmp_path, corpus_dir):
  workdir = _stopped_after(corpus_dir, str(tmp_path / "run"), 2)
  newest = os.path.basename(_state(workdir))
  for which in (0, 1):
    _truncate(_state(workdir, which))
  before = _files(workdir)
  line = error_line(run_tool("train", *_train_args(corpus_dir, workdir)))
  assert f"every resume state in {workdir}/backup is damaged (" in line
  assert f"{newest} is damaged (" in line
  assert line.endswith(f"delete {workdir}/backup to train again from step 0 "
                       "(history.csv and the best checkpoint are kept), or "
                       "restore it from a copy of the workdir")
  assert _files(workdir) == before


def _limit_file_size():
  resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))


def test_a_full_disk_is_one_line_and_the_run_resumes_after(
    uninterrupted, tmp_path, corpus_dir):
  workdir = _stopped_after(corpus_dir, str(tmp_path / "run"), 1)
  state = os.path.relpath(_state(workdir), workdir)
  before = _files(workdir)
  # Files past 40 KB cannot be written (the weights are ~90 KB): the disk
  # is "full" when epoch 2 saves its checkpoint.
  full = subprocess.run(
      [sys.executable, "-m", "kerasrnn.cli.train",
       *_train_args(corpus_dir, workdir)], cwd=ROOT, capture_output=True,
      text=True, timeout=300, preexec_fn=_limit_file_size,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  line = error_line(full)
  assert line.startswith(f"error: cannot write {workdir}/checkpoints/best."
                         "weights.h5 (File too large); free space on its disk")
  after = _files(workdir)
  for name in (wd.BEST, state, "config.json", "vocab.txt"):
    assert after[name] == before[name]
  assert [r["epoch"] for r in wd.read_history(workdir)] == [1, 2]
  train.train_and_evaluate(_config(corpus_dir), workdir)
  _assert_equal_to(uninterrupted, workdir)


# Trains with kills planned at the n-th event: a batch's or an epoch's end,
# a validation batch, or the moment a file is written in full but not yet
# renamed into place (mid-checkpoint, mid-history, mid-state).
_KILLED_AT_EVENT = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {root!r})
    import keras
    from conftest import smoke_config
    from kerasrnn.training import train

    countdown = [{events}]

    def event():
      countdown[0] -= 1
      if countdown[0] == 0:
        os.kill(os.getpid(), signal.SIGKILL)

    replace = os.replace
    def replace_then_maybe_die(source, target):
      event()  # The new version is written, not yet in place.
      replace(source, target)
    os.replace = replace_then_maybe_die

    class Kill(keras.callbacks.Callback):
      def on_epoch_begin(self, epoch, logs=None): event()
      def on_train_batch_end(self, batch, logs=None): event()
      def on_test_batch_end(self, batch, logs=None): event()
      def on_epoch_end(self, epoch, logs=None): event()

    config = smoke_config({data!r}, {variant!r}, {overrides!r})
    train.train_and_evaluate(config, {workdir!r}, [Kill()])
""")


@pytest.mark.parametrize("variant", [None, "sentence"])
def test_kills_at_random_moments_lose_nothing(tmp_path, corpus_dir, variant):
  """Kills at 20 random instants of a run that saves its state every 7
  steps and evaluates every 20 (several of each per epoch)."""
  overrides = dict(SAVED_OFTEN, **{"train.epochs": EPOCHS})
  uninterrupted = _uninterrupted_run(
      tmp_path, smoke_config(corpus_dir, variant, overrides))
  rng = random.Random(30)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  kills, chains, workdir = 0, 0, None
  while kills < 20 or workdir:
    if workdir is None:
      chains += 1
      workdir = str(tmp_path / f"chain{chains}")
    args = ["-m", "kerasrnn.cli.train",
            *_train_args(corpus_dir, workdir, variant, **SAVED_OFTEN)]
    if kills >= 20:  # Enough kills: let this run finish.
      command, delay = args, None
    elif rng.random() < 0.5:  # At a random instant: import, setup, a step...
      command, delay = args, rng.uniform(1, 9)
    else:  # At a random event of the training loop or of a file's write
      # (the first 40 reach the first evaluation and four resume states).
      command, delay = ["-c", _KILLED_AT_EVENT.format(
          root=os.path.join(ROOT, "tests"), data=corpus_dir,
          variant=variant, overrides=overrides, workdir=workdir,
          events=rng.randint(1, 40))], None
    process = subprocess.Popen([sys.executable, *command], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
      _, stderr = process.communicate(timeout=delay)
    except subprocess.TimeoutExpired:
      process.send_signal(signal.SIGKILL)
      _, stderr = process.communicate()
    if process.returncode == -signal.SIGKILL:
      kills += 1
      continue
    assert process.returncode == 0, stderr[-3000:]
    _assert_equal_to(uninterrupted, workdir)
    workdir = None
  print(f"{kills} kills in {chains} run(s), each ending as the uninterrupted")
  assert kills >= 20
