"""Loading an exported model as any TensorFlow program would."""
import os

import tensorflow as tf

from kerasrnn import files
from kerasrnn.errors import UserError
from kerasrnn.serving.versions import versions


def resolve(path):
  """A SavedModel directory, or the newest <N>/ of a TF Serving model base."""
  if os.path.exists(os.path.join(path, "saved_model.pb")):
    return path
  found = versions(path)
  if not found:
    raise UserError(f"{path} is neither a SavedModel nor a folder of "
                    "versions <N>/; pass an export made by kerasrnn-export")
  return os.path.join(path, str(found[-1]))


def load(path):
  """Loads an export; a damaged one is one line naming an older version.

  A subword export (assets/sentencepiece.model) needs TensorFlow Text's
  ops: they are registered first, or one line names the package."""
  directory = resolve(path)
  if os.path.exists(os.path.join(directory, "assets", "sentencepiece.model")):
    try:
      import tensorflow_text  # pylint: disable=g-import-not-at-top,unused-import
    except ImportError:
      raise UserError(f"{directory} is a SentencePiece model, whose ops come "
                      "with TensorFlow Text: pip install "
                      '"kerasrnn[subword]" (or tensorflow-text matching your '
                      "TensorFlow)") from None
  try:
    return tf.saved_model.load(directory)
  except Exception as e:  # pylint: disable=broad-except
    # TensorFlow reports damaged files as OSError, IndexError, OpError, ...
    base, version = os.path.split(os.path.normpath(directory))
    older = [v for v in versions(base) if str(v) != version]
    fix = "export it again with kerasrnn-export"
    if version.isdigit() and older and older[0] < int(version):
      previous = max(v for v in older if v < int(version))
      fix += (f", or load the version before it "
              f"(--model={os.path.join(base, str(previous))})")
    raise UserError(f"the SavedModel {directory} is damaged "
                    f"({files.reason(e)}); {fix}") from None
