import os

import pytest

from conftest import sentences_of
from conftest import TINY
from conftest import smoke_config
from conftest import write_corpus
from kerasrnn.data import corpus as corpus_lib
from kerasrnn.data import download
from kerasrnn.data import text
from kerasrnn.errors import UserError


def test_tiny_corpus_counts_words_plus_eos(tiny_dir):
  corpus = corpus_lib.load_corpus(smoke_config(tiny_dir).data)
  for name, lines in TINY.items():
    split = corpus.splits[name]
    assert split.num_sentences == len(lines)
    assert split.num_tokens == sum(len(l.split()) + 1 for l in lines)
    assert all(s[-1] == text.EOS_ID for s in sentences_of(split))


def test_vocabulary_comes_from_train_only(tiny_dir, tmp_path):
  splits = dict(TINY, valid=["zebra zebra zebra"])
  d = write_corpus(tmp_path / "c", splits)
  corpus = corpus_lib.load_corpus(smoke_config(d).data)
  assert "zebra" not in corpus.vocab
  assert list(corpus.splits["valid"].ids) == [text.UNK_ID] * 3 + [text.EOS_ID]


def test_user_text_with_lowercase_and_punctuation(tmp_path):
  d = write_corpus(tmp_path / "own", {s: ["Hello, World!", "hello again."]
                                      for s in ("train", "valid", "test")},
                   pattern="{}.txt")
  config = smoke_config(d, overrides={
      "data.source": "text", "data.lowercase": True,
      "data.tokenizer": "punctuation", "data.max_tokens": 0})
  corpus = corpus_lib.load_corpus(config.data)
  assert corpus.vocab.words[3:] == ["hello", "!", ",", ".", "again", "world"]
  assert corpus.splits["train"].num_tokens == 5 + 4


def test_max_tokens_keeps_whole_leading_sentences(tiny_dir):
  config = smoke_config(tiny_dir, overrides={"data.max_tokens": 12})
  split = corpus_lib.load_corpus(config.data).splits["train"]
  assert split.num_tokens == 7 + 4  # Two sentences; the third would pass 12.


def test_missing_directory_names_the_fix(tmp_path):
  config = smoke_config(str(tmp_path / "absent"))
  with pytest.raises(UserError, match="KERASRNN_DATA_DIR"):
    corpus_lib.load_corpus(config.data)


def test_missing_file_is_named(tiny_dir):
  os.remove(os.path.join(tiny_dir, "ptb.test.txt"))
  with pytest.raises(UserError, match="ptb.test.txt does not exist"):
    corpus_lib.load_corpus(smoke_config(tiny_dir).data)


def test_empty_split_is_refused(tmp_path):
  d = write_corpus(tmp_path / "c", dict(TINY, valid=[]))
  with pytest.raises(UserError, match="valid split has no text"):
    corpus_lib.load_corpus(smoke_config(d).data)


def test_non_utf8_line_is_named(tiny_dir):
  with open(os.path.join(tiny_dir, "ptb.train.txt"), "ab") as f:
    f.write(b" caf\xe9 au lait \n")
  with pytest.raises(UserError, match=r"ptb.train.txt:6 is not valid UTF-8"):
    corpus_lib.load_corpus(smoke_config(tiny_dir).data)


def test_mostly_unknown_test_split_warns(tmp_path, monkeypatch):
  d = write_corpus(tmp_path / "c", dict(TINY, test=["qq rr ss tt the"]))
  logged = []
  monkeypatch.setattr(corpus_lib.logging, "warning",
                      lambda msg, *args: logged.append(msg % args))
  corpus_lib.load_corpus(smoke_config(d).data)
  assert len(logged) == 1 and logged[0].startswith("test split: 80%")


def test_offline_download_says_how_to_use_a_local_copy(tmp_path, monkeypatch):
  monkeypatch.setenv("KERASRNN_CACHE", str(tmp_path))
  monkeypatch.setattr(download, "PTB_URL", "http://127.0.0.1:9/")
  with pytest.raises(UserError, match="--config.data.dir=DIR"):
    download.ptb_files()


def test_cached_download_is_verified_and_reused(tmp_path, monkeypatch, ptb_dir):
  cache = tmp_path / "ptb"
  cache.mkdir()
  for name in download.PTB_SHA256:
    (cache / name).write_bytes(open(os.path.join(ptb_dir, name), "rb").read())
  monkeypatch.setenv("KERASRNN_CACHE", str(tmp_path))
  monkeypatch.setattr(download, "PTB_URL", "http://127.0.0.1:9/")
  files = download.ptb_files()  # No network needed: the copies verify.
  assert files["train"] == str(cache / "ptb.train.txt")


def test_ptb_sizes_match_mikolovs_split(ptb_dir):
  config = smoke_config(ptb_dir, overrides={"data.max_tokens": 0})
  corpus = corpus_lib.load_corpus(config.data)
  assert len(corpus.vocab) == 10_000 + 1
  sizes = {n: s.num_tokens for n, s in corpus.splits.items()}
  assert sizes == {"train": 929_589, "valid": 73_760, "test": 82_430}
  for name in download.PTB_SHA256:
    assert download.sha256(os.path.join(ptb_dir, name)) == download.PTB_SHA256[name]


def test_tfds_source_reads_the_same_corpus(tiny_dir, tmp_path):
  """kerasrnn's PTB builder, prepared offline from a manual directory."""
  plain = corpus_lib.load_corpus(smoke_config(tiny_dir).data)
  config = smoke_config(tiny_dir, overrides={
      "data.source": "tfds", "data.tfds_name": "ptb_text",
      "data.tfds_data_dir": str(tmp_path / "tfds")})
  via_tfds = corpus_lib.load_corpus(config.data)
  assert via_tfds.vocab == plain.vocab
  for name in corpus_lib.SPLITS:
    assert list(via_tfds.splits[name].ids) == list(plain.splits[name].ids)


def test_unknown_tfds_dataset_is_one_clear_error(tiny_dir, tmp_path):
  config = smoke_config(tiny_dir, overrides={
      "data.source": "tfds", "data.tfds_name": "no_such_corpus",
      "data.tfds_data_dir": str(tmp_path / "tfds")})
  with pytest.raises(UserError, match="cannot load TFDS dataset"):
    corpus_lib.load_corpus(config.data)


def test_a_wrong_tfds_text_key_is_one_line(tiny_dir, tmp_path):
  config = smoke_config(tiny_dir, overrides={
      "data.source": "tfds", "data.tfds_name": "ptb_text",
      "data.tfds_text_key": "body",
      "data.tfds_data_dir": str(tmp_path / "tfds")})
  with pytest.raises(UserError, match="TFDS dataset 'ptb_text' has no feature "
                     "data.tfds_text_key='body'; its features: text"):
    corpus_lib.load_corpus(config.data)
