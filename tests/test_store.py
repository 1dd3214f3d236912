"""The token store: prepared once, read through memory maps, the export's ids."""
import fcntl
import gzip
import json
import os
import threading
import time
import zlib

import numpy as np
import pytest
import tensorflow as tf

from conftest import error_line
from conftest import run_tool
from conftest import smoke_config
from conftest import write_corpus
from kerasrnn import compat
from kerasrnn import config as config_lib
from kerasrnn import files
from kerasrnn import workdir as wd
from kerasrnn.data import store
from kerasrnn.data import text
from kerasrnn.data.corpus import load_corpus
from kerasrnn.data.vocabulary import Vocabulary
from kerasrnn.errors import UserError
from kerasrnn.models import build_model
from kerasrnn.serving.module import LanguageModelModule

# Non-ASCII words, punctuation, capitals, a literal <unk> and <pad>, spaces.
LINES = ["Élan vital, ÉLAN!  naïve café-au-lait", "the cat's <unk> sat.",
         "Straße  STRASSE straße <pad>", "日本語 テキスト、です。", "the cat"]


def _data(directory, **overrides):
  config = smoke_config(directory, overrides={"data.max_tokens": 0,
                                              **overrides})
  return config.data


def _reference_ids(lines, data, vocab):
  """What the corpus reader computed before the store: tokenise eagerly,
  encode with the vocabulary, <eos> after each sentence."""
  tokens = text.tokenize(lines, data.lowercase, data.tokenizer).to_list()
  sentences = [[w.decode("utf-8") for w in s] for s in tokens if s]
  return np.concatenate([np.append(vocab.encode(s), text.EOS_ID)
                         for s in sentences])


@pytest.mark.parametrize("lowercase", [False, True])
@pytest.mark.parametrize("tokenizer", ["whitespace", "punctuation"])
def test_store_ids_are_the_readers_and_the_exports(tmp_path, lowercase,
                                                   tokenizer):
  d = write_corpus(tmp_path / "c", {"train": LINES[:3] * 2,
                                    "valid": LINES, "test": LINES[::-1]})
  data = _data(d, **{"data.lowercase": lowercase,
                     "data.tokenizer": tokenizer})
  corpus = load_corpus(data)
  train_tokens = text.tokenize(LINES[:3] * 2, lowercase, tokenizer)
  counts = {}
  for w in train_tokens.flat_values.numpy():
    counts[w.decode()] = counts.get(w.decode(), 0) + 1
  assert corpus.vocab == Vocabulary.from_counts(counts)
  for name, lines in (("valid", LINES), ("test", LINES[::-1])):
    np.testing.assert_array_equal(corpus.splits[name].ids,
                                  _reference_ids(lines, data, corpus.vocab))
  # The export's graph (its `tokenize` signature) gives the same ids.
  config = smoke_config(d, "sentence")  # As kerasrnn-export builds it.
  vocab_file = str(tmp_path / "vocab.txt")
  corpus.vocab.save(vocab_file)
  module = LanguageModelModule(build_model(config, len(corpus.vocab)),
                               vocab_file, corpus.vocab.words,
                               lowercase=lowercase, tokenizer=tokenizer)
  out = module.tokenize(tf.constant(LINES))
  exported = np.concatenate([row[:n] for row, n in zip(
      out["token_ids"].numpy(), out["num_tokens"].numpy())])
  np.testing.assert_array_equal(exported, corpus.splits["valid"].ids)
  if lowercase and tokenizer == "punctuation":  # Through a SavedModel too.
    tf.saved_model.save(module, str(tmp_path / "export"),
                        signatures=module.signatures())
    loaded = tf.saved_model.load(str(tmp_path / "export"))
    again = loaded.signatures["tokenize"](text=tf.constant(LINES))
    np.testing.assert_array_equal(again["token_ids"], out["token_ids"])


def test_ids_are_uint16_until_the_vocabulary_needs_uint32(tmp_path):
  for distinct, dtype in ((65_533, np.uint16), (65_534, np.uint32)):
    words = [f"w{i}" for i in range(distinct)]  # + 3 reserved ids.
    d = write_corpus(tmp_path / str(distinct), {
        "train": [" ".join(words[i:i + 1000]) for i in range(0, distinct,
                                                             1000)],
        "valid": [f"w{distinct - 1} w0 nope"], "test": ["w1"]})
    corpus = load_corpus(_data(d))
    assert len(corpus.vocab) == distinct + 3
    assert corpus.splits["train"].ids.dtype == dtype
    assert list(corpus.splits["valid"].ids) == [
        corpus.vocab.words.index(f"w{distinct - 1}"),
        corpus.vocab.words.index("w0"), text.UNK_ID, text.EOS_ID]


def test_one_block_may_bring_more_new_words_than_the_counts_held(tmp_path):
  # 140,000 new words in the first block: more than twice the 65,536 counts
  # the preparation starts with.
  words = [f"w{i}" for i in range(140_000)]
  d = write_corpus(tmp_path / "c", {
      "train": [" ".join(words[i:i + 1000]) for i in range(0, 140_000, 1000)],
      "valid": ["w139999 w0"], "test": ["w1"]})
  corpus = load_corpus(_data(d))
  assert len(corpus.vocab) == 140_003
  assert corpus.splits["train"].num_tokens == 140_000 + 140


def test_globs_lists_and_gzip_read_as_one_file(tmp_path, corpus_dir):
  whole = load_corpus(_data(corpus_dir))
  lines = open(os.path.join(corpus_dir, "ptb.train.txt"), "rb").readlines()
  parts = tmp_path / "parts"
  parts.mkdir()
  third = len(lines) // 3
  (parts / "train-00.txt").write_bytes(b"".join(lines[:third]))
  with gzip.open(parts / "train-01.txt.gz", "wb") as f:
    f.write(b"".join(lines[third:2 * third]))
  (parts / "more.txt").write_bytes(b"".join(lines[2 * third:]))
  for split in ("valid", "test"):
    (parts / f"{split}.txt").write_bytes(
        open(os.path.join(corpus_dir, f"ptb.{split}.txt"), "rb").read())
  split = load_corpus(_data(str(parts), **{
      "data.source": "text", "data.train_file": "train-*, more.txt"}))
  assert split.fingerprint == whole.fingerprint
  assert split.vocab == whole.vocab


def test_prepared_store_trains_without_the_text(tmp_path, tiny_dir):
  prepared = str(tmp_path / "store")
  result = run_tool("data", "--config=configs/smoke.py",
                    f"--config.data.dir={tiny_dir}", f"--prepare={prepared}")
  assert result.returncode == 0, result.stderr[-2000:]
  manifest = json.loads(result.stdout)
  assert manifest["splits"]["train"]["tokens"] == 29
  assert sorted(os.listdir(prepared)) == [
      "manifest.json", "test.ids", "test.offsets", "test.words", "train.ids",
      "train.offsets", "train.words", "valid.ids", "valid.offsets",
      "valid.words", "vocab.txt"]
  # The text is gone; the store is all a run needs.
  data = _data(str(tmp_path / "gone"), **{"data.store": prepared,
                                          "data.max_tokens": 5_000})
  corpus = load_corpus(data)
  assert corpus.fingerprint == manifest["fingerprint"]
  assert corpus.fingerprint == load_corpus(_data(tiny_dir, **{
      "data.max_tokens": 5_000})).fingerprint


def test_ptb_is_what_it_was_before_the_store(ptb_dir):
  corpus = load_corpus(_data(ptb_dir))
  # data.json's fingerprint of PTB as kerasrnn 0.1 (reading the text into
  # Python lists) computed it: old workdirs resume on the store's PTB.
  assert wd.data_fingerprint(corpus) == {
      "sha256": "dc321a83261e25c024f673066e952249eced28e34c4956e456a15a278408a149",
      "tokens": {"train": 929_589, "valid": 73_760, "test": 82_430},
      "vocab_size": 10_001, "sentence_layout": 2}
  # PTB's words per line + 1: its tokens, as PTB is tokenised by spaces.
  assert {s: corpus.splits[s].num_words for s in corpus.splits} == {
      "train": 929_589, "valid": 73_760, "test": 82_430}


def test_a_store_of_other_settings_is_one_line(tmp_path, tiny_dir):
  prepared = str(tmp_path / "store")
  store.prepare(_data(tiny_dir), prepared)
  with pytest.raises(UserError, match=(
      f"the token store {prepared} was prepared with data.lowercase=False, "
      r"the config asks for True; prepare a store for these settings")):
    load_corpus(_data(tiny_dir, **{"data.store": prepared,
                                   "data.lowercase": True}))


@pytest.mark.parametrize("damage,message", [
    (lambda p: os.truncate(os.path.join(p, "train.ids"), 10),
     r"train.ids is damaged \(10 bytes, its manifest says 58\); prepare it "
     "again"),
    (lambda p: os.remove(os.path.join(p, "valid.offsets")),
     r"has no valid.offsets; prepare it again"),
    (lambda p: open(os.path.join(p, "manifest.json"), "w").close(),
     r"manifest.json is damaged \(empty\)"),
])
def test_a_damaged_store_is_one_line(tmp_path, tiny_dir, damage, message):
  prepared = str(tmp_path / "store")
  store.prepare(_data(tiny_dir), prepared)
  damage(prepared)
  with pytest.raises(UserError, match=message):
    load_corpus(_data(tiny_dir, **{"data.store": prepared}))


@pytest.mark.parametrize("content,message", [
    (b"\x89PNG\r\n\x1a\n\x00\x00", r"train.txt:1 is not valid UTF-8"),
    (b"", "the train split has no text"),
])
def test_a_corpus_file_that_is_not_text_is_one_line(tmp_path, content,
                                                    message):
  d = write_corpus(tmp_path / "c", {"valid": ["a b"], "test": ["a"]},
                   pattern="{}.txt")
  (tmp_path / "c" / "train.txt").write_bytes(content)
  line = error_line(run_tool("data", "--config=configs/smoke.py",
                             "--config.data.source=text",
                             f"--config.data.dir={d}"))
  assert message in line
  assert all(  # Nothing half-prepared.
      os.path.exists(os.path.join(store.cache_dir(), s, "manifest.json"))
      for s in os.listdir(store.cache_dir()) if not s.endswith(".lock"))


def test_a_gzip_that_is_not_gzip_is_one_line(tmp_path):
  d = write_corpus(tmp_path / "c", {"valid": ["a b"], "test": ["a"]},
                   pattern="{}.txt")
  (tmp_path / "c" / "train.txt.gz").write_bytes(b"not gzip at all\n")
  config = smoke_config(d, overrides={"data.source": "text",
                                      "data.train_file": "train.txt.gz"})
  config_lib.validate(config)
  with pytest.raises(UserError, match=r"cannot read .*train.txt.gz \(Not a "
                     "gzipped file"):
    load_corpus(config.data)


def test_a_damaged_gzip_is_one_line(tmp_path):
  d = write_corpus(tmp_path / "c", {"valid": ["a b"], "test": ["a"]},
                   pattern="{}.txt")
  words = " ".join(f"w{i}" for i in range(5_000)).encode()
  packed = gzip.compress(words * 20)
  # A valid header, then a corrupt deflate stream.
  damaged = packed[:20] + bytes(b ^ 0x5A for b in packed[20:200]) + packed[200:]
  (tmp_path / "c" / "train.txt.gz").write_bytes(damaged)
  with pytest.raises(zlib.error):  # What the reader must catch.
    gzip.decompress(damaged)
  line = error_line(run_tool("data", "--config=configs/smoke.py",
                             "--config.data.source=text",
                             "--config.data.train_file=train.txt.gz",
                             f"--config.data.dir={d}"))
  assert "cannot read" in line and "train.txt.gz" in line, line


def test_a_missing_store_is_refused_not_prepared(tmp_path, tiny_dir):
  missing = str(tmp_path / "stores" / "mistyped")
  with pytest.raises(UserError, match=(
      f"data.store={missing} is not a token store \\(no manifest.json\\); "
      "prepare it with kerasrnn-data")):
    load_corpus(_data(tiny_dir, **{"data.store": missing}))
  assert not os.path.exists(missing)


def test_the_tfds_cache_key_does_not_depend_on_the_directory(
    tmp_path, monkeypatch, tiny_dir):
  data = _data(tiny_dir, **{"data.source": "tfds",
                            "data.tfds_name": "ptb_text"})
  monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
  keys = []
  for where in ("a", "b"):
    (tmp_path / where).mkdir()
    monkeypatch.chdir(tmp_path / where)
    keys.append(store.source_key(data))
  assert keys[0] == keys[1]
  assert store.tfds_data_dir(data) == os.path.expanduser(
      "~/tensorflow_datasets")


def test_settings_of_another_source_do_not_change_the_store(tmp_path,
                                                             tiny_dir):
  prepared = str(tmp_path / "store")
  store.prepare(_data(tiny_dir), prepared)
  other = _data(tiny_dir, **{"data.store": prepared,
                             "data.tfds_text_key": "body",
                             "data.tfds_name": "lm1b"})
  assert store.source_key(other) == store.source_key(_data(tiny_dir))
  assert load_corpus(other).splits["train"].num_tokens == 29


def test_a_data_dir_with_glob_characters_is_read(tmp_path):
  d = write_corpus(tmp_path / "ptb[v2]", {"train": ["a b", "c"],
                                          "valid": ["a"], "test": ["b"]})
  assert load_corpus(_data(d)).splits["train"].num_tokens == 5


def test_killed_preparations_leave_nothing_behind(tmp_path, tiny_dir):
  data = _data(tiny_dir)
  key = os.path.basename(store.store_dir(data))
  os.makedirs(store.cache_dir(), exist_ok=True)
  dead = 2 ** 22 + 12_345  # Above Linux's default pid_max: not running.
  leftovers = [os.path.join(store.cache_dir(), f"{files.TMP_PREFIX}{dead}-"
                            f"{name}") for name in (key, "other")]
  for leftover in leftovers:
    os.makedirs(leftover)
    open(os.path.join(leftover, "train.provisional.ids"), "wb").close()
  live = os.path.join(store.cache_dir(), f"{files.TMP_PREFIX}{os.getpid()}-x")
  os.makedirs(live)
  store.ensure(data)
  assert not any(os.path.exists(p) for p in leftovers)
  assert os.path.exists(live)  # A running process's (here: ours).
  os.rmdir(live)
  # The same for a store prepared by name.
  target = tmp_path / "named"
  leftover = tmp_path / f"{files.TMP_PREFIX}{dead}-named"
  leftover.mkdir()
  store.prepare(data, str(target))
  assert not leftover.exists() and (target / "manifest.json").exists()


def test_a_second_preparation_waits_and_uses_the_first(tmp_path):
  d = write_corpus(tmp_path / "c", {"train": ["a b", "c a"], "valid": ["a"],
                                    "test": ["b"]})
  data = _data(d)
  directory = store.store_dir(data)
  os.makedirs(store.cache_dir(), exist_ok=True)
  with open(directory + ".lock", "a") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)  # "Another process" is preparing.
    waiting = []
    thread = threading.Thread(
        target=lambda: waiting.append(store.ensure(data)))
    thread.start()
    time.sleep(1.0)
    assert thread.is_alive() and not waiting  # It waits ...
    store.prepare(data, directory)
    prepared = os.path.getmtime(os.path.join(directory, "manifest.json"))
    fcntl.flock(lock, fcntl.LOCK_UN)
  thread.join(60)
  assert waiting == [directory]  # ... then uses that store as it is.
  assert os.path.getmtime(os.path.join(directory, "manifest.json")) == prepared


@pytest.mark.parametrize("field,message", [
    ("fingerprint", r"no valid fingerprint"),
    ("splits.valid.oov_words", r"no valid splits.valid.oov_words"),
    ("dtype", r"no valid dtype"),
])
def test_a_manifest_missing_a_field_is_one_line(tmp_path, tiny_dir, field,
                                                message):
  prepared = str(tmp_path / "store")
  store.prepare(_data(tiny_dir), prepared)
  path = os.path.join(prepared, "manifest.json")
  manifest = json.load(open(path))
  *parents, last = field.split(".")
  inner = manifest
  for key in parents:
    inner = inner[key]
  del inner[last]
  json.dump(manifest, open(path, "w"))
  with pytest.raises(files.DamagedFile, match=message):
    load_corpus(_data(tiny_dir, **{"data.store": prepared}))


def test_a_keras_backup_without_its_epoch_is_one_line(tmp_path):
  (tmp_path / "latest.weights.h5").write_bytes(b"")
  (tmp_path / "training_metadata.json").write_text('{"batch": 3}')
  with pytest.raises(files.DamagedFile, match=r"its epoch is None"):
    compat.keras_backup_state(str(tmp_path))


def test_verify_names_a_file_changed_in_place(tmp_path, tiny_dir):
  prepared = str(tmp_path / "store")
  store.prepare(_data(tiny_dir), prepared)
  result = run_tool("data", f"--verify={prepared}")
  assert result.returncode == 0, result.stderr[-2000:]
  checked = json.loads(result.stdout)
  assert "train.ids" in checked["files"] and checked["tokens"]["train"] == 29
  path = os.path.join(prepared, "train.ids")
  size = os.path.getsize(path)
  with open(path, "r+b") as f:  # One id changed, the size kept.
    f.seek(6)
    byte = f.read(1)
    f.seek(6)
    f.write(bytes([byte[0] ^ 1]))
  assert os.path.getsize(path) == size
  line = error_line(run_tool("data", f"--verify={prepared}"))
  assert f"{path} is damaged (its content changed since it was prepared" in (
      line)


def test_a_failed_preparation_closes_its_files(tmp_path):
  d = write_corpus(tmp_path / "c", {"train": ["a b"] * 100, "test": ["a"]},
                   pattern="{}.txt")
  (tmp_path / "c" / "valid.txt").write_bytes(b"a b\n\xff\xfe\n")
  data = _data(d, **{"data.source": "text"})
  before = sorted(os.listdir("/proc/self/fd"))
  with pytest.raises(UserError, match="valid.txt:2 is not valid UTF-8"):
    store.prepare(data, str(tmp_path / "store"))
  assert len(os.listdir("/proc/self/fd")) <= len(before)
  assert os.listdir(tmp_path) == ["c"]  # Nothing half-prepared.
