"""Loading an exported model as any TensorFlow program would."""
import os

import tensorflow as tf

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
  return tf.saved_model.load(resolve(path))
