"""TFDS's own builder tests for the PTB builder, on its dummy data (offline)."""
import tensorflow_datasets as tfds

from kerasrnn.data.ptb_tfds import ptb_text as ptb_tfds


class PtbTextTest(tfds.testing.DatasetBuilderTestCase):
  DATASET_CLASS = ptb_tfds.PtbText
  SPLITS = {"train": 3, "validation": 2, "test": 1}
  DL_EXTRACT_RESULT = DL_DOWNLOAD_RESULT = {
      "train": "ptb.train.txt", "validation": "ptb.valid.txt",
      "test": "ptb.test.txt"}


def test_checksums_match_the_download_module():
  infos = ptb_tfds.PtbText.url_infos
  for name, sha in ptb_tfds.download.PTB_SHA256.items():
    assert infos[ptb_tfds.download.PTB_URL + name].checksum == sha
