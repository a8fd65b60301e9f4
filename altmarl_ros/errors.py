"""User-facing errors: every mistake a user can make in a file, flag or parameter.

The CLI and the ROS nodes print these as one line (no traceback). Each message
names the offending field (array and index, YAML key, parameter) and the fix.
One class per domain; modules raise these or a subclass that names the part
(ScenarioError, LaunchError, SweepConfigError, ParameterError, RingError, ...):

  ModelError   a game: model file, arrays, count vectors
  PolicyError  a policy file or array (PolicyMismatch: valid, but for another model, k or scenario)
  ConfigError  a scenario, fleet or sweep file, or a node / world parameter
  LearnError   arguments of the learners and the evaluator (including a generative sampler)
  UsageError   a command-line flag that is wrong or does not apply
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


class ModelError(AltmarlError):
    """A model array, file or key is invalid; the message names it and the fix."""


class PolicyError(AltmarlError):
    """A policy file or policy array is invalid; the message names it and the fix."""


class PolicyMismatch(PolicyError):
    """A valid policy does not belong to the model, k or scenario it is used with."""


class ConfigError(AltmarlError):
    """A scenario, fleet or sweep file, or a node or world parameter, is wrong."""


class LearnError(AltmarlError):
    """Bad input to G-LEARN / L-LEARN / ALTERNATING-MARL or the evaluator; names the field and the fix."""
