"""The work ceiling: every command prices the work it was asked for before starting it.

A flag such as `--m 1e8`, `--horizon` x `--rollouts` at 1e17 agent-steps or `--epochs 2e9`
fits every memory check and then runs for days with no way to know. Instead each command
counts its work up front in its natural unit (agent-steps of tabular rollouts, G-LEARN
gathers, simulated robot-steps, robots started on ROS), turns the count into estimated
seconds with the rate of that unit (RATES, measured on the 2-core development machine by
bench/bench_work_rates.py, rounded), and `require` refuses beyond the ceiling:
DEFAULT_MAX_WORK of estimated time, raised with `--max-work DURATION` on every
command (or ALTMARL_MAX_WORK, which child processes inherit). A refusal names the count,
the estimate, the ceiling and the flags that make the work smaller.
"""
from __future__ import annotations

import math
import re

from altmarl_ros.core._limits import ProcessLimit
from altmarl_ros.errors import AltmarlError

FLAG = "--max-work"
ENV_VAR = "ALTMARL_MAX_WORK"
DEFAULT_MAX_WORK = 6 * 3600.0  # s: the quick k-sweep fits (the full one needs --max-work 24h), a typo does not
# Units of work per second on one core (bench/bench_work_rates.py; 2 cores, 2026-12-03).
RATES = {
    "agent-steps": 1.5e8,  # tabular rollouts (core.evaluate): one agent, one epoch
    "G-LEARN gathers": 4e8,  # one of the m sampled successors of one (s_g, F) in one sweep of plain value iteration
    "robot control steps": 8e6,  # the continuous simulator: one robot, one control period
    "FA agent-steps": 1.5e6,  # FA learners (core/fa_learn.py), one XLA thread: one local, one step, the networks'
    # passes and TRPO's updates included (bench/bench_fa.py, 2026-12-06: training 1.4e6/s, evaluation 3.8e6/s)
    "dense flops": 2e10,  # L-LEARN's pair chain: numpy matrix products (6.3e10/s measured on 1500 x 1500)
    "frames drawn": 1.5,  # render: the ring, axes and image of one frame
    "robots drawn": 1.25e5,  # render: one robot in one frame
    "robots started": 60.0,  # launch and demo: one robot's topics and DDS endpoints created
}
_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*(s|m|min|h|d)?\s*$", re.IGNORECASE)
_SECONDS = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


class WorkError(AltmarlError):
    """A command was asked for more work than the ceiling allows."""


def parse_duration(text: str, field: str = FLAG) -> float:
    """'90', '90s', '30m', '12h', '2d' -> seconds."""
    match = _DURATION.match(str(text))
    if not match:
        raise WorkError(f"{field} {text!r}: give a duration such as 3600, 90m, 12h or 2d")
    seconds = float(match.group(1)) * _SECONDS[(match.group(2) or "s").lower()]
    if not 0 < seconds < 1e12:
        raise WorkError(f"{field} {text!r}: must be above 0 and below 1e12 s")
    return seconds


_LIMIT = ProcessLimit(ENV_VAR, parse_duration, lambda: DEFAULT_MAX_WORK)
limit = _LIMIT.get  # the ceiling in estimated seconds: --max-work, else ALTMARL_MAX_WORK, else the default
set_limit = _LIMIT.set
limited = _LIMIT.limited  # the ceiling inside a with-block (tests)


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds >= 1e12:
        return "more than 30,000 years"
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


def seconds(amounts: dict) -> float:
    """Estimated seconds of {unit: count} (units of RATES)."""
    return sum(float(count) / RATES[unit] for unit, count in amounts.items())


def require(what: str, amounts: dict, fix: str) -> float:
    """Refuse (WorkError) unless the work `amounts` ({unit: count}) fits the ceiling; returns its estimate.

    `what` names the work and the inputs it comes from, `fix` how to ask for less.
    """
    estimate = seconds(amounts)
    ceiling = limit()
    if estimate > ceiling:
        counted = ", ".join(f"{count:.3g} {unit}" for unit, count in amounts.items() if count)
        source = _LIMIT.source(FLAG)
        duration = format_duration(estimate)
        duration = duration if duration.startswith("more") else f"about {duration}"
        raise WorkError(f"{what}: {counted}, {duration} on this kind of machine, over the work "
                        f"ceiling of {format_duration(ceiling)} ({source}): {fix}, or raise {FLAG}")
    return estimate
