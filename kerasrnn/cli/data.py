"""kerasrnn-data: check a corpus and its pipeline before training.

  kerasrnn-data --config=configs/small.py --config.data.mode=sentence
"""
import json

from absl import flags
from ml_collections import config_flags

from kerasrnn import cli
from kerasrnn import config as config_lib
from kerasrnn.data import summary

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.",
                                          lock_config=True)
flags.mark_flag_as_required("config")


def main(argv):
  del argv
  config = config_lib.validate(_CONFIG.value)
  print(json.dumps(summary.describe(config), indent=2))


def run():
  cli.run_main(main)


if __name__ == "__main__":
  run()
