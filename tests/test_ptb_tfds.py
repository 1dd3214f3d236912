"""TFDS's own builder tests for the PTB builder, on its dummy data (offline)."""
import tensorflow_datasets as tfds

from kerasrnn.data.ptb_tfds import ptb_text as ptb_tfds


class PtbTextTest(tfds.testing.DatasetBuilderTestCase):
  DATASET_CLASS = ptb_tfds.PtbText
  SPLITS = {"train": 3, "validation": 2, "test": 1}
  DL_EXTRACT_RESULT = DL_DOWNLOAD_RESULT = {
      "train": "ptb.train.txt", "validation": "ptb.valid.txt",
      "test": "ptb.test.txt"}


def test_the_download_reads_the_builders_checksums():
  # One copy of the hashes (checksums.tsv); the real files are checked
  # against them in test_corpus.py::test_ptb_sizes_match_mikolovs_split.
  assert sorted(ptb_tfds.download.PTB_SHA256) == [
      "ptb.test.txt", "ptb.train.txt", "ptb.valid.txt"]
