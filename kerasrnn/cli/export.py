"""kerasrnn-export: write a run's best checkpoint as a TF Serving SavedModel.

  kerasrnn-export --workdir=runs/small --export_base=export/ptb_small

Prints the export's model card (assets.extra/model.json: what it is and
the limits it holds requests to), then the new version's path.
"""
import json

from absl import flags

from kerasrnn import cli
from kerasrnn.serving import export
from kerasrnn.serving.module import DEFAULT_LIMITS
from kerasrnn.serving.module import FUSED_MAX_BATCH
from kerasrnn.serving.module import Limits

_WORKDIR = flags.DEFINE_string("workdir", None, "A kerasrnn-train workdir.")
_BASE = flags.DEFINE_string("export_base", None,
                            "Model directory; versions go to <base>/<N>/.")
_TOP_K = flags.DEFINE_integer("top_k", 10, "Most likely next words returned "
                              "by next_words and step.")
_STEP_LOG_PROBS = flags.DEFINE_enum(
    "step_log_probs", "auto", ["auto", "true", "false"],
    "Whether step also returns the whole next-word distribution "
    "(next_log_probs, batch x vocabulary floats per call); auto: for "
    "vocabularies of up to 65,536 words.")
_MAX_BATCH = flags.DEFINE_integer(
    "max_batch", DEFAULT_LIMITS.max_batch,
    "Most rows (texts, prompts, streams) per request.")
_MAX_TOKENS = flags.DEFINE_integer(
    "max_request_tokens", DEFAULT_LIMITS.max_request_tokens,
    "Most tokens a request reads (its texts' tokens and <eos>, or its ids).")
_MAX_GENERATE = flags.DEFINE_integer(
    "max_generate_tokens", DEFAULT_LIMITS.max_generate_tokens,
    "Largest max_tokens generate accepts.")
_PRECISION = flags.DEFINE_enum(
    "precision", "float32", ["float32", "bfloat16"],
    "The graph's arithmetic: float32, or bfloat16 for CPUs that multiply it "
    "natively (AVX512_BF16 or AMX); inputs, outputs and weights stay float32.")
_FUSED_MAX_BATCH = flags.DEFINE_integer(
    "fused_max_batch", FUSED_MAX_BATCH,
    "An LSTM export reads requests of up to this many rows with TensorFlow's "
    "fused LSTM op (fewer ops per call), larger ones with the Keras cells; "
    "4 is where the two crossed on a 2-core CPU; 0: never the fused op.")
flags.mark_flags_as_required(["workdir", "export_base"])


def main(argv):
  del argv
  limits = Limits(_MAX_BATCH.value, _MAX_TOKENS.value, _MAX_GENERATE.value)
  step_log_probs = {"auto": None, "true": True,
                    "false": False}[_STEP_LOG_PROBS.value]
  version = export.export(_WORKDIR.value, _BASE.value, _TOP_K.value, limits,
                          _PRECISION.value, step_log_probs,
                          _FUSED_MAX_BATCH.value)
  print(json.dumps(export.read_card(version), indent=2))
  print(version)


def run():
  cli.run_main(main)


if __name__ == "__main__":
  run()
