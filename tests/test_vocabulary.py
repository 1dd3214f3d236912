import pytest

from kerasrnn.data import text
from kerasrnn.data.vocabulary import Vocabulary
from kerasrnn.errors import UserError


def test_ids_are_reserved_then_by_frequency_then_alphabetical():
  vocab = Vocabulary.build([["b", "a", "c", "c"], ["a", "<unk>", "d"]])
  assert vocab.words == ["<pad>", "<unk>", "<eos>", "a", "c", "b", "d"]


def test_max_size_and_min_count_map_rare_words_to_unk():
  sentences = [["a", "a", "a", "b", "b", "c"]]
  assert Vocabulary.build(sentences, max_size=4).words[3:] == ["a", "b"]
  vocab = Vocabulary.build(sentences, min_count=2)
  assert list(vocab.encode(["a", "c", "zzz"])) == [3, text.UNK_ID, text.UNK_ID]


def test_literal_pad_token_is_not_id_zero():
  vocab = Vocabulary.build([["a"]])
  assert list(vocab.encode(["<pad>", "a"])) == [text.UNK_ID, 3]


def test_save_and_load_round_trip(tmp_path):
  vocab = Vocabulary.build([["x", "y", "y"]])
  path = str(tmp_path / "vocab.txt")
  vocab.save(path)
  assert Vocabulary.load(path) == vocab
  assert open(path).read().splitlines()[:3] == list(text.RESERVED)


def test_load_missing_file_is_a_user_error(tmp_path):
  with pytest.raises(UserError, match="does not exist"):
    Vocabulary.load(str(tmp_path / "nope.txt"))
