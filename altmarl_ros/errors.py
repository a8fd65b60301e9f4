"""User-facing errors: every mistake a user can make in a file, flag or parameter.

The CLI and the ROS nodes print these as one line (no traceback). Each message
names the offending field (array and index, YAML key, parameter) and the fix.
"""


class AltmarlError(ValueError):
    """Base class for errors caused by user input, reported without a traceback."""


class UsageError(AltmarlError):
    """A command-line flag is wrong or does not apply; the message names the flag and the fix."""
