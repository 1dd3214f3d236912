"""Data-parallel training on `tf.distribute` (config `train.distribute`).

- none: TensorFlow's default strategy (one device).
- mirrored: `MirroredStrategy` over this machine's GPUs (or, without GPUs,
  its logical CPU devices: one unless configured otherwise).
- multi_worker: `MultiWorkerMirroredStrategy` across the machines that
  `TF_CONFIG` names; every worker runs the same command.

Keras's `fit` runs the steps; the model's own steps keep them exact
(`kerasrnn.models.replicas`). This module makes the strategy, finds this
worker's role and shards the input: in sentence mode every worker reads the
whole pipeline and keeps its part of each batch (`shard_by_data`); in
stream mode each replica always gets the same rows of the batch, whose
recurrent state it keeps (replica-local variables,
`kerasrnn.models.recurrent`), and a worker with one replica reads only its
own rows (`stream_dataset`).
"""
import contextlib
import json
import os
import re
import socket

import tensorflow as tf

from kerasrnn import compat
from kerasrnn.data import pipelines
from kerasrnn.errors import UserError
from kerasrnn.models.replicas import is_multi_worker


def make_strategy(name):
  """The `tf.distribute.Strategy` that `train.distribute=name` asks for.

  Creates collective ops, so call it before any other TensorFlow op.
  """
  if name == "none":
    return tf.distribute.get_strategy()
  if name == "mirrored":
    devices = (tf.config.list_logical_devices("GPU") or
               tf.config.list_logical_devices("CPU"))
    return tf.distribute.MirroredStrategy([d.name for d in devices])
  config = os.environ.get("TF_CONFIG")
  if not config:
    raise UserError("train.distribute=multi_worker needs the TF_CONFIG "
                    "environment variable (cluster and task of this worker; "
                    "see README, 'Training on several GPUs or machines')")
  try:
    json.loads(config)
  except ValueError as e:
    raise UserError(f"TF_CONFIG is not valid JSON ({e}); see README, "
                    "'Training on several GPUs or machines'") from e
  return tf.distribute.MultiWorkerMirroredStrategy()


def split_cpu(n):
  """Makes the CPU appear as `n` logical devices (before TensorFlow starts)."""
  cpu = tf.config.list_physical_devices("CPU")[0]
  try:
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * n)
  except RuntimeError as e:
    raise UserError(f"cannot split the CPU into {n} devices once TensorFlow "
                    f"has started ({e})") from e


def local_cluster(num_workers):
  """TF_CONFIG values of `num_workers` workers on this machine (free ports).

  For trying multi-worker training on one machine (tests, benchmarks): run
  one `kerasrnn-train` per value, each with its own TF_CONFIG.
  """
  sockets = [socket.socket() for _ in range(num_workers)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  cluster = {"worker": [f"127.0.0.1:{s.getsockname()[1]}" for s in sockets]}
  for s in sockets:
    s.close()
  return [json.dumps({"cluster": cluster,
                      "task": {"type": "worker", "index": i}})
          for i in range(num_workers)]


def task(strategy):
  """(is_chief, task id) of this process; (True, 0) on one machine.

  The chief is the `chief` task, or worker 0 of a cluster without one (as
  in TensorFlow's multi-worker guide).
  """
  if not is_multi_worker(strategy):
    return True, 0
  resolver = strategy.cluster_resolver
  chief = resolver.task_type == "chief" or (
      resolver.task_type == "worker" and resolver.task_id == 0 and
      "chief" not in resolver.cluster_spec().as_dict())
  return chief, resolver.task_id


def _gather(strategy, values):
  """Every worker's int `values` (same length): <int64>[workers, len]."""
  gathered = strategy.run(lambda v: tf.distribute.get_replica_context(
  ).all_gather(v[None], axis=0), args=(tf.constant(values, tf.int64),))
  return strategy.experimental_local_results(gathered)[0].numpy()


def common_step(strategy, steps):
  """The newest step whose resume state every worker holds (0: none).

  A worker lost between its own save and another's leaves the workers with
  different newest states; all resume from the last one they share.

  Args:
    strategy: the run's strategy (every worker calls this at the same point).
    steps: this worker's resume-state steps (`workdir.state_steps`).
  """
  if not is_multi_worker(strategy):
    return max(steps, default=0)
  width = 8  # Two states are kept; room for more.
  mine = ([0] * width + sorted(steps))[-width:]
  rows = _gather(strategy, mine)
  shared = set.intersection(*(set(row.tolist()) for row in rows)) - {0}
  return max(shared, default=0)


def check_same_step(strategy, step):
  """A one-line error unless every worker resumes after the same step
  (possible only if a shared state was damaged on one of them)."""
  if not is_multi_worker(strategy):
    return
  steps = sorted({int(e) for e in _gather(strategy, [step])[:, 0]})
  if len(steps) > 1:
    raise UserError(
        f"the workers' resume states hold different steps ({steps}), one "
        "of them damaged; delete every worker's backup/ (the chief's in the "
        "workdir, the others' in workdir/workers/N) to train again from "
        "step 0")


@contextlib.contextmanager
def lost_workers_reported(strategy):
  """Turns a multi-worker run's lost peer into one line saying how to resume.

  When a worker dies, the others' collective ops fail (TensorFlow's
  heartbeats notice within seconds); the cluster is then restarted as a
  whole and every worker resumes from the last step all of them saved a
  resume state of (`common_step`).
  """
  try:
    yield
  except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError) as e:
    if not is_multi_worker(strategy):
      raise
    # The unhealthy tasks, not devices (".../task:0/device:CPU:0").
    lost = sorted(set(re.findall(r"/job:\w+/replica:\d+/task:\d+(?![\d/])",
                                 str(e))))
    raise UserError(
        f"multi-worker training lost {', '.join(lost) or 'a worker'}; restart "
        "every worker with the same command: they resume from the last "
        "resume state all of them saved") from e


def shard_by_data(dataset):
  """Lets multi-worker input split each global batch between the workers.

  The pipelines slice tensors in memory (no files to shard by), so the
  policy is DATA: every worker runs the whole pipeline, in the same order
  (same seed), and keeps its part of each batch.
  """
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = (
      tf.data.experimental.AutoShardPolicy.DATA)
  return dataset.with_options(options)


def replica_batch_size(strategy, batch_size):
  """Rows per replica of a batch; a one-line error unless the replicas
  split it evenly."""
  n = strategy.num_replicas_in_sync
  if batch_size % n:
    raise UserError(f"config data.batch_size={batch_size} must be a multiple "
                    f"of the {n} replicas of train.distribute (each replica "
                    "keeps the state of its own rows)")
  return batch_size // n


def stream_dataset(strategy, data, corpus, split, start=0, stop=None):
  """A stream-mode split for `strategy`: replica i gets rows [i b, (i + 1) b)
  of every batch (b = batch_size / replicas), always; the batches of global
  steps [start, stop) (default: one pass, `pipelines.Layout`).

  tf.distribute splits each whole batch in order among the replicas, so on
  one machine (`mirrored`) the dataset is the one-device one. A worker of a
  multi-worker run with one replica reads only its own rows
  (`distribute_datasets_from_function`); with several replicas per worker,
  or Keras before 3.9 (whose `fit` takes only whole-batch datasets), every
  worker reads the whole batches and keeps its part (`shard_by_data`).
  """
  rows = replica_batch_size(strategy, data.batch_size)
  whole = pipelines.Layout(data, corpus, split).dataset(start, stop)
  if not is_multi_worker(strategy):
    return whole
  if (len(strategy.extended.worker_devices) > 1
      or not compat.fit_takes_datasets_from_function()):
    return shard_by_data(whole)
  return strategy.distribute_datasets_from_function(
      lambda context: pipelines.Layout(
          data, corpus, split, rows=(context.input_pipeline_id * rows, rows)
      ).dataset(start, stop))
