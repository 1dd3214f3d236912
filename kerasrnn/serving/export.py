"""Writes a run's best checkpoint as a versioned SavedModel.

export/<name>/<N>/ is the layout TF Serving watches: each export goes to a
temporary directory beside it (`files.atomic_path`, which TF Serving ignores)
and is renamed into the next free version, so a server never sees half a
version and no version is ever overwritten (a rename onto a version that
another export took meanwhile fails).
"""
import os

import tensorflow as tf

from kerasrnn import files
from kerasrnn import workdir as wd
from kerasrnn.data import subword
from kerasrnn.errors import UserError
from kerasrnn.serving import warmup
from kerasrnn.serving.module import LanguageModelModule
from kerasrnn.serving.versions import versions
from kerasrnn.training.evaluation import load_best_model


def next_version(export_base):
  """1 + the highest integer version directory under `export_base`."""
  return max(versions(export_base), default=0) + 1


PRECISIONS = ("float32", "bfloat16")


def load_module(workdir, top_k=10, max_new_tokens=200, precision="float32"):
  """Builds the serving module from a run's workdir (config, vocab, weights),
  computing in `precision` (float32, or bfloat16 for CPUs that multiply it
  natively; the weights, states and outputs stay float32)."""
  if precision not in PRECISIONS:
    raise UserError(f"--precision={precision} is not one of "
                    f"{', '.join(PRECISIONS)}")
  config = wd.load_config(workdir)
  if precision == "bfloat16" and config.model.cell == "transformer":
    raise UserError("--precision=bfloat16 exports recurrent models only; "
                    "export this Transformer in float32")
  config.data.mode = "sentence"  # Stateless, masked, any batch and length.
  pieces = wd.path(workdir, subword.MODEL_FILE)
  if config.data.tokenizer == "sentencepiece" and not os.path.exists(pieces):
    raise UserError(f"{workdir} has no {subword.MODEL_FILE} (a subword "
                    "run's tokenizer); copy it back from the run's token "
                    "store (data.store, or its folder in "
                    "~/.cache/kerasrnn/stores)")
  vocab = wd.load_vocab(workdir)
  model = load_best_model(
      workdir, config, len(vocab), use_cudnn=False, stateful=False,
      precision="mixed_bfloat16" if precision == "bfloat16" else "float32")
  return LanguageModelModule(
      model, wd.path(workdir, "vocab.txt"), vocab.words,
      lowercase=config.data.lowercase, tokenizer=config.data.tokenizer,
      top_k=top_k, max_new_tokens=max_new_tokens,
      context=config.data.max_length,
      sentencepiece_model=pieces)


def export(workdir, export_base, top_k=10, max_new_tokens=200,
           precision="float32"):
  """Exports the best checkpoint of `workdir` to `export_base`/<N>/.

  Args:
    workdir: a kerasrnn-train workdir.
    export_base: the model's directory, e.g. export/ptb_small.
    top_k: words returned by the `next_words` signature.
    max_new_tokens: cap of the `generate` signature's max_tokens.
    precision: float32, or bfloat16: the graph computes in bfloat16 (CPUs
      with AVX512_BF16 or AMX), its inputs and outputs float32 as ever.

  Returns:
    The path of the new version directory.
  """
  module = load_module(workdir, top_k, max_new_tokens, precision)
  files.remove_leftovers(export_base, keep_live=True)
  target = os.path.join(export_base, str(next_version(export_base)))
  with files.atomic_path(target) as tmp:
    tf.saved_model.save(module, tmp, signatures=module.signatures())
    warmup.write_requests(tmp, module.initial_states(2))
  return target
