from kerasrnn.data import text


def test_whitespace_tokenizer_keeps_ptb_markers():
  tokens = text.tokenize([" the <unk> rose N % \n"]).to_list()
  assert tokens == [[b"the", b"<unk>", b"rose", b"N", b"%"]]


def test_punctuation_tokenizer_splits_marks_but_not_words():
  tokens = text.tokenize(["Hello, world! Don't stop state-of-the-art."],
                         lowercase=True, tokenizer="punctuation").to_list()
  assert tokens == [[b"hello", b",", b"world", b"!", b"don't", b"stop",
                     b"state-of-the-art", b"."]]


def test_lowercase_is_unicode_aware():
  assert text.tokenize(["ÉCOLE Ünïcode"], lowercase=True).to_list() == [
      ["école".encode(), "ünïcode".encode()]]


def test_blank_line_gives_no_tokens():
  assert text.tokenize(["   ", ""]).to_list() == [[], []]
