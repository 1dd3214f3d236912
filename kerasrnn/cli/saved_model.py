"""Loading an exported model as any TensorFlow program would (no kerasrnn)."""
import os

import tensorflow as tf

from kerasrnn.errors import UserError


def resolve(path):
  """A SavedModel directory, or the newest <N>/ of a TF Serving model base."""
  if os.path.exists(os.path.join(path, "saved_model.pb")):
    return path
  versions = sorted(int(d) for d in os.listdir(path) if d.isdigit()) if (
      os.path.isdir(path)) else []
  if not versions:
    raise UserError(f"{path} is neither a SavedModel nor a folder of "
                    "versions <N>/; pass an export made by kerasrnn-export")
  return os.path.join(path, str(versions[-1]))


def load(path):
  return tf.saved_model.load(resolve(path))
