"""Reads a corpus's train/valid/test splits into token ids.

A split is a list of sentences; each sentence is its words followed by <eos>,
so a split's token count is words + sentences (PTB: 929,589 / 73,760 /
82,430). Ids come from a vocabulary built on the training split only.
"""
import dataclasses
import os

from absl import logging
import numpy as np

from kerasrnn.data import download
from kerasrnn.data import text
from kerasrnn.data.vocabulary import Vocabulary
from kerasrnn.errors import UserError

SPLITS = ("train", "valid", "test")
OOV_WARNING_RATE = 0.2  # A held-out split above this is likely a wrong file.


@dataclasses.dataclass
class Split:
  """Token ids of one split: `ids` <int32>[tokens], `row_splits` <int64>[n+1]."""
  ids: np.ndarray
  row_splits: np.ndarray

  @property
  def num_tokens(self):
    return len(self.ids)

  @property
  def num_sentences(self):
    return len(self.row_splits) - 1

  @property
  def lengths(self):
    return np.diff(self.row_splits)

  def sentences(self):
    return np.split(self.ids, self.row_splits[1:-1])


@dataclasses.dataclass
class Corpus:
  vocab: Vocabulary
  splits: dict  # name -> Split


def read_lines(path):
  """Returns the lines of a UTF-8 file; errors name the file and bad line."""
  if not os.path.isfile(path):
    raise UserError(f"corpus file {path} does not exist; check data.dir and "
                    "the split file names")
  lines = []
  with open(path, "rb") as f:
    for number, raw in enumerate(f, 1):
      try:
        lines.append(raw.decode("utf-8"))
      except UnicodeDecodeError as e:
        raise UserError(f"{path}:{number} is not valid UTF-8 ({e.reason} at "
                        f"byte {e.start}); re-encode the file as UTF-8") from None
  return lines


def _split_files(data):
  defaults = {"ptb": "ptb.{}.txt", "text": "{}.txt"}[data.source]
  names = {s: data.get(f"{s}_file") or defaults.format(s) for s in SPLITS}
  if data.source == "ptb" and not data.dir:
    return download.ptb_files()
  if not data.dir:
    raise UserError("config data.dir is empty: set it to the folder holding "
                    "your train/valid/test text files")
  if not os.path.isdir(data.dir):
    raise UserError(f"data directory {data.dir} does not exist; set "
                    "--config.data.dir or KERASRNN_DATA_DIR to a folder with "
                    f"{', '.join(names.values())}")
  return {s: os.path.join(data.dir, n) for s, n in names.items()}


def _import_tfds():
  """tensorflow_datasets with kerasrnn's ptb_text builder registered."""
  # pylint: disable=g-import-not-at-top,unused-import
  try:
    import tensorflow_datasets.core  # TFDS hides this module's import errors.
    import tensorflow_datasets as tfds
    from kerasrnn.data import ptb_tfds
  except Exception as e:  # pylint: disable=broad-except
    raise UserError(
        f"tensorflow-datasets cannot be imported ({str(e).splitlines()[0]}); "
        "with tensorflow<2.20 install tensorflow-metadata<1.18 (README, "
        "'Supported versions')") from None
  return tfds


def _tfds_lines(data):
  """Lines of a TFDS text dataset; data.dir serves as its manual directory."""
  tfds = _import_tfds()
  names = data.tfds_splits.split(",")
  if len(names) != 3:
    raise UserError("config data.tfds_splits must name three TFDS splits "
                    "(train,valid,test), e.g. 'train,validation,test'")
  download_config = tfds.download.DownloadConfig(manual_dir=data.dir or None)
  try:
    splits = tfds.load(
        data.tfds_name, split=names, data_dir=data.tfds_data_dir or None,
        download_and_prepare_kwargs={"download_config": download_config})
  except Exception as e:  # pylint: disable=broad-except
    raise UserError(f"cannot load TFDS dataset {data.tfds_name!r} "
                    f"({str(e).splitlines()[0]}); offline, put its files in "
                    "--config.data.dir (TFDS's manual directory)") from None
  return {split: [ex[data.tfds_text_key].decode("utf-8")
                  for ex in tfds.as_numpy(ds)]
          for split, ds in zip(SPLITS, splits)}


def read_token_lists(data):
  """Returns {split: [[word, ...], ...]} for the configured source."""
  if data.source == "tfds":
    split_lines = _tfds_lines(data)
  else:
    split_lines = {s: read_lines(p) for s, p in _split_files(data).items()}
  out = {}
  for split, lines in split_lines.items():
    tokens = text.tokenize(lines, data.lowercase, data.tokenizer).to_list()
    sentences = [[w.decode("utf-8") for w in s] for s in tokens if s]
    if data.max_tokens:
      sentences = _first_tokens(sentences, data.max_tokens)
    if not sentences:
      raise UserError(f"the {split} split has no text; check its file")
    out[split] = sentences
  return out


def _first_tokens(sentences, max_tokens):
  """The leading sentences holding at most `max_tokens` tokens (with <eos>)."""
  lengths = np.cumsum([len(s) + 1 for s in sentences])
  return sentences[:max(1, int(np.searchsorted(lengths, max_tokens, "right")))]


def encode(sentences, vocab):
  """Token lists -> `Split` with <eos> appended to every sentence."""
  ids = [np.append(vocab.encode(s), np.int32(text.EOS_ID)) for s in sentences]
  row_splits = np.zeros(len(ids) + 1, np.int64)
  np.cumsum([len(s) for s in ids], out=row_splits[1:])
  return Split(np.concatenate(ids).astype(np.int32), row_splits)


def load_corpus(data, vocab=None):
  """Reads and encodes the three splits of the corpus described by `data`.

  Args:
    data: the `config.data` ConfigDict.
    vocab: a `Vocabulary` to use (a trained model's); None builds one from
      the training split with data.max_vocab_size / data.min_count.

  Returns:
    A `Corpus`. Held-out splits with a high out-of-vocabulary rate are logged
    as a warning (usually a wrong file or a different tokenisation).
  """
  token_lists = read_token_lists(data)
  if vocab is None:
    vocab = Vocabulary.build(token_lists["train"], data.max_vocab_size,
                             data.min_count)
  splits = {s: encode(sents, vocab) for s, sents in token_lists.items()}
  for name in ("valid", "test"):
    rate = oov_rate(token_lists[name], vocab)
    if rate > OOV_WARNING_RATE:
      logging.warning("%s split: %.0f%% of its words are not in the "
                      "vocabulary; is it the right file and tokenisation?",
                      name, 100 * rate)
  return Corpus(vocab, splits)


def oov_rate(sentences, vocab):
  """Fraction of words (excluding corpus <unk>s) missing from `vocab`."""
  words = [w for s in sentences for w in s if w != text.UNK]
  missing = sum(1 for w in words if w not in vocab)
  return missing / max(len(words), 1)
