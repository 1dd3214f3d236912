r"""kerasrnn-train: train a language model into a workdir (resumable).

  kerasrnn-train --config=configs/small.py --workdir=runs/small
  kerasrnn-train --config=configs/small.py --workdir=runs/h650 \
      --config.model.hidden_size=650
  kerasrnn-train --config=configs/smoke.py:sentence --workdir=runs/mirrored \
      --config.train.distribute=mirrored --cpu_devices=2
"""
from absl import flags
from ml_collections import config_flags

from kerasrnn import cli
from kerasrnn.training import distribute
from kerasrnn.training import train

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory of the run.")
_CPU_DEVICES = flags.DEFINE_integer(
    "cpu_devices", 0, "Split the CPU into this many logical devices, e.g. to "
    "try train.distribute=mirrored without GPUs (0: as TensorFlow sees it).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  if _CPU_DEVICES.value:
    distribute.split_cpu(_CPU_DEVICES.value)
  train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


def run():
  cli.run_main(main)


if __name__ == "__main__":
  run()
