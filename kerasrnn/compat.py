"""Every use of Keras internals, behind one version check.

kerasrnn's fast path uses four things Keras does not export: its masked
time loop (`keras.src.backend.rnn`), the `inner_loop` and state-variable
hooks of its LSTM/GRU layers (`kerasrnn.models.recurrent`: replica-local
states in distributed stream mode), the tracking switch those states need,
and a data-free symbolic build under a distribution strategy
(`SymbolicBuildWithoutData`). They are used only on
the Keras versions CI tests (`TESTED_KERAS`, the range in setup.cfg). On any
other version, or with KERASRNN_KERAS_INTERNALS=0, kerasrnn logs one warning
and takes the public path: the stock `keras.layers.LSTM`/`GRU` (same weights,
same checkpoints, slower) and Keras's own build.

It also reads the resume state that Keras's `BackupAndRestore` wrote in
workdirs of kerasrnn 0.1 (`keras_backup_state`), a file layout of Keras's.
"""
import functools
import os

from absl import logging
import keras

from kerasrnn import files

# Oldest and newest Keras (major, minor) that CI tests; keep in step with
# setup.cfg and .ci/constraints-oldest.txt.
TESTED_KERAS = ((3, 8), (3, 15))
ENV_SWITCH = "KERASRNN_KERAS_INTERNALS"  # "0": always the public path.


def keras_version():
  return tuple(int(p) for p in keras.version().split(".")[:2])


@functools.lru_cache(maxsize=None)
def _warn_once(message):
  logging.warning(message)


def fit_takes_datasets_from_function():
  """Whether `fit` takes `strategy.distribute_datasets_from_function`'s
  datasets: Keras 3.9 and later (keras-team/keras#20829)."""
  return keras_version() >= (3, 9)


def internals_enabled():
  """Whether the fast path may use Keras internals on this installation."""
  if os.environ.get(ENV_SWITCH, "1") == "0":
    _warn_once(f"{ENV_SWITCH}=0: using the stock Keras layers and build "
               "(same results, slower)")
    return False
  low, high = TESTED_KERAS
  if not low <= keras_version() <= high:
    _warn_once(f"Keras {keras.version()} is outside the range kerasrnn is "
               f"tested with ({low[0]}.{low[1]} to {high[0]}.{high[1]}): "
               "using the stock Keras layers and build (same results, slower)")
    return False
  return True


def no_tracking(method):
  """Keras's decorator that keeps a method's attributes out of its layer
  tracking (as Keras's own recurrent state variables are). Looked up when
  the method runs, so that importing kerasrnn never needs Keras internals."""

  @functools.wraps(method)
  def wrapper(*args, **kwargs):
    from keras.src.utils import tracking  # pylint: disable=g-import-not-at-top
    return tracking.no_automatic_dependency_tracking(method)(*args, **kwargs)

  return wrapper


def rnn(*args, **kwargs):
  """Keras's masked time loop, the one `keras.layers.RNN` runs."""
  from keras.src import backend  # pylint: disable=g-import-not-at-top
  return backend.rnn(*args, **kwargs)


class SymbolicBuildWithoutData:
  """A `keras.Model` mixin: build without pulling a batch under a strategy.

  Under a distribution strategy, Keras 3's `fit` pulls one batch from a new
  iterator (one more pass over the input than on one device) and reduces it
  with a call that multi-worker strategies reject, only to build state that
  a functional model has from birth. With internals enabled, the rest (the
  optimizer's slots) is built without data.
  """

  def _maybe_symbolic_build(self, iterator=None, data_batch=None):
    if not internals_enabled() or self._distribute_strategy is None:
      return super()._maybe_symbolic_build(iterator, data_batch)
    with self.distribute_strategy.scope():
      self._symbolic_build(data_batch=None)
    return None


def keras_backup_state(directory):
  """[(epoch, weights file)] of a resume state that Keras's BackupAndRestore
  wrote in `directory` (kerasrnn 0.1 workdirs), so that they resume."""
  weights = os.path.join(directory, "latest.weights.h5")
  metadata = os.path.join(directory, "training_metadata.json")
  if not (os.path.exists(weights) and os.path.exists(metadata)):
    return []
  fix = f"delete {directory} to train again from epoch 1"
  epoch = files.read_json(metadata, fix).get("epoch")
  if not isinstance(epoch, int):
    raise files.DamagedFile(metadata, f"its epoch is {epoch!r}", fix)
  return [(epoch, weights)]
