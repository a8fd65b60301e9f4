"""The memory budget: every allocation whose size comes from input is checked against it first.

A k, an n, a zone count or an array shape declared in a file can each ask for
more memory than the machine has; numpy would then fail deep inside the work
(or the kernel would kill the process) after minutes of computing. Instead,
code that is about to allocate an input-sized array calls `require(what,
nbytes, fix)` before any work starts, and going over the budget raises
`BudgetError` stating the size needed, the budget and the flag that raises it.

The budget defaults to DEFAULT_SHARE of the machine's RAM (the cgroup limit if
lower). `altmarl --max-memory SIZE` (and the ALTMARL_MAX_MEMORY environment
variable, which ROS nodes and child processes inherit) set it; `limited` sets
it for a block (tests).
"""
from __future__ import annotations

import contextlib
import math
import os
import re
import resource
from pathlib import Path

from altmarl_ros.core._limits import ProcessLimit
from altmarl_ros.errors import AltmarlError

DEFAULT_SHARE = 0.5
FLAG = "--max-memory"
ENV_VAR = "ALTMARL_MAX_MEMORY"
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_CGROUP_LIMIT = Path("/sys/fs/cgroup/memory.max")


class BudgetError(AltmarlError):
    """An input asks for more memory (or a larger number) than the budget allows."""


def format_bytes(nbytes: float) -> str:
    """1536 -> "1.5 KiB"; sizes in binary units with four significant digits."""
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(value) < 1024 or unit == "PiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.4g} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def parse_size(text: str, field: str = FLAG) -> int:
    """'8G', '512M', '1.5GiB', '4e9' -> bytes (binary units; B/iB suffix optional)."""
    match = _SIZE.match(str(text))
    if not match:
        raise BudgetError(f"{field} {text!r}: give a size such as 8G, 512M or 2000000000 (bytes)")
    value = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if not 1 <= value < 2 ** 63:
        raise BudgetError(f"{field} {text!r}: must be at least 1 byte and below 8 EiB")
    return int(value)


def machine_ram() -> int:
    """Physical RAM in bytes, or the cgroup (container) memory limit when that is lower."""
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    with contextlib.suppress(OSError, ValueError):
        text = _CGROUP_LIMIT.read_text().strip()
        if text != "max":
            ram = min(ram, int(text))
    return ram


def default_limit() -> int:
    return int(DEFAULT_SHARE * machine_ram())


_LIMIT = ProcessLimit(ENV_VAR, parse_size, default_limit, kind=int)
limit = _LIMIT.get  # the budget in bytes: --max-memory, else ALTMARL_MAX_MEMORY, else DEFAULT_SHARE of the RAM
set_limit = _LIMIT.set  # the budget for this process (None: back to the default)
limited = _LIMIT.limited  # the budget inside a with-block


def process_headroom() -> tuple[float, str]:
    """(bytes this process can still allocate under hard limits, which limit binds); inf if none.

    The budget alone is not enough: under `ulimit -v` (RLIMIT_AS) or `ulimit -d` (RLIMIT_DATA)
    an allocation fails long before the RAM is used, and inside a numba `prange` such a
    failure is not raised, so the rollout goes on with garbage. Counted here: the address
    space (and data segment) left under those limits, and what a cgroup memory.max leaves.
    """
    status = _proc_status()
    best, which = math.inf, ""
    for name, used_key, label in ((resource.RLIMIT_AS, "VmSize", "ulimit -v (RLIMIT_AS)"),
                                  (resource.RLIMIT_DATA, "VmData", "ulimit -d (RLIMIT_DATA)")):
        soft, _ = resource.getrlimit(name)
        if soft != resource.RLIM_INFINITY and used_key in status:
            left = soft - status[used_key]
            if left < best:
                best, which = left, f"left under {label} = {format_bytes(soft)}"
    with contextlib.suppress(OSError, ValueError):
        text = _CGROUP_LIMIT.read_text().strip()
        if text != "max":
            left = int(text) - int(_CGROUP_LIMIT.with_name("memory.current").read_text())
            if left < best:
                best, which = left, f"left under the cgroup's memory.max = {format_bytes(int(text))}"
    return float(max(best, 0.0)), which


def _proc_status() -> dict:
    """VmSize, VmData ... of /proc/self/status in bytes ({} where there is no /proc)."""
    values = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
                values[key] = int(parts[0]) * 1024
    return values


def require(what: str, nbytes: float, fix: str = "") -> None:
    """Raise BudgetError unless `nbytes` (may be a float: sizes overflow int64) fits the budget
    and what the process's hard limits leave (process_headroom).

    `what` names the allocation and the input it comes from ("G-LEARN's Q for k = 400"),
    `fix` says how to need less ("use a smaller --k").
    """
    budget = limit()
    headroom, binding = process_headroom()
    if math.isfinite(nbytes) and nbytes <= min(budget, headroom):
        return
    size = "more than 8 EiB" if not math.isfinite(nbytes) or nbytes >= 2 ** 63 else format_bytes(nbytes)
    if headroom < budget:
        advice = f"{fix}, or raise that limit" if fix else "raise that limit"
        raise BudgetError(f"{what} needs {size}, over the memory budget of {format_bytes(headroom)} "
                          f"({binding}): {advice}")
    source = _LIMIT.source(FLAG)
    if source == "default":
        source = f"default: {DEFAULT_SHARE:.0%} of {format_bytes(machine_ram())} RAM"
    advice = f"{fix}, or raise {FLAG}" if fix else f"raise {FLAG}"
    raise BudgetError(f"{what} needs {size}, over the memory budget of {format_bytes(budget)} "
                      f"({source}): {advice}")


def array_bytes(shape, itemsize: int) -> float:
    """Bytes of an array of `shape` (a float: a hostile shape overflows int64)."""
    return float(itemsize) * math.prod(float(d) for d in shape)
