"""The vocabulary: built from the training split only, saved as vocab.txt."""
import collections
import os

import numpy as np

from kerasrnn import files
from kerasrnn.data import text
from kerasrnn.errors import UserError


class Vocabulary:
  """Maps words to ids: 0 = <pad>, 1 = <unk>, 2 = <eos>, then by frequency.

  Args:
    words: the id-ordered tokens, starting with `text.RESERVED`.
  """

  def __init__(self, words):
    words = list(words)
    if tuple(words[:3]) != text.RESERVED:
      raise UserError(f"a vocabulary must start with {', '.join(text.RESERVED)}")
    if len(set(words)) != len(words):
      raise UserError("a vocabulary must not repeat a word")
    self.words = words
    self._ids = {w: i for i, w in enumerate(words)}

  @classmethod
  def build(cls, sentences, max_size=0, min_count=1):
    """Builds a vocabulary from tokenised training sentences.

    Args:
      sentences: iterable of token lists (without <eos>).
      max_size: keep at most this many ids besides <pad> (0 = no limit).
      min_count: drop words seen fewer times.
    """
    return cls.from_counts(collections.Counter(w for s in sentences for w in s),
                           max_size, min_count)

  @classmethod
  def from_counts(cls, counts, max_size=0, min_count=1):
    """Builds a vocabulary from {word: count} of the training split.

    Returns:
      A `Vocabulary` of the words seen at least `min_count` times, the
      `max_size` - 2 most frequent (0 = all); ties in frequency are broken
      alphabetically, so the same corpus always gives the same ids.
    """
    counts = {w: n for w, n in counts.items() if w not in text.RESERVED}
    ranked = sorted((w for w, n in counts.items() if n >= min_count),
                    key=lambda w: (-counts[w], w))
    if max_size:
      ranked = ranked[:max_size - 2]
    return cls(list(text.RESERVED) + ranked)

  @classmethod
  def load(cls, path, fix="write it again with kerasrnn"):
    """Reads a vocab.txt; a missing, cut or corrupt one is one line.

    Args:
      path: the file, one word per line (line number = id).
      fix: what to do if the file is damaged (part of the message).
    """
    if not os.path.isfile(path):
      raise UserError(f"vocabulary file {path} does not exist; {fix}")
    words = files.read_text(path, fix).split("\n")
    if words[-1]:
      raise files.DamagedFile(path, "its last line is cut short", fix)
    try:
      return cls(words[:-1])
    except UserError as e:
      raise files.DamagedFile(path, str(e), fix) from None

  def save(self, path):
    """Writes one word per line (line number = id), atomically."""
    files.write_text(path, "".join(w + "\n" for w in self.words))

  def __len__(self):
    return len(self.words)

  def __contains__(self, word):
    return self._ids.get(word, text.PAD_ID) != text.PAD_ID

  def __eq__(self, other):
    return isinstance(other, Vocabulary) and self.words == other.words

  def encode(self, tokens):
    """Token list -> int32 ids; unknown words (and a literal <pad>) -> <unk>."""
    ids = [self._ids.get(w, text.UNK_ID) for w in tokens]
    return np.array([i if i else text.UNK_ID for i in ids], np.int32)

  def decode(self, ids):
    return [self.words[i] for i in ids]
