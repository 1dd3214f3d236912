r"""kerasrnn-data: check a corpus and its pipeline, or prepare its token store.

  kerasrnn-data --config=configs/small.py --config.data.mode=sentence
  kerasrnn-data --config=configs/small.py --config.data.source=text \
      --config.data.dir=corpus --config.data.train_file='train-*.txt.gz' \
      --prepare=stores/corpus
  kerasrnn-train --config=configs/small.py --config.data.source=text \
      --config.data.store=stores/corpus --workdir=runs/corpus
  kerasrnn-data --verify=stores/corpus

--prepare reads the corpus once into a token store (ids in flat files, read
through memory maps); commands given --config.data.store=DIR then start
without reading the text. --verify reads a store's every file and checks it
against the digests it was prepared with (no --config needed). Without
either, the numbers of the corpus and its pipeline (JSON).
"""
import json

from absl import flags
from ml_collections import config_flags

from kerasrnn import cli
from kerasrnn import config as config_lib
from kerasrnn.data import store
from kerasrnn.data import summary
from kerasrnn.errors import UserError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.",
                                          lock_config=True)
_PREPARE = flags.DEFINE_string(
    "prepare", None, "Prepare the corpus's token store into this new folder.")
_VERIFY = flags.DEFINE_string(
    "verify", None, "Check every file of this token store against its "
    "manifest's digests.")


def main(argv):
  del argv
  if _VERIFY.value:
    print(json.dumps(store.verify(_VERIFY.value), indent=2))
    return
  if _CONFIG.value is None:
    raise UserError("--config is required (or --verify=STORE)")
  config = config_lib.validate(_CONFIG.value)
  if _PREPARE.value:
    print(json.dumps(store.prepare(config.data, _PREPARE.value), indent=2))
  else:
    print(json.dumps(summary.describe(config), indent=2))


def run():
  cli.run_main(main)


if __name__ == "__main__":
  run()
