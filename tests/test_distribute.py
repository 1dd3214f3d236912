"""train.distribute: mirrored and multi-worker training equal one device.

The distributed runs are subprocesses (a strategy's devices and collectives
are fixed when TensorFlow starts): `mirrored` over 2 logical CPU devices, and
`multi_worker` as two worker processes on 127.0.0.1. Each trains the smoke
config (stream mode, and its sentence variant) on a corpus the tests write
and is compared with the same config trained in this process on one device.
"""
import fcntl
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import types

import keras
import numpy as np
import pytest

from conftest import ROOT
from conftest import smoke_config
from kerasrnn import config as config_lib
from kerasrnn.errors import UserError
from kerasrnn.training import distribute
from kerasrnn.training import evaluation
from kerasrnn.training import train
from kerasrnn.training.callbacks import reset_states

pytestmark = pytest.mark.slow  # Multi-process and multi-device runs.

TIMEOUT = 300  # Seconds for one distributed run (they take 15-60 here).


def _train(*args):
  return [sys.executable, "-m", "kerasrnn.cli.train", *args]


def _train_args(data_dir, workdir, *overrides, variant="sentence"):
  config = f"{ROOT}/configs/smoke.py" + (f":{variant}" if variant else "")
  return [f"--config={config}", f"--config.data.dir={data_dir}",
          f"--workdir={workdir}", *overrides]


def _read(log):
  log.seek(0)
  return log.read()


def _run_cluster(command, tmp_path, name):
  """Runs `command` as the two workers of a local cluster, each with its own
  TF_CONFIG, to the end; returns their return codes and logs."""
  logs = [open(tmp_path / f"{name}{i}.log", "w+") for i in range(2)]
  workers = [subprocess.Popen(
      command, env=dict(os.environ, TF_CONFIG=config), stdout=log,
      stderr=subprocess.STDOUT, cwd=ROOT)
             for config, log in zip(distribute.local_cluster(2), logs)]
  try:
    codes = [w.wait(timeout=TIMEOUT) for w in workers]
  finally:
    for w in workers:
      w.kill()
  texts = [_read(log) for log in logs]
  for log in logs:
    log.close()
  return codes, texts


def _run_workers(args, tmp_path, name):
  """Runs kerasrnn-train with `args` on two workers to the end."""
  return _run_cluster(_train(*args, "--config.train.distribute=multi_worker"),
                      tmp_path, name)


def _results(workdir):
  with open(os.path.join(workdir, "results.json"), encoding="utf-8") as f:
    return json.load(f)


class _ResetEveryBatch(keras.callbacks.Callback):
  """What a broken distributed stream would do: forget the state."""

  def on_train_batch_begin(self, batch, logs=None):
    reset_states(self.model)


@pytest.fixture(scope="module")
def one_device(corpus_dir, tmp_path_factory):
  """variant -> the smoke config trained on one device (the reference);
  "stream_reset" is stream mode with the state reset before every batch."""
  runs = {}

  def run(variant):
    if variant not in runs:
      workdir = str(tmp_path_factory.mktemp("one_device"))
      if variant == "stream_reset":
        config = smoke_config(corpus_dir, None,
                              {"train.steps_per_execution": 1})
        train.train_and_evaluate(config, workdir, [_ResetEveryBatch()])
      else:
        train.train_and_evaluate(smoke_config(corpus_dir, variant), workdir)
      runs[variant] = workdir
    return runs[variant]

  return run


def _assert_trains_like_one_device(workdir, one_device):
  reference = evaluation.best_weight_values(one_device)
  weights = evaluation.best_weight_values(workdir)
  assert sorted(weights) == sorted(reference)
  for name, value in reference.items():
    # Measured: at most 9.5e-7 apart after the 2 epochs (SGD at lr 1 with
    # clipping; benchmarks/distributed.py): other summation orders only.
    np.testing.assert_allclose(weights[name], value, rtol=0, atol=1e-5,
                               err_msg=name)
  expected, results = _results(one_device), _results(workdir)
  for key in ("train_perplexity", "valid_perplexity", "test_perplexity"):
    assert results[key] == pytest.approx(expected[key], rel=1e-5)
  for key in ("epochs", "best_epoch", "train_tokens", "valid_tokens",
              "test_tokens"):
    assert results[key] == expected[key]
  # Exact perplexity: the distributed run's own evaluation of its weights
  # equals a one-device evaluation of the same weights.
  for split in ("valid", "test"):
    one = evaluation.evaluate(workdir, split)
    assert one["perplexity"] == pytest.approx(
        results[f"{split}_perplexity"], rel=1e-5)
    assert one["target_tokens"] == results[f"{split}_tokens"]


def _assert_state_was_carried(workdir, one_device):
  """Stream mode: the run is far from one that forgets the state at every
  batch (so the 1e-5 agreement above could not hold for a run that resets
  or mixes the rows' states)."""
  reset = evaluation.best_weight_values(one_device("stream_reset"))
  weights = evaluation.best_weight_values(workdir)
  assert max(np.abs(weights[k] - reset[k]).max() for k in reset) > 1e-3
  assert _results(workdir)["valid_perplexity"] != pytest.approx(
      _results(one_device("stream_reset"))["valid_perplexity"], rel=1e-3)


@pytest.mark.parametrize("variant", ["sentence", None])
def test_mirrored_trains_like_one_device(corpus_dir, tmp_path, one_device,
                                         variant):
  workdir = str(tmp_path / "mirrored")
  run = subprocess.run(
      _train(*_train_args(corpus_dir, workdir, "--cpu_devices=2",
                          "--config.train.distribute=mirrored",
                          variant=variant)),
      capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT)
  assert run.returncode == 0, run.stderr[-3000:]
  assert "num_devices = 2" in run.stderr  # Really 2 replicas.
  _assert_trains_like_one_device(workdir, one_device(variant))
  if variant is None:
    _assert_state_was_carried(workdir, one_device)


@pytest.mark.parametrize("variant", ["sentence", None])
def test_multi_worker_trains_like_one_device(corpus_dir, tmp_path, one_device,
                                             variant):
  workdir = str(tmp_path / "multi_worker")
  codes, logs = _run_workers(_train_args(corpus_dir, workdir, variant=variant),
                             tmp_path, "w")
  assert codes == [0, 0], logs[0][-3000:] + logs[1][-3000:]
  assert all("group_size = 2" in log for log in logs)  # Really 2 workers.
  # The chief wrote the run; the other worker only its own resume state.
  assert sorted(os.listdir(workdir)) == [
      "backup", "checkpoints", "config.json", "data.json", "history.csv",
      "results.json", "tensorboard", "vocab.txt", "workers"]
  assert os.listdir(os.path.join(workdir, "workers")) == ["1"]
  _assert_trains_like_one_device(workdir, one_device(variant))
  if variant is None:
    _assert_state_was_carried(workdir, one_device)


_DYING_WORKER = textwrap.dedent("""
    import glob, json, os, signal, sys, time
    import keras
    sys.path.insert(0, {root!r})
    from configs import smoke
    from kerasrnn import workdir as wd
    from kerasrnn.errors import UserError
    from kerasrnn.training import train

    config = smoke.get_config()
    config.data.dir = {data!r}
    config.train.epochs = 3
    config.train.distribute = "multi_worker"
    config.train.eval_test_every_epoch = False  # No collectives after saves.

    TASK = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    WORKDIR, POINT, VICTIM = {workdir!r}, {point!r}, {victim!r}
    OTHER = os.path.join(WORKDIR, "workers/1" if TASK == 0 else "", "backup")

    def die_when_other_saved(states):
      # The resume states are saved at epochs' ends only here.
      while len(glob.glob(os.path.join(OTHER, "step-*.weights.h5"))) < states:
        time.sleep(0.05)
      os.kill(os.getpid(), signal.SIGKILL)

    class Die(keras.callbacks.Callback):
      # fit runs once per epoch; after it the validation, then this
      # worker's save; the next fit begins after it.
      epoch = 0
      def on_train_begin(self, logs=None):
        Die.epoch += 1
        if POINT == "after_both_saves" and Die.epoch == 3:
          die_when_other_saved(2)
      def on_train_batch_end(self, batch, logs=None):
        if POINT == "mid_epoch" and Die.epoch == 2 and batch == 3:
          os.kill(os.getpid(), signal.SIGKILL)

    save_state = wd.save_state
    def save_state_or_die(run_dir, model, step, arrays):
      if POINT == "before_own_save" and TASK == VICTIM and Die.epoch == 2:
        die_when_other_saved(2)  # The other has saved epoch 2; this not.
      save_state(run_dir, model, step, arrays)
    wd.save_state = save_state_or_die

    try:
      train.train_and_evaluate(config, WORKDIR,
                               [Die()] if TASK == VICTIM else [])
    except UserError as e:  # As kerasrnn-train ends.
      print(f"error: {{e}}", flush=True)
      os._exit(2)
""")


@pytest.mark.parametrize("point,victim,resumed_after", [
    ("mid_epoch", 1, 1),          # Before either save of epoch 2.
    ("before_own_save", 1, 1),    # The chief saved epoch 2, worker 1 not.
    ("before_own_save", 0, 1),    # Worker 1 saved epoch 2, the chief not.
    ("after_both_saves", 1, 2),   # Both saved epoch 2.
])
def test_multi_worker_run_resumes_after_a_worker_dies(
    corpus_dir, tmp_path, point, victim, resumed_after):
  workdir = str(tmp_path / "killed")
  script = _DYING_WORKER.format(root=ROOT, workdir=workdir, point=point,
                                victim=victim, data=corpus_dir)
  codes, texts = _run_cluster([sys.executable, "-c", script], tmp_path,
                              "first")
  survivor = 1 - victim
  assert codes[victim] == -signal.SIGKILL, texts[victim][-3000:]
  assert codes[survivor] == 2, texts[survivor][-3000:]
  last_line = texts[survivor].strip().splitlines()[-1]
  assert last_line.startswith("error: multi-worker training lost "
                              f"/job:worker/replica:0/task:{victim}; restart "
                              "every worker"), last_line
  assert not os.path.exists(os.path.join(workdir, "results.json"))
  with open(os.path.join(workdir, "history.csv"), encoding="utf-8") as f:
    before = f.read().splitlines()

  args = _train_args(corpus_dir, workdir, "--config.train.epochs=3",
                     "--config.train.eval_test_every_epoch=False",
                     variant=None)
  codes, logs = _run_workers(args, tmp_path, "again")
  assert codes == [0, 0], logs[0][-3000:] + logs[1][-3000:]
  for log in logs:  # Both from the last epoch both had saved.
    assert f"(epoch {resumed_after}.00)" in log
  with open(os.path.join(workdir, "history.csv"), encoding="utf-8") as f:
    after = f.read().splitlines()
  # Epochs 1..3 once each; those before the shared state were not redone.
  assert [row.split(",")[1] for row in after[1:]] == ["1", "2", "3"]
  assert after[:resumed_after + 1] == before[:resumed_after + 1]
  assert _results(workdir)["epochs"] == 3


@pytest.mark.parametrize("victim", [0, 1])
def test_a_worker_that_refuses_at_start_up_ends_the_others_in_one_line(
    corpus_dir, tmp_path, victim):
  workdir = str(tmp_path / "run")
  locked = os.path.join(workdir, "workers/1") if victim else workdir
  os.makedirs(locked)
  holder = os.open(locked, os.O_RDONLY | os.O_DIRECTORY)
  fcntl.flock(holder, fcntl.LOCK_EX)  # Another training holds its workdir.
  try:
    codes, logs = _run_workers(_train_args(corpus_dir, workdir), tmp_path,
                               "w")
  finally:
    os.close(holder)
  assert codes == [2, 2], logs[0][-3000:] + logs[1][-3000:]
  last = [log.strip().splitlines()[-1] for log in logs]
  assert last[victim].startswith(f"error: {locked} is in use by another "
                                 "training"), last[victim]
  assert last[1 - victim].startswith(
      "error: multi-worker training lost "
      f"/job:worker/replica:0/task:{victim}; restart every worker"), (
          last[1 - victim])


def test_jit_compile_is_refused():
  with pytest.raises(UserError, match="jit_compile=True is not supported"):
    config_lib.validate(smoke_config("", overrides={
        "train.distribute": "multi_worker", "train.jit_compile": True}))


def test_stream_batch_must_split_evenly():
  three = types.SimpleNamespace(num_replicas_in_sync=3)
  assert distribute.replica_batch_size(three, 12) == 4
  with pytest.raises(UserError, match="batch_size=10 must be a multiple of "
                     "the 3 replicas") as error:
    distribute.replica_batch_size(three, 10)
  assert "\n" not in str(error.value)


def test_local_cluster_names_free_ports():
  configs = [json.loads(c) for c in distribute.local_cluster(3)]
  workers = configs[0]["cluster"]["worker"]
  assert len(set(workers)) == 3
  assert [c["task"] for c in configs] == [
      {"type": "worker", "index": i} for i in range(3)]
  assert all(c["cluster"]["worker"] == workers for c in configs)


def test_multi_worker_needs_tf_config(monkeypatch):
  monkeypatch.delenv("TF_CONFIG", raising=False)
  with pytest.raises(UserError, match="needs the TF_CONFIG environment"):
    distribute.make_strategy("multi_worker")
  monkeypatch.setenv("TF_CONFIG", "{cluster: ")
  with pytest.raises(UserError, match="TF_CONFIG is not valid JSON"):
    distribute.make_strategy("multi_worker")


def test_cpu_cannot_be_split_once_tensorflow_runs():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.constant(0)  # TensorFlow has started in this process.
  with pytest.raises(UserError, match="cannot split the CPU into 2 devices"):
    distribute.split_cpu(2)
