"""Atomic writes, one-line write errors, and damaged files met with one line."""
import errno
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from kerasrnn import files


# Sets a file size limit (writes past it fail with EFBIG, as on a full disk),
# then writes `target`: as text, or as Keras weights of ~100 KB.
_WRITE_PAST_THE_LIMIT = """
import resource, sys
import keras
from kerasrnn import files
from kerasrnn.errors import UserError
target, write = sys.argv[1:]
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3_000)])
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
try:
  if write == "text":
    files.write_text(target, "x" * 30_000)
  else:
    files.save_weights(model, target)
except UserError as e:
  print(e)
"""


def _model():
  model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3_000)])
  model.compile(optimizer="adam", loss="mse")
  return model


def test_a_failed_write_leaves_the_previous_version_and_no_temporary(
    tmp_path):
  target = str(tmp_path / "results.json")
  files.write_json(target, {"epochs": 1})
  with pytest.raises(RuntimeError):
    with files.atomic_path(target) as tmp:
      with open(tmp, "w", encoding="utf-8") as f:
        f.write('{"epo')
      raise RuntimeError("killed mid-write")
  assert files.read_json(target, "") == {"epochs": 1}
  assert os.listdir(tmp_path) == ["results.json"]


@pytest.mark.parametrize("write", ["text", "weights"])
def test_a_write_past_the_space_left_is_one_line_and_changes_nothing(
    tmp_path, write):
  target = str(tmp_path / "best.weights.h5")
  small = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
  small.save_weights(target)
  before = open(target, "rb").read()
  out = subprocess.run([sys.executable, "-c", _WRITE_PAST_THE_LIMIT, target,
                        write], capture_output=True, text=True, check=True,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  message = out.stdout
  assert message.startswith(f"cannot write {target} (File too large); free "
                            "space on its disk")
  assert message.count("\n") == 1 and "previous version is intact" in message
  assert open(target, "rb").read() == before
  assert os.listdir(tmp_path) == ["best.weights.h5"]


@pytest.mark.parametrize("content,reason", [
    (b"", "empty"),
    (b"\xff\xfe{}", "not UTF-8 text at byte 0"),
    (b'{"epochs": 3, "best', "not JSON: Unterminated string"),
    (b"[1, 2]", "a JSON list, not an object"),
])
def test_damaged_json_is_one_line_naming_file_and_fix(tmp_path, content,
                                                      reason):
  target = tmp_path / "results.json"
  target.write_bytes(content)
  with pytest.raises(files.DamagedFile) as error:
    files.read_json(str(target), "run the same command again")
  assert str(error.value).startswith(f"{target} is damaged ({reason}")
  assert str(error.value).endswith("; run the same command again")


def test_truncated_weights_are_a_damaged_file(tmp_path):
  target = str(tmp_path / "best.weights.h5")
  saved = _model()
  saved.set_weights([np.ones_like(w) for w in saved.get_weights()])
  saved.save_weights(target)
  os.truncate(target, os.path.getsize(target) // 2)
  loading = _model()
  before = loading.get_weights()
  with pytest.raises(files.DamagedFile, match=(
      r"best.weights.h5 is damaged \(.*truncated file.*\); export again")):
    files.load_weights(loading, target, "export again")
  # The loading model keeps its own weights: nothing of the damaged file.
  for got, want in zip(loading.get_weights(), before, strict=True):
    np.testing.assert_array_equal(got, want)


def test_leftovers_of_dead_writers_are_removed_not_those_of_live_ones(
    tmp_path):
  live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
  dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                        capture_output=True, text=True, check=True)
  try:
    for pid in (live.pid, int(dead.stdout)):
      os.makedirs(tmp_path / f"{files.TMP_PREFIX}{pid}-3")
    (tmp_path / "2").mkdir()
    files.remove_leftovers(str(tmp_path), keep_live=True)
    assert sorted(os.listdir(tmp_path)) == [f"{files.TMP_PREFIX}{live.pid}-3",
                                            "2"]
    files.remove_leftovers(str(tmp_path))
    assert os.listdir(tmp_path) == ["2"]
  finally:
    live.kill()
    live.wait()


def test_a_failed_first_write_does_not_claim_a_previous_version(tmp_path):
  target = str(tmp_path / "new.json")
  with pytest.raises(files.UserError) as error:
    with files.atomic_path(target):
      raise OSError(errno.EIO, os.strerror(errno.EIO))
  assert str(error.value) == (
      f"cannot write {target} (Input/output error); fix that and run the same "
      "command again: nothing was written")
  assert os.listdir(tmp_path) == []
