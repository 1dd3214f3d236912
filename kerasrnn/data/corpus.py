"""A corpus's train/valid/test splits as token ids, from its token store.

A split is a list of sentences; each sentence is its words followed by <eos>,
so a split's token count is words + sentences (PTB: 929,589 / 73,760 /
82,430). Ids come from a vocabulary built on the training split only. The
ids are memory maps of the corpus's token store (`kerasrnn.data.store`),
prepared on first use: no command holds the corpus in memory.
"""
import dataclasses
import os

from absl import logging
import numpy as np

from kerasrnn.data import store
from kerasrnn.data import subword
from kerasrnn.errors import UserError
from kerasrnn.data.vocabulary import Vocabulary

SPLITS = store.SPLITS
OOV_WARNING_RATE = 0.2  # A held-out split above this is likely a wrong file.


@dataclasses.dataclass
class Split:
  """Token ids of one split: `ids` [tokens] (uint16, uint32 or int32),
  `row_splits` <int64>[sentences + 1], where each sentence starts, and
  `words` [sentences]: each sentence's whitespace words + 1 (None for a
  store of kerasrnn before 0.4)."""
  ids: np.ndarray
  row_splits: np.ndarray
  words: np.ndarray = None

  @property
  def num_words(self):
    """Words + sentences (the per-word perplexity's count), or None."""
    if self.words is None:
      return None
    return int(np.sum(self.words, dtype=np.int64))

  @property
  def num_tokens(self):
    return len(self.ids)

  @property
  def num_sentences(self):
    return len(self.row_splits) - 1

  @property
  def lengths(self):
    """<int32>[sentences]: tokens per sentence."""
    return np.diff(self.row_splits).astype(np.int32)

  def head(self, tokens):
    """The split's first sentences, up to `tokens` tokens (at least one)."""
    count = max(1, int(np.searchsorted(self.row_splits, tokens, "right")) - 1)
    count = min(count, self.num_sentences)
    return Split(self.ids[:self.row_splits[count]],
                 self.row_splits[:count + 1],
                 None if self.words is None else self.words[:count])


@dataclasses.dataclass
class Corpus:
  vocab: Vocabulary
  splits: dict  # name -> Split
  fingerprint: str = ""  # `store.fingerprint` of the vocabulary and splits.
  sentencepiece_model: str = ""  # Its file in the store, if the tokens are pieces.
  # Held-out splits: the share of their words (not counting the corpus's own
  # <unk>s) that the vocabulary lacks (<unk> in the ids).
  oov_rates: dict = dataclasses.field(default_factory=dict)


def load_corpus(data, vocab=None):
  """The corpus described by `data`, from its token store.

  Args:
    data: the `config.data` ConfigDict.
    vocab: the `Vocabulary` a trained model expects; the data's own must
      equal it (one line if not).

  Returns:
    A `Corpus`. Held-out splits with a high out-of-vocabulary rate are logged
    as a warning (usually a wrong file or a different tokenisation).
  """
  directory = store.ensure(data)
  manifest, own, arrays = store.open_store(directory, data)
  if vocab is not None and vocab != own:
    raise UserError(
        f"the data in {data.store or data.dir or 'the PTB download'} give "
        f"another vocabulary ({len(own)} words) than the run's vocab.txt "
        f"({len(vocab)} words); point data.dir at the run's data")
  rates = {}
  for name in ("valid", "test"):
    counts = manifest["splits"][name]
    # Of the tokens, not counting the corpus's own <unk>s.
    words = counts["tokens"] - counts["sentences"] - counts["unk_words"]
    rate = rates[name] = counts["oov_words"] / max(words, 1)
    if rate > OOV_WARNING_RATE:
      logging.warning("%s split: %.0f%% of its words are not in the "
                      "vocabulary; is it the right file and tokenisation?",
                      name, 100 * rate)
  model = os.path.join(directory, subword.MODEL_FILE)
  return Corpus(own, {s: Split(*arrays[s]) for s in SPLITS},
                manifest["fingerprint"],
                model if data.tokenizer == "sentencepiece" else "", rates)
