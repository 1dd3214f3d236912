"""Files kerasrnn writes and reads back: atomic writes, one-line errors.

Every file or directory kerasrnn writes goes through `atomic_path`: it is
written under a temporary name beside its target and renamed over it when
complete, so a process killed at any moment leaves the previous version or
the new one, never half of one. A write that fails (a full disk, a file size
limit, a read-only folder) ends in one `UserError` line that names the file
and says the previous version is intact.

A file that cannot be read back (empty, truncated, not UTF-8, not JSON, not
HDF5) raises `DamagedFile`, which names the file, what is wrong and what to
do about it.
"""
import contextlib
import errno
import glob
import json
import os
import re
import resource
import shutil
import zipfile

import numpy as np

from kerasrnn.errors import UserError

TMP_PREFIX = ".tmp-"
_NO_SPACE = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


class DamagedFile(UserError):
  """A file kerasrnn wrote earlier that cannot be read back.

  Attributes:
    path: the file.
    problem: "<path> is damaged (<reason>)", the message without the fix,
      for callers that recover and log what they recovered from.
  """

  def __init__(self, path, reason, fix):
    self.path = path
    self.problem = f"{path} is damaged ({reason})"
    super().__init__(f"{self.problem}; {fix}" if fix else self.problem)


def _errno(error):
  """The errno of an OSError, also when h5py only names it in its message."""
  if getattr(error, "errno", None):
    return error.errno
  found = re.search(r"errno = (\d+)", str(error))
  return int(found.group(1)) if found else None


def reason(error):
  """A short, one-line description of an I/O or parsing error."""
  if isinstance(error, UnicodeDecodeError):
    return f"not UTF-8 text at byte {error.start}"
  if isinstance(error, json.JSONDecodeError):
    return f"not JSON: {error.msg} at line {error.lineno}"
  if isinstance(error, OSError) and _errno(error):
    return os.strerror(_errno(error))
  return " ".join(str(error).split())[:200] or type(error).__name__


def write_error(path, error):
  """The one-line `UserError` for a write of `path` that failed."""
  if _errno(error) in _NO_SPACE:
    fix = "free space on its disk (or raise the file size limit)"
  else:
    fix = "fix that"
  kept = ("the previous version is intact" if os.path.lexists(path) else
          "nothing was written")
  return UserError(f"cannot write {path} ({reason(error)}); {fix} and run the "
                   f"same command again: {kept}")


def _remove(path):
  if os.path.isdir(path) and not os.path.islink(path):
    shutil.rmtree(path, ignore_errors=True)
  elif os.path.lexists(path):
    os.remove(path)


@contextlib.contextmanager
def atomic_path(path):
  """Yields a temporary path to write `path` to (a file or a directory).

  When the block ends without an error, the temporary is renamed to `path`
  (replacing a file; a directory must not exist yet). Otherwise it is
  removed and `path` is left as it was; an `OSError` becomes one line.
  The temporary keeps `path`'s name after a prefix, so writers that check
  the suffix (Keras's `.weights.h5`) accept it.
  """
  directory, name = os.path.split(os.path.abspath(path))
  tmp = os.path.join(directory, f"{TMP_PREFIX}{os.getpid()}-{name}")
  try:
    os.makedirs(directory, exist_ok=True)
    _remove(tmp)
    yield tmp
    os.replace(tmp, path)
  except OSError as e:
    raise write_error(path, e) from None
  finally:
    _remove(tmp)


def write_text(path, text):
  """Writes `text` (UTF-8) to `path` atomically, synced to the disk."""
  with atomic_path(path) as tmp:
    with open(tmp, "w", encoding="utf-8") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())


def copy_file(source, path):
  """Copies the file `source` to `path` atomically, synced to the disk."""
  with atomic_path(path) as tmp:
    shutil.copyfile(source, tmp)
    with open(tmp, "rb") as f:
      os.fsync(f.fileno())


def write_json(path, value):
  write_text(path, json.dumps(value, indent=2) + "\n")


def write_arrays(path, arrays):
  """Writes {name: array} to `path` (.npz) atomically, synced to the disk."""
  with atomic_path(path) as tmp:
    with open(tmp, "wb") as f:
      np.savez(f, **arrays)
      f.flush()
      os.fsync(f.fileno())


def read_arrays(path, fix):
  """{name: array} of an .npz file; an unreadable one is `DamagedFile`."""
  try:
    with np.load(path, allow_pickle=False) as npz:
      return {name: npz[name] for name in npz.files}
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
    raise DamagedFile(path, reason(e), fix) from None


def remove_leftovers(directory, keep_live=False, name=None):
  """Removes the temporaries that killed writers left in `directory`.

  Args:
    directory: where to look.
    keep_live: keep those of processes still running (writers that may
      share the directory without a lock, like two exports).
    name: only the temporaries of this target (a file or folder name).
  """
  for leftover in glob.glob(os.path.join(glob.escape(directory),
                                         TMP_PREFIX + "*")):
    pid, _, target = os.path.basename(leftover)[len(TMP_PREFIX):].partition(
        "-")
    if name is not None and target != name:
      continue
    if not (keep_live and pid.isdigit() and _running(int(pid))):
      _remove(leftover)


def _running(pid):
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # Another user's process: running.
    pass
  return True


def read_text(path, fix):
  """The text of a UTF-8 file; an empty or undecodable one is `DamagedFile`.

  Args:
    path: the file (it must exist).
    fix: what the user should do if it is damaged (part of the message).
  """
  try:
    with open(path, "rb") as f:
      text = f.read().decode("utf-8")
  except (OSError, UnicodeDecodeError) as e:
    raise DamagedFile(path, reason(e), fix) from None
  if not text.strip():
    raise DamagedFile(path, "empty", fix)
  return text


def read_json(path, fix):
  """The JSON object in `path`; anything else is `DamagedFile`."""
  text = read_text(path, fix)
  try:
    value = json.loads(text)
  except json.JSONDecodeError as e:
    raise DamagedFile(path, reason(e), fix) from None
  if not isinstance(value, dict):
    raise DamagedFile(path, f"a JSON {type(value).__name__}, not an object",
                      fix)
  return value


def save_weights(model, path):
  """`model.save_weights(path)` (with the optimizer's variables), atomically.

  h5py crashes the process when a write fails midway, so a file that
  cannot fit (the disk's free space, the file size limit) is refused in
  one line before it is written.
  """
  variables = list(model.weights)
  if getattr(model, "optimizer", None) is not None:
    variables += list(model.optimizer.variables)
  size = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize
             for v in variables) + 2_048 * len(variables) + 65_536
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
  if limit != resource.RLIM_INFINITY and size > limit:
    raise write_error(path, OSError(errno.EFBIG, os.strerror(errno.EFBIG)))
  if size > shutil.disk_usage(directory).free:
    raise write_error(path, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
  with atomic_path(path) as tmp:
    model.save_weights(tmp)


def load_weights(model, path, fix):
  """`model.load_weights(path)`; an unreadable file is `DamagedFile`."""
  try:
    model.load_weights(path)
  except (OSError, KeyError, ValueError) as e:
    raise DamagedFile(path, reason(e), fix) from None
