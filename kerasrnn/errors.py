"""The one exception type for bad input, shown to users as a single line."""


class UserError(ValueError):
  """Bad input a user can fix: a missing file, an invalid config value, ...

  Command-line tools print its message as one line (no traceback) and exit 2,
  so the message must name the problem and the fix.
  """
