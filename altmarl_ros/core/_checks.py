"""Range checks for named parameters, shared by kinematics, ring and scenarios.

Each takes the error class to raise as (field, detail) (see AltmarlError), so the
caller's domain error names the field.
"""
from __future__ import annotations

import math
import operator

from altmarl_ros.errors import AltmarlError


def as_float(error: type[AltmarlError], field: str, value) -> float:
    """A finite real number (bools are rejected: `true` in YAML is not a speed)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error(field, f"must be a number, got {value!r}")
    try:
        value = float(value)
    except OverflowError:  # an integer of hundreds of digits
        raise error(field, f"must be a finite number, got an integer of {len(str(value))} digits") from None
    if not math.isfinite(value):
        raise error(field, f"must be finite, got {value!r}")
    return value


def positive(error: type[AltmarlError], field: str, value) -> float:
    value = as_float(error, field, value)
    if value <= 0:
        raise error(field, f"must be > 0, got {value:g}")
    return value


def non_negative(error: type[AltmarlError], field: str, value) -> float:
    value = as_float(error, field, value)
    if value < 0:
        raise error(field, f"must be >= 0, got {value:g}")
    return value


def probability(error: type[AltmarlError], field: str, value) -> float:
    value = as_float(error, field, value)
    if not 0.0 <= value <= 1.0:
        raise error(field, f"must be in [0, 1], got {value:g}")
    return value


def integer(error: type[AltmarlError], field: str, value, minimum: int) -> int:
    """An int (numpy ints too); floats such as 5.0 are refused: a count is a count."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise error(field, f"must be an integer >= {minimum}, got {value!r}")
    value = operator.index(value)
    if value < minimum:
        raise error(field, f"must be an integer >= {minimum}, got {value}")
    return value
