"""Text preprocessing, defined once in TensorFlow ops.

The corpus reader runs these functions eagerly on a file's lines; the exported
SavedModel runs the very same functions inside its graph on request strings,
so training and serving always tokenise alike.
"""
import tensorflow as tf

PAD = "<pad>"  # id 0, reserved for padding and masking.
UNK = "<unk>"
EOS = "<eos>"
RESERVED = (PAD, UNK, EOS)
PAD_ID, UNK_ID, EOS_ID = 0, 1, 2

# Punctuation becomes its own token; '<' and '>' are kept inside words so the
# corpus markers <unk> and <eos> survive, and so are apostrophes and hyphens
# inside words ("don't", "state-of-the-art").
_PUNCTUATION = r"([^\w\s<>'\-])"


def tokenize(lines, lowercase=False, tokenizer="whitespace", pieces=None):
  """Splits lines of text into tokens.

  Args:
    lines: <string>[n] UTF-8 lines (a tensor, or a list of Python strings).
    lowercase: lowercase each line first (Unicode-aware).
    tokenizer: 'whitespace' splits on whitespace only (PTB is pre-tokenised);
      'punctuation' also splits off punctuation marks; 'sentencepiece'
      cuts lines into the pieces of a SentencePiece model.
    pieces: for 'sentencepiece', the model's TensorFlow Text tokenizer
      (`kerasrnn.data.subword.tokenizer`).

  Returns:
    <string>[n, (tokens)] ragged tensor of tokens, without <eos>.
  """
  lines = tf.convert_to_tensor(lines, dtype=tf.string)
  if lowercase:
    lines = tf.strings.lower(lines, encoding="utf-8")
  if tokenizer == "sentencepiece":
    return pieces.tokenize(lines)
  if tokenizer == "punctuation":
    lines = tf.strings.regex_replace(lines, _PUNCTUATION, r" \1 ")
  return tf.strings.split(lines)


def count_words(lines):
  """<int64>[n] whitespace-separated words per line: the words a
  per-word perplexity divides by (plus one end of line per line), whatever
  the tokens are."""
  return tf.strings.split(
      tf.convert_to_tensor(lines, dtype=tf.string)).row_lengths()
