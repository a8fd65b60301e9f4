"""Subcommands of the `altmarl` console script, one module each.

A command module defines `HELP` (one line), `add_arguments(parser)` and
`run(args) -> int`. Keep module import cheap: import numba/rclpy inside `run`.
"""

import json
import math


def finite_or_none(value):
    """value with every NaN/inf float, also inside dicts and lists, replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(item) for item in value]
    return value


def print_json(document) -> None:
    """`--json` output: one line of strict JSON. NaN/inf (a CI over one rollout, a real-time
    factor when the clock never ran) become null; Python's json would write NaN, which
    JSON parsers reject."""
    print(json.dumps(finite_or_none(document), allow_nan=False))
