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


def comparison_lines(learned, name, baseline) -> list:
    """The learned pair next to the best population-blind baseline, plus a warning line when it
    is below beyond both CIs (shared by train and evaluate)."""
    lines = [f"learned pair {learned.mean:.3f} +- {learned.ci95:.3f}   best population-blind baseline "
             f"{name} ({baseline.detail or 'no choice'}) {baseline.mean:.3f} +- {baseline.ci95:.3f}"]
    if learned.mean + learned.ci95 < baseline.mean - baseline.ci95:
        lines.append(f"WARNING: the learned pair is below the {name} baseline beyond both 95% CIs "
                     f"({learned.mean - baseline.mean:+.3f}); deploy the baseline or train with more k / "
                     "--observer filter")
    return lines


def comparison_json(learned, name, baseline) -> dict:
    return {"learned": {"welfare": learned.mean, "welfare_ci": learned.ci95},
            "best_blind_baseline": {"name": name, "detail": baseline.detail, "welfare": baseline.mean,
                                    "welfare_ci": baseline.ci95},
            "below_baseline": bool(learned.mean + learned.ci95 < baseline.mean - baseline.ci95)}
