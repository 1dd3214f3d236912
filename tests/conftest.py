"""Shared fixtures: tiny corpora written by the tests, PTB when available."""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # configs/ are loaded as files, kerasrnn as a package.

TINY = {
    "train": ["the cat sat on the mat", "the dog sat", "a cat saw the dog",
              "the mat is red", "a dog is on the mat"],
    "valid": ["the cat is red", "a dog sat on a mat"],
    "test": ["the dog saw a cat", "the red mat"],
}


def write_corpus(directory, splits, pattern="ptb.{}.txt"):
  os.makedirs(directory, exist_ok=True)
  for name, lines in splits.items():
    with open(os.path.join(directory, pattern.format(name)), "w",
              encoding="utf-8") as f:
      f.write("".join(f" {line} \n" for line in lines))
  return str(directory)


@pytest.fixture
def tiny_dir(tmp_path):
  """A PTB-format corpus of a few sentences."""
  return write_corpus(tmp_path / "tiny", TINY)


@pytest.fixture(scope="session")
def ptb_dir():
  d = os.environ.get("KERASRNN_DATA_DIR")
  if not d or not os.path.exists(os.path.join(d, "ptb.train.txt")):
    pytest.skip("KERASRNN_DATA_DIR does not point at the PTB files")
  return d


def smoke_config(data_dir, variant=None, overrides=None):
  """configs/smoke.py on `data_dir`, with dotted-field overrides."""
  from configs import smoke  # pylint: disable=g-import-not-at-top
  from kerasrnn import config as config_lib  # pylint: disable=g-import-not-at-top
  config = smoke.get_config(variant)
  config.data.dir = data_dir
  return config_lib.override(config, overrides or {})
