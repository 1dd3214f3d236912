r"""kerasrnn-evaluate: exact perplexity of a trained run on one split, as JSON.

  kerasrnn-evaluate --workdir=runs/small --split=test
  kerasrnn-evaluate --workdir=runs/small --split=test --mode=sentence \
      --batch_size=64
"""
import json

from absl import flags

from kerasrnn import cli
from kerasrnn.training import evaluation

_WORKDIR = flags.DEFINE_string("workdir", None, "A kerasrnn-train workdir.")
_SPLIT = flags.DEFINE_string("split", "test", "train, valid or test.")
_BATCH = flags.DEFINE_integer("batch_size", None, "Default: the run's.")
_MODE = flags.DEFINE_enum("mode", None, ["stream", "sentence"],
                          "Default: the run's data.mode.")
flags.mark_flag_as_required("workdir")


def main(argv):
  del argv
  print(json.dumps(evaluation.evaluate(_WORKDIR.value, _SPLIT.value,
                                       _BATCH.value, _MODE.value)))


def run():
  cli.run_main(main)


if __name__ == "__main__":
  run()
