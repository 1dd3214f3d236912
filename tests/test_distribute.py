"""train.distribute: mirrored and multi-worker training equal one device.

The distributed runs are subprocesses (a strategy's devices and collectives
are fixed when TensorFlow starts): `mirrored` over 2 logical CPU devices, and
`multi_worker` as two worker processes on 127.0.0.1. Each trains the smoke
config's sentence variant on a PTB slice and is compared with the same
config trained in this process on one device.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from conftest import ROOT
from conftest import smoke_config
from kerasrnn import config as config_lib
from kerasrnn.errors import UserError
from kerasrnn.training import distribute
from kerasrnn.training import evaluation
from kerasrnn.training import train

TIMEOUT = 300  # Seconds for one distributed run (they take 15-60 here).

# Two logical CPU devices, then kerasrnn-train with the remaining arguments.
TWO_CPUS = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from kerasrnn.cli import train
sys.argv[0] = "kerasrnn-train"
train.run()
"""


def _train_args(data_dir, workdir, *overrides):
  return [f"--config={ROOT}/configs/smoke.py:sentence",
          f"--config.data.dir={data_dir}", f"--workdir={workdir}",
          *overrides]


def _free_ports(n):
  sockets = [socket.socket() for _ in range(n)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def _start_worker(index, ports, args, log):
  cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
  env = dict(os.environ, TF_CONFIG=json.dumps(
      {"cluster": cluster, "task": {"type": "worker", "index": index}}))
  return subprocess.Popen(
      [sys.executable, "-m", "kerasrnn.cli.train", *args,
       "--config.train.distribute=multi_worker"],
      env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


def _run_workers(args, tmp_path, name):
  """Runs two workers to the end; returns their return codes and logs."""
  ports = _free_ports(2)
  logs = [open(tmp_path / f"{name}{i}.log", "w+") for i in range(2)]
  workers = [_start_worker(i, ports, args, logs[i]) for i in range(2)]
  try:
    codes = [w.wait(timeout=TIMEOUT) for w in workers]
  finally:
    for w in workers:
      w.kill()
  texts = []
  for log in logs:
    log.seek(0)
    texts.append(log.read())
    log.close()
  return codes, texts


def _weights(workdir):
  values = {}
  with h5py.File(os.path.join(workdir, "checkpoints/best.weights.h5")) as f:
    f.visititems(lambda name, obj: values.__setitem__(name, obj[()])
                 if isinstance(obj, h5py.Dataset) else None)
  return values


def _results(workdir):
  with open(os.path.join(workdir, "results.json"), encoding="utf-8") as f:
    return json.load(f)


@pytest.fixture(scope="module")
def one_device(ptb_dir, tmp_path_factory):
  """The smoke sentence config trained on one device (the reference)."""
  workdir = str(tmp_path_factory.mktemp("one_device"))
  train.train_and_evaluate(smoke_config(ptb_dir, "sentence"), workdir)
  return workdir


def _assert_trains_like_one_device(workdir, one_device):
  reference, weights = _weights(one_device), _weights(workdir)
  assert sorted(weights) == sorted(reference)
  for name, value in reference.items():
    # Measured: at most 8.3e-7 apart after the 2 epochs (48 SGD steps at
    # lr 1 with clipping); other summation orders, nothing else.
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


def test_mirrored_trains_like_one_device(ptb_dir, tmp_path, one_device):
  workdir = str(tmp_path / "mirrored")
  run = subprocess.run(
      [sys.executable, "-c", TWO_CPUS,
       *_train_args(ptb_dir, workdir, "--config.train.distribute=mirrored")],
      capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT)
  assert run.returncode == 0, run.stderr[-3000:]
  assert "num_devices = 2" in run.stderr  # Really 2 replicas.
  _assert_trains_like_one_device(workdir, one_device)


def test_multi_worker_trains_like_one_device(ptb_dir, tmp_path, one_device):
  workdir = str(tmp_path / "multi_worker")
  codes, logs = _run_workers(_train_args(ptb_dir, workdir), tmp_path, "w")
  assert codes == [0, 0], logs[0][-3000:] + logs[1][-3000:]
  assert all("group_size = 2" in log for log in logs)  # Really 2 workers.
  # The chief wrote the run; the other worker's own directory is gone.
  assert sorted(os.listdir(workdir)) == [
      "checkpoints", "config.json", "history.csv", "results.json",
      "tensorboard", "vocab.txt"]
  _assert_trains_like_one_device(workdir, one_device)


def test_multi_worker_run_resumes_after_a_worker_is_killed(ptb_dir, tmp_path):
  workdir = str(tmp_path / "killed")
  args = _train_args(ptb_dir, workdir, "--config.train.epochs=4")
  ports = _free_ports(2)
  with open(tmp_path / "first0.log", "w+") as log0, \
       open(tmp_path / "first1.log", "w+") as log1:
    chief = _start_worker(0, ports, args, log0)
    other = _start_worker(1, ports, args, log1)
    try:
      metadata = os.path.join(workdir, "backup/training_metadata.json")
      deadline = time.time() + TIMEOUT
      while not os.path.exists(metadata) and time.time() < deadline:
        time.sleep(0.1)
      assert os.path.exists(metadata), "no epoch finished in time"
      other.send_signal(signal.SIGKILL)
      other.wait(timeout=30)
      code = chief.wait(timeout=120)  # Heartbeats notice within seconds.
    finally:
      chief.kill()
      other.kill()
    log0.seek(0)
    chief_log = log0.read()
  assert code == 2, chief_log[-3000:]
  last_line = chief_log.strip().splitlines()[-1]
  assert last_line.startswith("error: multi-worker training lost "
                              "/job:worker/replica:0/task:1; restart every "
                              "worker"), last_line
  assert not os.path.exists(os.path.join(workdir, "results.json"))
  with open(os.path.join(workdir, "history.csv"), encoding="utf-8") as f:
    before = f.read().splitlines()
  done = len(before) - 1
  assert 1 <= done < 4

  codes, logs = _run_workers(args, tmp_path, "again")
  assert codes == [0, 0], logs[0][-3000:] + logs[1][-3000:]
  for log in logs:
    assert "resuming after epoch" in log
  with open(os.path.join(workdir, "history.csv"), encoding="utf-8") as f:
    after = f.read().splitlines()
  # Epochs 1..4 once each; those done before the kill were not redone.
  assert [row.split(",")[0] for row in after[1:]] == ["1", "2", "3", "4"]
  assert after[:len(before)] == before
  assert _results(workdir)["epochs"] == 4
  assert not os.path.exists(os.path.join(workdir, "workers"))


@pytest.mark.parametrize("overrides,message", [
    ({"train.distribute": "mirrored"}, "needs data.mode=sentence"),
    ({"train.distribute": "multi_worker", "data.mode": "sentence",
      "train.jit_compile": True}, "jit_compile=True is not supported"),
])
def test_unsupported_layouts_are_refused(overrides, message):
  with pytest.raises(UserError, match=message):
    config_lib.validate(smoke_config("", overrides=overrides))


def test_multi_worker_needs_tf_config(monkeypatch):
  monkeypatch.delenv("TF_CONFIG", raising=False)
  with pytest.raises(UserError, match="needs the TF_CONFIG environment"):
    distribute.make_strategy("multi_worker")
  monkeypatch.setenv("TF_CONFIG", "{cluster: ")
  with pytest.raises(UserError, match="TF_CONFIG is not valid JSON"):
    distribute.make_strategy("multi_worker")
