"""SentencePiece subword models: trained with the token store, run in TF.

With `data.tokenizer=sentencepiece` a corpus's tokens are SentencePiece
pieces rather than words. The model is a file (`data.sentencepiece_model`)
or is trained on the training split when the store is prepared (the
`sentencepiece` package's trainer, byte fallback on, so that no text is
ever <unk>). Lines are cut into pieces by TensorFlow Text's
`SentencepieceTokenizer`, in the store's preparation and in the exported
graph alike (`kerasrnn.data.text.tokenize`), and the pieces, as strings, go
through the same vocabulary as words do: <pad>, <unk>, <eos>, then every
piece of the model, the most frequent in training first. The corpus's own
literal `<unk>` (PTB's) is one piece of its own, kerasrnn's <unk>.

Both packages come with the extra: pip install "kerasrnn[subword]".
"""
import hashlib
import io
import os

from kerasrnn.data import text
from kerasrnn.errors import UserError

MODEL_FILE = "sentencepiece.model"  # In a store and in a workdir.
_INSTALL = 'pip install "kerasrnn[subword]"'


def _sentencepiece():
  try:
    import sentencepiece  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise UserError("data.tokenizer=sentencepiece needs the sentencepiece "
                    f"package: {_INSTALL}") from None
  return sentencepiece


def _tensorflow_text():
  try:
    import tensorflow_text  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise UserError("data.tokenizer=sentencepiece needs TensorFlow Text "
                    "(its version matched to TensorFlow's): "
                    f"{_INSTALL}") from None
  return tensorflow_text


def require():
  """One line naming the extra if either package is missing."""
  _sentencepiece()
  _tensorflow_text()


def read_model(path):
  """The serialized model in `path`: one line if it is missing or is no
  SentencePiece model."""
  if not os.path.isfile(path):
    raise UserError(f"SentencePiece model {path} does not exist; set "
                    "data.sentencepiece_model to a .model file, or to '' to "
                    "train one on the training split")
  with open(path, "rb") as f:
    model = f.read()
  try:
    _processor(model)
  except (RuntimeError, OSError) as e:  # sentencepiece's parse errors.
    raise UserError(f"{path} is not a SentencePiece model ({e}); pass the "
                    ".model file spm_train wrote") from None
  return model


def digest(model):
  return hashlib.sha256(model).hexdigest()


def _processor(model):
  return _sentencepiece().SentencePieceProcessor(model_proto=model)


def train(lines, data):
  """Trains a model on the training split's `lines` (an iterator of str).

  Args:
    lines: the training split's lines, lowercased if data.lowercase.
    data: the `config.data` ConfigDict: max_vocab_size pieces (with <pad>,
      <eos> and kerasrnn's <unk>), sentencepiece_type, sentencepiece_lines
      (a sample of that many lines, 0 = all).

  Returns:
    The serialized model (bytes).
  """
  spm = _sentencepiece()
  model = io.BytesIO()
  try:
    spm.SentencePieceTrainer.train(
        sentence_iterator=lines, model_writer=model,
        vocab_size=data.max_vocab_size, model_type=data.sentencepiece_type,
        # kerasrnn's ids: 0 <pad>, 1 unknown (never produced: bytes fall
        # back), 2 <eos>; the corpus's <unk> is a piece of its own.
        pad_id=text.PAD_ID, pad_piece=text.PAD, unk_id=text.UNK_ID,
        unk_piece="<unknown>", eos_id=text.EOS_ID, eos_piece=text.EOS,
        bos_id=-1, user_defined_symbols=[text.UNK], byte_fallback=True,
        character_coverage=1.0, input_sentence_size=data.sentencepiece_lines,
        shuffle_input_sentence=True,
        num_threads=os.cpu_count() or 1, minloglevel=2)
  except RuntimeError as e:  # E.g. more pieces asked than the text has.
    raise UserError(f"SentencePiece could not train a model of "
                    f"data.max_vocab_size={data.max_vocab_size} pieces on the "
                    f"training split ({str(e).splitlines()[-1]}); change "
                    "data.max_vocab_size") from None
  return model.getvalue()


def pieces(model):
  """The model's pieces that are tokens (not its control symbols or its
  unknown piece), in the model's id order."""
  sp = _processor(model)
  return [sp.id_to_piece(i) for i in range(sp.get_piece_size())
          if not (sp.is_control(i) or sp.is_unknown(i))]


def tokenizer(model):
  """TensorFlow Text's tokenizer of `model` (pieces as strings)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return _tensorflow_text().SentencepieceTokenizer(model=model,
                                                   out_type=tf.string)


def model_ids(model, words):
  """<int32>[vocab]: each vocabulary word's id in `model` (for
  detokenising); <pad>, <eos> and words not in it -> its unknown id."""
  sp = _processor(model)
  unknown = sp.unk_id()
  return [sp.piece_to_id(w) if w not in (text.PAD, text.EOS) else unknown
          for w in words]
