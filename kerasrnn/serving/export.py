"""Writes a run's best checkpoint as a versioned SavedModel.

export/<name>/<N>/ is the layout TF Serving watches: each export goes to a
temporary directory beside it (`files.atomic_path`, which TF Serving ignores)
and is renamed into the next free version, so a server never sees half a
version and no version is ever overwritten (a rename onto a version that
another export took meanwhile fails).
"""
import datetime
import json
import os

import keras
import tensorflow as tf

import kerasrnn
from kerasrnn import files
from kerasrnn import workdir as wd
from kerasrnn.data import subword
from kerasrnn.errors import UserError
from kerasrnn.serving import warmup
from kerasrnn.serving.module import DEFAULT_LIMITS
from kerasrnn.serving.module import FUSED_MAX_BATCH
from kerasrnn.serving.module import LanguageModelModule
from kerasrnn.serving.module import Limits
from kerasrnn.serving.module import step_log_probs_for
from kerasrnn.serving.versions import versions
from kerasrnn.training.evaluation import load_best_model


def next_version(export_base):
  """1 + the highest integer version directory under `export_base`."""
  return max(versions(export_base), default=0) + 1


PRECISIONS = ("float32", "bfloat16")


CARD = os.path.join("assets.extra", "model.json")


def load_module(workdir, top_k=10, limits=DEFAULT_LIMITS, precision="float32",
                step_log_probs=None, fused_max_batch=FUSED_MAX_BATCH):
  """Builds the serving module from a run's workdir (config, vocab, weights),
  computing in `precision` (float32, or bfloat16 for CPUs that multiply it
  natively; the weights, states and outputs stay float32), within `limits`
  (a `module.Limits`), with the run's model card."""
  if fused_max_batch < 0:
    raise UserError(f"--fused_max_batch={fused_max_batch} must be >= 0 "
                    "(0: never the fused LSTM op)")
  if precision not in PRECISIONS:
    raise UserError(f"--precision={precision} is not one of "
                    f"{', '.join(PRECISIONS)}")
  limits = Limits(*limits)
  for name, value in limits._asdict().items():
    if value < 1:
      raise UserError(f"--{name}={value} must be at least 1")
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
  step_log_probs = step_log_probs_for(len(vocab), step_log_probs)
  model = load_best_model(
      workdir, config, len(vocab), use_cudnn=False, stateful=False,
      precision="mixed_bfloat16" if precision == "bfloat16" else "float32")
  return LanguageModelModule(
      model, wd.path(workdir, "vocab.txt"), vocab.words,
      lowercase=config.data.lowercase, tokenizer=config.data.tokenizer,
      top_k=top_k, limits=limits, context=config.data.max_length,
      sentencepiece_model=pieces, step_log_probs=step_log_probs,
      fused_max_batch=fused_max_batch, card=model_card(workdir, model, precision, limits, top_k,
                      step_log_probs))


def model_card(workdir, model, precision, limits, top_k, step_log_probs):
  """What an export is: the run's config, data, results and training, the
  versions that made it, and the export's own settings (a JSON-able dict;
  `assets.extra/model.json` and the `metadata` signature)."""
  config = wd.load_config(workdir)
  results = wd.read_json(workdir, "results.json")
  return {
      "kerasrnn": kerasrnn.__version__, "tensorflow": tf.__version__,
      "keras": keras.__version__,
      "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec="seconds"),
      "workdir": os.path.abspath(workdir),
      "precision": precision, "limits": limits._asdict(),
      "top_k": top_k, "step_log_probs": step_log_probs,
      "parameters": model.count_params(),
      "vocab_size": len(wd.load_vocab(workdir)),
      "tokenizer": config.data.tokenizer, "lowercase": config.data.lowercase,
      # The corpus's fingerprint (sha256 of vocabulary and token ids) and
      # tokens per split.
      "data": wd.read_json(workdir, "data.json"),
      # The checkpoint exported: its step, epoch and validation perplexity.
      "checkpoint": wd.read_json(workdir, os.path.join("checkpoints",
                                                       "best.json")),
      # results.json (None for a run not finished): its perplexities per
      # split, per token and per word, in `results_mode`; steps, epochs
      # and wall_seconds of training.
      "results": results, "results_mode": config.data.mode,
      "config": config.to_dict()}


def export(workdir, export_base, top_k=10, limits=DEFAULT_LIMITS,
           precision="float32", step_log_probs=None,
           fused_max_batch=FUSED_MAX_BATCH):
  """Exports the best checkpoint of `workdir` to `export_base`/<N>/.

  Args:
    workdir: a kerasrnn-train workdir.
    export_base: the model's directory, e.g. export/ptb_small.
    top_k: most likely next words returned by `next_words` and `step`.
    limits: a `module.Limits`: what one request may ask.
    precision: float32, or bfloat16: the graph computes in bfloat16 (CPUs
      with AVX512_BF16 or AMX), its inputs and outputs float32 as ever.
    step_log_probs: whether `step` returns the whole next-word
      distribution too (None: for vocabularies up to 65,536 words).
    fused_max_batch: an LSTM's requests of up to this many rows run
      TensorFlow's fused LSTM op, larger ones the Keras cells (0: never).

  Returns:
    The path of the new version directory.
  """
  module = load_module(workdir, top_k, limits, precision, step_log_probs,
                       fused_max_batch)
  files.remove_leftovers(export_base, keep_live=True)
  target = os.path.join(export_base, str(next_version(export_base)))
  with files.atomic_path(target) as tmp:
    tf.saved_model.save(module, tmp, signatures=module.signatures())
    warmup.write_requests(tmp, module.initial_states(2))
    with open(os.path.join(tmp, CARD), "w", encoding="utf-8") as f:
      f.write(json.dumps(json.loads(module.card), indent=2) + "\n")
  return target


def read_card(version):
  """The model card of an export version (None for exports of kerasrnn
  before 0.5, which have none)."""
  card = os.path.join(version, CARD)
  if not os.path.exists(card):
    return None
  with open(card, encoding="utf-8") as f:
    return json.load(f)
