"""The token store: a corpus prepared once, then read through memory maps.

  <store>/manifest.json    format, settings, id type, counts, fingerprint,
                           each file's SHA-256 (`verify` checks them)
  <store>/vocab.txt        the vocabulary (line number = id)
  <store>/<split>.ids      the split's token ids, <eos> after each sentence
                           (uint16 when the vocabulary fits, else uint32)
  <store>/<split>.offsets  <int64>[sentences + 1]: where each sentence starts
  <store>/<split>.words    <uint32>[sentences]: each line's whitespace words
                           + 1 (its end), the per-word perplexity's count
  <store>/sentencepiece.model  with data.tokenizer=sentencepiece: the model
                           (`kerasrnn.data.subword`), trained here or copied

`prepare` reads each split's text once, streaming: it tokenises a block of
lines at a time with the very functions the export runs in its graph
(`kerasrnn.data.text`, on every core through tf.data), counts the training
words in a table bounded by the number of distinct words, and writes the
training ids under provisional numbers, renumbered once the vocabulary is
known. Its memory does not grow with the corpus; commands then read the ids
through `numpy.memmap`, whose pages the kernel can drop, so training's
memory does not grow with it either.

Every command gets its corpus from a store (`kerasrnn.data.corpus`):
`data.store` names one prepared with `kerasrnn-data --prepare=DIR`; without
it, a store is prepared on first use in the cache ($KERASRNN_CACHE/stores,
default ~/.cache/kerasrnn/stores), keyed by the settings and the files'
sizes and times, so today's commands work unchanged; one process prepares
a cached store while others wait for it.

The parts below: sources (text, gzip, TFDS), tokenising, writing and
renumbering, the manifest, reading, the cache.
"""
import contextlib
import fcntl
import glob
import gzip
import hashlib
import json
import os
import zlib

from absl import logging
import numpy as np
import tensorflow as tf

from kerasrnn import files
from kerasrnn.data import download
from kerasrnn.data import subword
from kerasrnn.data import text
from kerasrnn.data.vocabulary import Vocabulary
from kerasrnn.errors import UserError

FORMAT = 2  # 2: <split>.words and the sentencepiece model (kerasrnn 0.4).
READS = (1, 2)  # Format 1 stores have no word counts.
SPLITS = ("train", "valid", "test")
# The config fields that decide a store's content; the tfds_ ones only for
# data.source=tfds.
SETTINGS = ("source", "lowercase", "tokenizer", "max_vocab_size", "min_count",
            "max_tokens", "tfds_name", "tfds_splits", "tfds_text_key")
TFDS_SETTINGS = ("tfds_name", "tfds_splits", "tfds_text_key")
BLOCK_BYTES = 1 << 22  # Lines read and tokenised at a time.
FIX = ("prepare it again (kerasrnn-data --prepare=DIR), or delete it to "
       "have it prepared again on first use")


def cache_dir():
  return os.path.join(download.cache_dir(), "stores")


def settings(data):
  """The config fields that decide a store's content, as a dict (those
  that apply to its source and tokenizer). A given SentencePiece model is
  identified by its content's SHA-256, not its path."""
  out = {k: data[k] for k in SETTINGS
         if data.source == "tfds" or k not in TFDS_SETTINGS}
  if data.tokenizer == "sentencepiece":
    del out["min_count"]  # Every piece of the model is in the vocabulary.
    if data.sentencepiece_model:
      del out["max_vocab_size"]  # The model's.
      out["sentencepiece_model"] = subword.digest(
          subword.read_model(data.sentencepiece_model))
    else:
      out["sentencepiece_type"] = data.sentencepiece_type
      out["sentencepiece_lines"] = data.sentencepiece_lines
  return out


# --------------------------------------------------------------- sources --


def split_files(data):
  """{split: [paths]} of a text or PTB source: comma-separated names or
  globs inside data.dir (.gz files are read through gzip)."""
  if data.source == "ptb" and not data.dir:
    return {s: [p] for s, p in download.ptb_files().items()}
  defaults = {"ptb": "ptb.{}.txt", "text": "{}.txt"}[data.source]
  names = {s: data.get(f"{s}_file") or defaults.format(s) for s in SPLITS}
  if not data.dir:
    raise UserError("config data.dir is empty: set it to the folder holding "
                    "your train/valid/test text files")
  if not os.path.isdir(data.dir):
    raise UserError(f"data directory {data.dir} does not exist; set "
                    "--config.data.dir or KERASRNN_DATA_DIR to a folder with "
                    f"{', '.join(names.values())}")
  out = {}
  for split, value in names.items():
    out[split] = []
    for name in value.split(","):
      pattern = os.path.join(data.dir, name.strip())
      found = sorted(glob.glob(os.path.join(glob.escape(data.dir),
                                            name.strip())))
      if not found or not all(os.path.isfile(p) for p in found):
        raise UserError(f"corpus file {pattern} does not exist; check "
                        "data.dir and the split file names")
      out[split] += found
  return out


def _file_blocks(path):
  """Blocks of a file's lines (bytes); not UTF-8 is one line naming it."""
  opener = gzip.open if path.endswith(".gz") else open
  number = 0
  try:
    with opener(path, "rb") as f:
      while block := f.readlines(BLOCK_BYTES):
        try:
          b"".join(block).decode("utf-8")
        except UnicodeDecodeError:
          for i, line in enumerate(block, number + 1):
            try:
              line.decode("utf-8")
            except UnicodeDecodeError as e:
              raise UserError(
                  f"{path}:{i} is not valid UTF-8 ({e.reason} at byte "
                  f"{e.start}); re-encode the file as UTF-8") from None
        number += len(block)
        yield block
  # A .gz that is not gzip, is cut short or damaged inside.
  except (OSError, EOFError, zlib.error) as e:
    raise UserError(f"cannot read {path} ({files.reason(e)}); check that it "
                    "is a text file (or a gzip of one)") from None


def source_blocks(data):
  """{split: a function returning an iterator over blocks of byte lines}."""
  if data.source == "tfds":
    from kerasrnn.data import tfds_source  # pylint: disable=g-import-not-at-top
    return tfds_source.split_blocks(data, BLOCK_BYTES)
  paths = split_files(data)
  return {s: (lambda s=s: (b for p in paths[s] for b in _file_blocks(p)))
          for s in SPLITS}


def tfds_data_dir(data):
  """The absolute folder TFDS reads: data.tfds_data_dir, else TFDS's
  default ($TFDS_DATA_DIR or ~/tensorflow_datasets)."""
  directory = data.tfds_data_dir or os.environ.get(
      "TFDS_DATA_DIR", os.path.join("~", "tensorflow_datasets"))
  return os.path.abspath(os.path.expanduser(directory))


def source_key(data):
  """A digest of what decides a store: settings, and each file's identity
  (absolute path, size and modification time), or the TFDS folder."""
  key = {"format": FORMAT, **settings(data)}
  if data.source == "tfds":
    key["tfds_data_dir"] = tfds_data_dir(data)
  else:
    key["files"] = {s: [(os.path.abspath(p), os.path.getsize(p),
                         os.path.getmtime(p)) for p in ps]
                    for s, ps in split_files(data).items()}
  return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


# ------------------------------------------------------------ tokenising --


def _tokenised(blocks, data, pieces, per_block, cut):
  """Per block of lines: (*per_block(tokens), tokens per sentence, words
  per sentence), NumPy.

  The blocks are tokenised (`pieces`: the SentencePiece tokenizer, or
  None) and passed through `per_block` (a TensorFlow function of the
  block's tokens <string>[n] returning a tuple) by tf.data in parallel on
  every core; lines without tokens are dropped. With data.max_tokens the
  corpus ends after the whole sentence that reaches it (at least one): the
  last block's outputs are `cut(outputs, tokens kept)`.
  """

  def tokenize(lines):
    ragged = text.tokenize(lines, data.lowercase, data.tokenizer, pieces)
    lengths = ragged.row_lengths()
    kept = lengths > 0
    # Whitespace tokens are the words: not split a second time.
    words = (lengths if data.tokenizer == "whitespace"
             else text.count_words(lines))
    return (*per_block(ragged.flat_values), tf.boolean_mask(lengths, kept),
            tf.boolean_mask(words, kept))

  failed = []

  def guarded():  # An error inside tf.data would come out as a TF error.
    try:
      yield from blocks()
    except Exception as e:  # pylint: disable=broad-except
      failed.append(e)

  ds = tf.data.Dataset.from_generator(
      guarded, output_signature=tf.TensorSpec([None], tf.string))
  ds = ds.map(tokenize, num_parallel_calls=tf.data.AUTOTUNE,
              deterministic=True).prefetch(4)
  used = 0
  for *parts, lengths, words in ds.as_numpy_iterator():
    if data.max_tokens:
      keep = int(np.searchsorted(np.cumsum(lengths + 1),
                                 data.max_tokens - used, "right"))
      if keep < len(lengths):
        lengths = lengths[:max(keep, 0 if used else 1)]
        yield (*cut(parts, int(lengths.sum())), lengths,
               words[:len(lengths)])
        return
      used += int((lengths + 1).sum())
    yield (*parts, lengths, words)
  if failed:
    raise failed[0]


def _counted(blocks, data, pieces):
  """Per block: (distinct tokens, each token's index into them, tokens per
  sentence, words per sentence)."""
  return _tokenised(
      blocks, data, pieces,
      lambda words: tuple(tf.unique(words, out_idx=tf.int64)),
      lambda parts, n: (parts[0], parts[1][:n]))


def _encoded(blocks, data, pieces, table):
  """Per block: (ids, unknown, tokens per sentence, words per sentence):
  the tokens' ids in the vocabulary `table`; unknown -1 for a token not in
  it, 1 for the corpus's own <unk>, else 0."""

  def encode(words):
    ids = table.lookup(words)
    unknown = tf.where(tf.equal(words, text.UNK), tf.constant(1, tf.int8),
                       -tf.cast(tf.equal(ids, text.UNK_ID), tf.int8))
    # A literal <pad> in the text is a word like any other unknown one.
    unk = tf.constant(text.UNK_ID, tf.int64)
    return tf.where(tf.equal(ids, text.PAD_ID), unk, ids), unknown

  return _tokenised(blocks, data, pieces, encode,
                    lambda parts, n: (parts[0][:n], parts[1][:n]))


# ----------------------------------------------- writing and renumbering --


class _Writer:
  """Appends a split's ids, an <eos> after each sentence, its sentence
  offsets and words per sentence to its three files."""

  def __init__(self, directory, split, dtype):
    self.ids = open(os.path.join(directory, f"{split}.ids"), "wb")
    self.offsets = open(os.path.join(directory, f"{split}.offsets"), "wb")
    self.words = open(os.path.join(directory, f"{split}.words"), "wb")
    self.dtype = dtype
    self.tokens = self.num_words = 0
    np.zeros(1, "<i8").tofile(self.offsets)

  def add(self, ids, lengths, words):
    """ids: the block's tokens' ids in order; lengths: tokens per sentence;
    words: whitespace words per sentence."""
    (words + 1).astype("<u4").tofile(self.words)
    self.num_words += int(np.sum(words + 1))
    ends = np.cumsum(lengths + 1)
    out = np.full(len(ids) + len(lengths), text.EOS_ID, self.dtype)
    is_word = np.ones(len(out), bool)
    is_word[ends - 1] = False
    out[is_word] = ids
    out.tofile(self.ids)
    (self.tokens + ends).astype("<i8").tofile(self.offsets)
    self.tokens += int(ends[-1]) if len(ends) else 0

  def close(self):
    self.ids.close()
    self.offsets.close()
    self.words.close()

  def __enter__(self):
    return self

  def __exit__(self, *unused_exc_info):
    self.close()


def prepare(data, directory):
  """Prepares the store of the corpus `data` describes into `directory`.

  Args:
    data: the `config.data` ConfigDict.
    directory: the store's folder, new or empty (written to a temporary,
      then renamed into place).

  Returns:
    The store's manifest (a dict).
  """
  if os.path.exists(directory) and (not os.path.isdir(directory)
                                    or os.listdir(directory)):
    raise UserError(f"{directory} exists and is not an empty folder; prepare "
                    "the token store into a new one")
  blocks = source_blocks(data)
  parent, name = os.path.split(os.path.abspath(directory))
  files.remove_leftovers(parent, keep_live=True, name=name)  # Killed ones.
  with files.atomic_path(directory) as tmp:
    os.makedirs(tmp)
    model = _sentencepiece_model(data, blocks["train"])
    pieces = None
    if model is not None:
      with open(os.path.join(tmp, subword.MODEL_FILE), "wb") as f:
        f.write(model)
      pieces = subword.tokenizer(model)
    vocab, splits = _prepare_train(tmp, data, blocks["train"], pieces, model)
    dtype = _dtype(len(vocab))
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(vocab.words), tf.range(len(vocab), dtype=tf.int64)),
        default_value=text.UNK_ID)
    for split in ("valid", "test"):
      oov = corpus_unk = 0
      with _Writer(tmp, split, dtype) as writer:
        for ids, unknown, lengths, words in _encoded(blocks[split], data,
                                                     pieces, table):
          writer.add(ids, lengths, words)
          oov += int(np.sum(unknown == -1))
          corpus_unk += int(np.sum(unknown == 1))
      splits[split] = {"tokens": writer.tokens, "words": writer.num_words,
                       "oov_words": oov, "unk_words": corpus_unk}
    for split, counts in splits.items():
      if not counts["tokens"]:
        raise UserError(f"the {split} split has no text; check its file")
      counts["sentences"] = os.path.getsize(
          os.path.join(tmp, f"{split}.offsets")) // 8 - 1
    vocab.save(os.path.join(tmp, "vocab.txt"))
    manifest = {"format": FORMAT, "settings": settings(data),
                "dtype": np.dtype(dtype).name, "vocab_size": len(vocab),
                "splits": splits}
    manifest["fingerprint"] = fingerprint(
        vocab, _open_splits(tmp, manifest), model or b"")
    manifest["sha256"] = {name: _file_digest(os.path.join(tmp, name))
                          for name in sorted(os.listdir(tmp))}
    files.write_json(os.path.join(tmp, "manifest.json"), manifest)
  logging.info("prepared the token store %s: %s", directory,
               {s: c["tokens"] for s, c in splits.items()})
  return manifest


def _sentencepiece_model(data, blocks):
  """The SentencePiece model of a sentencepiece store (bytes): the given
  file, or one trained on the training split; None for word tokenizers."""
  if data.tokenizer != "sentencepiece":
    return None
  subword.require()
  if data.sentencepiece_model:
    return subword.read_model(data.sentencepiece_model)

  def lines():  # A block's lines: a file's (with their "\n") or TFDS's.
    for block in blocks():
      for line in block:
        line = " ".join(line.decode("utf-8").split())
        if line:
          yield line.lower() if data.lowercase else line

  logging.info("training a SentencePiece model of %d pieces on the training "
               "split", data.max_vocab_size)
  return subword.train(lines(), data)


def _dtype(vocab_size):
  return np.uint16 if vocab_size <= 1 << 16 else np.uint32


def _prepare_train(tmp, data, blocks, pieces, model):
  """Writes train.ids, train.offsets and train.words; returns (vocabulary,
  counts). With a SentencePiece `model` the vocabulary is every piece of
  it, the most frequent in training first."""
  # Provisional ids: the reserved ones, then tokens in order of appearance.
  provisional = {}
  counts = np.zeros(1 << 16, np.int64)
  reserved = len(text.RESERVED)
  with _Writer(tmp, "train.provisional", np.uint32) as writer:
    for distinct, index, lengths, words in _counted(blocks, data, pieces):
      ids = np.fromiter((provisional.setdefault(w, len(provisional) + reserved)
                         for w in distinct), np.int64, len(distinct))
      if len(provisional) > len(counts):  # One block may add many new words.
        counts = np.concatenate([counts, np.zeros(
            max(len(counts), len(provisional) - len(counts)), np.int64)])
      counts[ids - reserved] += np.bincount(index, minlength=len(distinct))
      writer.add(ids[index], lengths, words)
  if not writer.tokens:
    raise UserError("the train split has no text; check its file")
  words = [w.decode("utf-8") for w in provisional]
  seen = dict(zip(words, counts.tolist()))
  if model is None:
    vocab = Vocabulary.from_counts(seen, data.max_vocab_size, data.min_count)
  else:
    model_pieces = subword.pieces(model)
    vocab = Vocabulary.from_counts(
        {p: seen.get(p, 0) for p in model_pieces}, 0, 0)
  # Renumber: provisional id -> the vocabulary's id (<eos> stays <eos>).
  renumber = np.concatenate([[text.UNK_ID, text.UNK_ID, text.EOS_ID],
                             vocab.encode(words)]).astype(_dtype(len(vocab)))
  raw = os.path.join(tmp, "train.provisional.ids")
  with open(os.path.join(tmp, "train.ids"), "wb") as out:
    provisional_ids = np.memmap(raw, np.uint32, "r")
    for start in range(0, len(provisional_ids), 1 << 24):
      renumber[provisional_ids[start:start + (1 << 24)]].tofile(out)
    del provisional_ids
  os.remove(raw)
  for kind in ("offsets", "words"):
    os.replace(os.path.join(tmp, f"train.provisional.{kind}"),
               os.path.join(tmp, f"train.{kind}"))
  return vocab, {"train": {"tokens": writer.tokens,
                           "words": writer.num_words}}


# ---------------------------------------------------------- the manifest --


def fingerprint(vocab, splits, model=b""):
  """The SHA-256 of a corpus's content, as workdirs record it (data.json):
  the vocabulary, then each split's name, ids (as <i4) and sentence offsets
  (as <i8), splits in sorted order, then the SentencePiece model if any.

  Args:
    vocab: a `Vocabulary`.
    splits: {name: (ids, offsets, ...)} arrays or memory maps.
    model: the serialized SentencePiece model, or b"".
  """
  digest = hashlib.sha256("\n".join(vocab.words).encode("utf-8"))
  step = 1 << 24
  for name in sorted(splits):
    ids, offsets = splits[name][:2]
    digest.update(name.encode("utf-8"))
    for start in range(0, len(ids), step):
      digest.update(np.asarray(ids[start:start + step], "<i4").tobytes())
    for start in range(0, len(offsets), step):
      digest.update(np.asarray(offsets[start:start + step], "<i8").tobytes())
  digest.update(model)
  return digest.hexdigest()


def _file_digest(path):
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    while chunk := f.read(1 << 24):
      digest.update(chunk)
  return digest.hexdigest()


def _missing(manifest):
  """The first field a manifest lacks or has of the wrong type, or None."""
  for key, kind in (("settings", dict), ("dtype", str), ("vocab_size", int),
                    ("splits", dict), ("fingerprint", str)):
    if not isinstance(manifest.get(key), kind):
      return key
  if manifest["dtype"] not in ("uint16", "uint32"):
    return "dtype"
  for split in SPLITS:
    counts = manifest["splits"].get(split)
    if not isinstance(counts, dict):
      return f"splits.{split}"
    keys = ("tokens", "sentences") + (
        ("oov_words", "unk_words") if split != "train" else ()) + (
            ("words",) if manifest["format"] >= 2 else ())
    for key in keys:
      if not isinstance(counts.get(key), int):
        return f"splits.{split}.{key}"
  return None


def read_manifest(directory):
  """The manifest of the store in `directory`, checked: one line if there
  is none, it is damaged or of another format."""
  path = os.path.join(directory, "manifest.json")
  if not os.path.isfile(path):
    raise UserError(f"{directory} is not a token store (no manifest.json); "
                    "prepare it with kerasrnn-data --prepare=DIR")
  manifest = files.read_json(path, FIX)
  if manifest.get("format") not in READS:
    raise UserError(f"the token store {directory} has format "
                    f"{manifest.get('format')}, this kerasrnn reads "
                    f"{' and '.join(map(str, READS))}; {FIX}")
  missing = _missing(manifest)
  if missing:
    raise files.DamagedFile(path, f"no valid {missing}", FIX)
  return manifest


# --------------------------------------------------------------- reading --


def _open_splits(directory, manifest):
  """{split: (ids, offsets, words)} memory maps, checked against the
  manifest (words None in a format 1 store)."""
  out = {}
  dtype = np.dtype(manifest["dtype"])
  for split, counts in manifest["splits"].items():
    arrays = []
    files_of = [("ids", dtype, counts["tokens"]),
                ("offsets", np.dtype("<i8"), counts["sentences"] + 1)]
    if manifest["format"] >= 2:
      files_of.append(("words", np.dtype("<u4"), counts["sentences"]))
    for suffix, kind, length in files_of:
      p = os.path.join(directory, f"{split}.{suffix}")
      if not os.path.isfile(p):
        raise UserError(f"the token store {directory} has no {split}.{suffix}; "
                        f"{FIX}")
      size = os.path.getsize(p)
      if size != length * kind.itemsize:
        raise files.DamagedFile(p, f"{size:,} bytes, its manifest says "
                                f"{length * kind.itemsize:,}", FIX)
      arrays.append(np.memmap(p, kind, "r"))
    out[split] = tuple(arrays) + (None,) * (3 - len(arrays))
  return out


def open_store(directory, data):
  """Opens a prepared store for the corpus `data` describes.

  Returns:
    (manifest, vocabulary, {split: (ids, offsets, words) memory maps}).

  Raises:
    UserError: one line if the store is missing, damaged, or was prepared
      with other settings than `data`'s.
  """
  manifest = read_manifest(directory)
  ours = settings(data)
  theirs = manifest.get("settings", {})
  diff = [f"data.{k}={theirs.get(k)!r}, the config asks for {v!r}"
          for k, v in ours.items() if theirs.get(k) != v]
  if diff:
    raise UserError(f"the token store {directory} was prepared with "
                    f"{diff[0]}; prepare a store for these settings "
                    "(kerasrnn-data --prepare=NEWDIR) or set data.store='' "
                    "to use the cache")
  vocab = Vocabulary.load(os.path.join(directory, "vocab.txt"), FIX)
  if len(vocab) != manifest["vocab_size"]:
    raise files.DamagedFile(os.path.join(directory, "vocab.txt"),
                            f"{len(vocab)} words, its manifest says "
                            f"{manifest['vocab_size']}", FIX)
  return manifest, vocab, _open_splits(directory, manifest)


def verify(directory):
  """Reads every file of a store and checks it against its manifest.

  Returns:
    {"store", "files" checked, "tokens" per split} if the store is whole.

  Raises:
    UserError: one line naming the first file that is missing, of the
      wrong size, or whose content changed since it was prepared.
  """
  manifest = read_manifest(directory)
  arrays = _open_splits(directory, manifest)
  digests = manifest.get("sha256")
  if digests:  # Stores prepared with per-file digests.
    for name, digest in digests.items():
      path = os.path.join(directory, name)
      if not os.path.isfile(path):
        raise UserError(f"the token store {directory} has no {name}; {FIX}")
      if _file_digest(path) != digest:
        raise files.DamagedFile(path, "its content changed since it was "
                                "prepared (SHA-256)", FIX)
  else:
    vocab = Vocabulary.load(os.path.join(directory, "vocab.txt"), FIX)
    if fingerprint(vocab, arrays) != manifest["fingerprint"]:
      raise files.DamagedFile(
          directory, "its content changed since it was prepared (the "
          "fingerprint differs; this store has no per-file digests to name "
          "the file)", FIX)
  return {"store": directory, "files": sorted(digests or os.listdir(
      directory)), "tokens": {s: c["tokens"] for s, c in
                              manifest["splits"].items()}}


# ------------------------------------------------------------- the cache --


def store_dir(data):
  """The store of `data`: data.store, or its folder in the cache."""
  return data.store or os.path.join(cache_dir(), source_key(data)[:32])


def ensure(data):
  """The directory of `data`'s store, prepared first in the cache if it is
  not yet (data.store must name a prepared one).

  Preparations of one cached store are serialised by a lock: a second
  process waits for the first and then uses its store; a preparation that
  was killed leaves nothing that outlives the next one.
  """
  directory = store_dir(data)
  manifest = os.path.join(directory, "manifest.json")
  if data.store:
    if not os.path.isfile(manifest):
      raise UserError(
          f"data.store={data.store} is not a token store (no manifest.json); "
          f"prepare it with kerasrnn-data --prepare={data.store}, or set "
          "data.store='' to prepare the corpus in the cache")
    return directory
  if not os.path.isfile(manifest):
    with _locked(directory + ".lock"):
      if not os.path.isfile(manifest):  # Not prepared while we waited.
        files.remove_leftovers(cache_dir(), keep_live=True)
        prepare(data, directory)
  return directory


@contextlib.contextmanager
def _locked(path):
  """Holds an exclusive OS lock (flock) on the file `path` in the block;
  waits, saying so once, while another process holds it."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "a") as f:
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      logging.info("waiting for another process preparing the token store "
                   "%s", path[:-len(".lock")])
      fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)
