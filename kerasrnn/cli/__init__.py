"""Command-line tools: each parses absl flags and calls one library function."""
import sys

from absl import app

from kerasrnn.errors import UserError


def run_main(main):
  """Runs an absl main; a `UserError` becomes one line on stderr, exit 2."""

  def guarded(argv):
    try:
      return main(argv)
    except UserError as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2)

  app.run(guarded)
