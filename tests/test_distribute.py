"""train.distribute: mirrored and multi-worker training equal one device.

The distributed runs are subprocesses (a strategy's devices and collectives
are fixed when TensorFlow starts): `mirrored` over 2 logical CPU devices, and
`multi_worker` as two worker processes on 127.0.0.1. Each trains the smoke
config's sentence variant on a corpus the tests write and is compared with
the same config trained in this process on one device.
"""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT
from conftest import smoke_config
from kerasrnn import config as config_lib
from kerasrnn.errors import UserError
from kerasrnn.training import distribute
from kerasrnn.training import evaluation
from kerasrnn.training import train

pytestmark = pytest.mark.slow  # Multi-process and multi-device runs.

TIMEOUT = 300  # Seconds for one distributed run (they take 15-60 here).


def _train(*args):
  return [sys.executable, "-m", "kerasrnn.cli.train", *args]


def _train_args(data_dir, workdir, *overrides):
  return [f"--config={ROOT}/configs/smoke.py:sentence",
          f"--config.data.dir={data_dir}", f"--workdir={workdir}",
          *overrides]


def _start_workers(args, logs):
  configs = distribute.local_cluster(2)
  return [subprocess.Popen(
      _train(*args, "--config.train.distribute=multi_worker"),
      env=dict(os.environ, TF_CONFIG=config), stdout=log,
      stderr=subprocess.STDOUT, cwd=ROOT) for config, log in zip(configs, logs)]


def _read(log):
  log.seek(0)
  return log.read()


def _run_workers(args, tmp_path, name):
  """Runs two workers to the end; returns their return codes and logs."""
  logs = [open(tmp_path / f"{name}{i}.log", "w+") for i in range(2)]
  workers = _start_workers(args, logs)
  try:
    codes = [w.wait(timeout=TIMEOUT) for w in workers]
  finally:
    for w in workers:
      w.kill()
  texts = [_read(log) for log in logs]
  for log in logs:
    log.close()
  return codes, texts


def _results(workdir):
  with open(os.path.join(workdir, "results.json"), encoding="utf-8") as f:
    return json.load(f)


@pytest.fixture(scope="module")
def one_device(corpus_dir, tmp_path_factory):
  """The smoke sentence config trained on one device (the reference)."""
  workdir = str(tmp_path_factory.mktemp("one_device"))
  train.train_and_evaluate(smoke_config(corpus_dir, "sentence"), workdir)
  return workdir


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


def test_mirrored_trains_like_one_device(corpus_dir, tmp_path, one_device):
  workdir = str(tmp_path / "mirrored")
  run = subprocess.run(
      _train(*_train_args(corpus_dir, workdir, "--cpu_devices=2",
                          "--config.train.distribute=mirrored")),
      capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT)
  assert run.returncode == 0, run.stderr[-3000:]
  assert "num_devices = 2" in run.stderr  # Really 2 replicas.
  _assert_trains_like_one_device(workdir, one_device)


def test_multi_worker_trains_like_one_device(corpus_dir, tmp_path, one_device):
  workdir = str(tmp_path / "multi_worker")
  codes, logs = _run_workers(_train_args(corpus_dir, workdir), tmp_path, "w")
  assert codes == [0, 0], logs[0][-3000:] + logs[1][-3000:]
  assert all("group_size = 2" in log for log in logs)  # Really 2 workers.
  # The chief wrote the run; the other worker's own directory is gone.
  assert sorted(os.listdir(workdir)) == [
      "checkpoints", "config.json", "data.json", "history.csv",
      "results.json", "tensorboard", "vocab.txt"]
  _assert_trains_like_one_device(workdir, one_device)


def test_multi_worker_run_resumes_after_a_worker_is_killed(corpus_dir, tmp_path):
  workdir = str(tmp_path / "killed")
  args = _train_args(corpus_dir, workdir, "--config.train.epochs=3")
  with open(tmp_path / "first0.log", "w+") as log0, \
       open(tmp_path / "first1.log", "w+") as log1:
    chief, other = _start_workers(args, [log0, log1])
    try:
      # Each worker saves its own state (backup/epoch-1.weights.h5): kill
      # when both have saved epoch 1
      # (a worker killed between the two saves would resume one epoch behind
      # the chief: see the note in README, 'Training on several machines').
      saved = [os.path.join(workdir, d, "backup/epoch-1.weights.h5")
               for d in ("", "workers/1")]
      deadline = time.time() + TIMEOUT
      while (not all(map(os.path.exists, saved)) and time.time() < deadline
             and chief.poll() is None and other.poll() is None):
        time.sleep(0.1)
      assert all(map(os.path.exists, saved)), (
          "no epoch finished in time: " + _read(log0)[-3000:])
      other.send_signal(signal.SIGKILL)
      other.wait(timeout=30)
      code = chief.wait(timeout=120)  # Heartbeats notice within seconds.
    finally:
      chief.kill()
      other.kill()
    chief_log = _read(log0)
  assert code == 2, chief_log[-3000:]
  last_line = chief_log.strip().splitlines()[-1]
  assert last_line.startswith("error: multi-worker training lost "
                              "/job:worker/replica:0/task:1; restart every "
                              "worker"), last_line
  assert not os.path.exists(os.path.join(workdir, "results.json"))
  with open(os.path.join(workdir, "history.csv"), encoding="utf-8") as f:
    before = f.read().splitlines()
  done = len(before) - 1
  assert 1 <= done < 3

  codes, logs = _run_workers(args, tmp_path, "again")
  assert codes == [0, 0], logs[0][-3000:] + logs[1][-3000:]
  for log in logs:
    assert f"after epoch {done}" in log
  with open(os.path.join(workdir, "history.csv"), encoding="utf-8") as f:
    after = f.read().splitlines()
  # Epochs 1..3 once each; those done before the kill were not redone.
  assert [row.split(",")[0] for row in after[1:]] == ["1", "2", "3"]
  assert after[:len(before)] == before
  assert _results(workdir)["epochs"] == 3
  assert not os.path.exists(os.path.join(workdir, "workers"))


@pytest.mark.parametrize("overrides,message", [
    ({"train.distribute": "mirrored"}, "needs data.mode=sentence"),
    ({"train.distribute": "multi_worker", "data.mode": "sentence",
      "train.jit_compile": True}, "jit_compile=True is not supported"),
])
def test_unsupported_layouts_are_refused(overrides, message):
  with pytest.raises(UserError, match=message):
    config_lib.validate(smoke_config("", overrides=overrides))


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
