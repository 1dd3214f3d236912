"""Command-line tools: each parses absl flags and calls one library function.

Bad input (a `UserError`, or a flag or config file that does not parse)
ends the tool with one line on stderr and exit status 2, never a traceback.
"""
import os
import sys

from absl import app
from absl import flags

from kerasrnn.errors import UserError


def _fail(message):
  print(f"error: {message}", file=sys.stderr)
  sys.stdout.flush()
  sys.stderr.flush()
  # Without the interpreter's finalisation: h5py cannot close a file whose
  # write failed (a full disk) and would crash the exit. Everything kerasrnn
  # wrote is already whole and in place (kerasrnn.files).
  os._exit(2)


def _last_line(error):
  # ml_collections reports a failing config file with its traceback inside
  # the message; the last line names the actual problem.
  last = str(error).strip().splitlines()[-1].strip()
  return last.replace(f"{UserError.__module__}.UserError: ", "")


def _unknown_field(error):
  # ml_collections raises AttributeError(KeyError("'hiden_size'\nDid you
  # mean ...?")) or the KeyError itself.
  while error.args and isinstance(error.args[0], Exception):
    error = error.args[0]
  message = str(error.args[0]) if error.args else str(error)
  name, _, hint = message.partition("\n")
  hint = f"; {hint[0].lower()}{hint[1:]}" if hint else ""
  return (f"unknown config field {name}{hint} (the fields are listed in "
          "kerasrnn/config.py)")


def _parse_flags(argv):
  try:
    argv = flags.FLAGS(argv)
  except flags.Error as e:
    _fail(_last_line(e))
  except (AttributeError, KeyError) as e:
    _fail(_unknown_field(e))
  if "config" in flags.FLAGS and flags.FLAGS.config is not None:
    try:
      flags.FLAGS.config.keys()
    except OSError as e:  # ml_collections defers a config file's load error.
      _fail(f"cannot load the config file: {_last_line(e)}")
  return argv


def run_main(main):
  """Runs an absl `main(argv)` with one-line errors for bad input."""

  def guarded(argv):
    try:
      return main(argv)
    except UserError as e:
      _fail(e)

  app.run(guarded, flags_parser=_parse_flags)
