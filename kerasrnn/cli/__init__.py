"""Command-line tools: each parses absl flags and calls one library function.

Bad input (a `UserError`, or a flag or config file that does not parse)
ends the tool with one line on stderr and exit status 2, never a traceback.

TensorFlow's start-up lines (CUDA probed on machines without a GPU, oneDNN
notices) are not shown unless `TF_CPP_MIN_LOG_LEVEL` is set, e.g.
`TF_CPP_MIN_LOG_LEVEL=0 kerasrnn-train ...`. `--config=configs/NAME.py`
names the file in the working directory if it is there, else the config of
that name shipped with kerasrnn. `--help` lists a tool's flags and, for the
tools that take a config, every config field with its default.
"""
import importlib.util
import os
import sys

from absl import app
from absl import flags

from kerasrnn.errors import UserError


def _import_tensorflow_quietly():
  """Imports TensorFlow with its C++ logs off (TF_CPP_MIN_LOG_LEVEL=3) and
  stderr closed meanwhile (the lines it writes before its log level is
  read), unless the user set TF_CPP_MIN_LOG_LEVEL. An import error still
  raises, with stderr back."""
  if "TF_CPP_MIN_LOG_LEVEL" in os.environ or "tensorflow" in sys.modules:
    return
  os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
  sys.stderr.flush()
  saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
  os.dup2(devnull, 2)
  try:
    import tensorflow  # pylint: disable=g-import-not-at-top,unused-import
  finally:
    os.dup2(saved, 2)
    os.close(saved)
    os.close(devnull)


_import_tensorflow_quietly()

_CONFIG_FLAGS = ("--config", "--config_file")


def shipped_config(path):
  """`configs/NAME.py[:variant]`: the file in the working directory if it is
  there, else the config of that name installed with kerasrnn
  (`kerasrnn.configs`, the checkout's configs/); any other path as given."""
  file, colon, variant = path.partition(":")
  head, name = os.path.split(os.path.normpath(file))
  if os.path.exists(file) or head != "configs":
    return path
  spec = importlib.util.find_spec("kerasrnn.configs")
  if spec is None or not spec.submodule_search_locations:
    return path
  for directory in spec.submodule_search_locations:
    if os.path.exists(os.path.join(directory, name)):
      return os.path.join(directory, name) + colon + variant
  return path


def _with_shipped_configs(argv):
  argv = list(argv)
  for i, arg in enumerate(argv):
    name, equals, value = arg.partition("=")
    if name in _CONFIG_FLAGS and equals:
      argv[i] = f"{name}={shipped_config(value)}"
    elif arg in _CONFIG_FLAGS and i + 1 < len(argv):
      argv[i + 1] = shipped_config(argv[i + 1])
  return argv


def _config_fields():
  from kerasrnn import config as config_lib  # pylint: disable=g-import-not-at-top
  lines = []
  def walk(prefix, node):
    for key, value in node.items():
      if hasattr(value, "items"):
        walk(f"{prefix}{key}.", value)
      else:
        lines.append(f"  --config.{prefix}{key}={value!r}")
  walk("", config_lib.base_config())
  return ("\nconfig fields (defaults of kerasrnn/config.py, which documents "
          "each; a config file changes some, --config.FIELD=VALUE any):\n"
          + "\n".join(lines) + "\n")


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
  return (f"unknown config field {name}{hint} (--help lists the fields; "
          "kerasrnn/config.py documents them)")


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


def _help_of(module):
  """What `--help` prints: the tool's docstring, its own flags and, if it
  takes a config, the config's fields (absl shows the flags of `__main__`,
  which for an installed command is a wrapper script)."""
  main = sys.modules["__main__"]
  main.__doc__ = (module.__doc__ or "").replace("%", "%%")
  if "config" in flags.FLAGS:
    main.__doc__ += _config_fields().replace("%", "%%")
  for flag in flags.FLAGS.get_key_flags_for_module(module.__name__):
    flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)


def run_main(main):
  """Runs an absl `main(argv)` with one-line errors for bad input."""

  def guarded(argv):
    try:
      return main(argv)
    except UserError as e:
      _fail(e)

  _help_of(sys.modules[main.__module__])
  app.run(guarded, argv=_with_shipped_configs(sys.argv),
          flags_parser=_parse_flags)
