"""kerasrnn-report: plots and a summary table of runs (finished or not).

  kerasrnn-report --runs='runs/study/*' --out=docs/study
"""
import json

from absl import flags

from kerasrnn import cli
from kerasrnn.report import report

_RUNS = flags.DEFINE_string("runs", None, "Comma-separated workdirs or globs.")
_OUT = flags.DEFINE_string("out", None, "Output directory.")
flags.mark_flags_as_required(["runs", "out"])


def main(argv):
  del argv
  for row in report.write_report(_RUNS.value, _OUT.value):
    print(json.dumps(row))


def run():
  cli.run_main(main)


if __name__ == "__main__":
  run()
