"""User-facing errors: every mistake a user can make in a file, flag or parameter.

The CLI and the ROS nodes print these as one line (no traceback). Each message
names the offending field (array and index, YAML key, parameter) and the fix.
"""


class AltmarlError(ValueError):
    """Base class for errors caused by user input, reported without a traceback.

    Raised as `Error(message)` or `Error(field, detail)`; the second prints
    "<field>: <detail>" and keeps both, so a caller that knows a longer path (a YAML
    section, a ROS parameter prefix) can re-raise with it instead of re-validating.
    """

    def __init__(self, field_or_message: str, detail: str | None = None):
        if detail is None:
            super().__init__(field_or_message)
            self.field, self.detail = None, field_or_message
        else:
            super().__init__(f"{field_or_message}: {detail}")
            self.field, self.detail = field_or_message, detail


class UsageError(AltmarlError):
    """A command-line flag is wrong or does not apply; the message names the flag and the fix."""
