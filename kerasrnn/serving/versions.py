"""The TF Serving layout: integer version directories under a model base."""
import os


def versions(base):
  """Sorted integer versions <N>/ under `base` ([] if there are none)."""
  if not os.path.isdir(base):
    return []
  return sorted(int(d) for d in os.listdir(base) if d.isdigit())
