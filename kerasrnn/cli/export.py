"""kerasrnn-export: write a run's best checkpoint as a TF Serving SavedModel.

  kerasrnn-export --workdir=runs/small --export_base=export/ptb_small
"""
from absl import flags

from kerasrnn import cli
from kerasrnn.serving import export

_WORKDIR = flags.DEFINE_string("workdir", None, "A kerasrnn-train workdir.")
_BASE = flags.DEFINE_string("export_base", None,
                            "Model directory; versions go to <base>/<N>/.")
_TOP_K = flags.DEFINE_integer("top_k", 10, "Words returned by next_words.")
_MAX_NEW = flags.DEFINE_integer("max_new_tokens", 200,
                                "Cap on generate's max_tokens.")
_PRECISION = flags.DEFINE_enum(
    "precision", "float32", ["float32", "bfloat16"],
    "The graph's arithmetic: float32, or bfloat16 for CPUs that multiply it "
    "natively (AVX512_BF16 or AMX); inputs, outputs and weights stay float32.")
flags.mark_flags_as_required(["workdir", "export_base"])


def main(argv):
  del argv
  print(export.export(_WORKDIR.value, _BASE.value, _TOP_K.value,
                      _MAX_NEW.value, _PRECISION.value))


def run():
  cli.run_main(main)


if __name__ == "__main__":
  run()
