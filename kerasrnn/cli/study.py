r"""kerasrnn-study: train the study's runs one after another, then report.

  kerasrnn-study --config_file=configs/study.py --workdir=runs/study \
      --report=docs/study

Run the same command again to resume an interrupted study.
"""
import json

from absl import flags

from kerasrnn import cli
from kerasrnn import study

_FILE = flags.DEFINE_string("config_file", "configs/study.py",
                            "A config file with VARIANTS.")
_VARIANTS = flags.DEFINE_list("variants", None, "Default: all.")
_WORKDIR = flags.DEFINE_string("workdir", None, "The study's directory.")
_REPORT = flags.DEFINE_string("report", None, "Default: <workdir>/report.")
flags.mark_flag_as_required("workdir")


def main(argv):
  del argv
  configs = study.load_variants(_FILE.value, _VARIANTS.value)
  for row in study.run_study(configs, _WORKDIR.value, _REPORT.value):
    print(json.dumps(row))


def run():
  cli.run_main(main)


if __name__ == "__main__":
  run()
