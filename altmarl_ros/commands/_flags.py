"""argparse types for numeric flags: ranges and int32/int64 limits checked once, where flags are parsed.

Kernels index with int32 (ranks, states) and count with int64; a flag that does not fit
would wrap around or fail deep inside numba. These types turn such a value into an
argparse usage error naming the flag's range.
"""
import argparse
import math

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


def count(minimum: int = 1, maximum: int = INT32_MAX):
    """An integer flag in [minimum, maximum] (default maximum: int32)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"{value} is out of range: use an integer in [{minimum}, {maximum}]")
        return value
    parse.__name__ = "integer"
    parse.bounds = (minimum, maximum, False, False)  # (low, high, low excluded, high excluded): test_flag_ranges
    return parse


def real(minimum: float = -math.inf, maximum: float = math.inf, *, above: bool = False, below: bool = False):
    """A finite float flag in [minimum, maximum]; above=True excludes the minimum, below=True the maximum."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        low_ok = value > minimum if above else value >= minimum
        high_ok = value < maximum if below else value <= maximum
        if not math.isfinite(value) or not low_ok or not high_ok:
            low, high = "(" if above else "[", ")" if below else "]"
            raise argparse.ArgumentTypeError(f"{text} is out of range: use a finite number in "
                                             f"{low}{minimum:g}, {maximum:g}{high}")
        return value
    parse.__name__ = "number"
    parse.bounds = (minimum, maximum, above, below)
    return parse


def memory_size(text: str) -> int:
    """--max-memory SIZE: bytes, or with a K/M/G/T suffix (binary units)."""
    from altmarl_ros.core.budget import BudgetError, parse_size

    try:
        return parse_size(text)
    except BudgetError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def work_duration(text: str) -> float:
    """--max-work DURATION: seconds, or with an m/h/d suffix."""
    from altmarl_ros.core.work import WorkError, parse_duration

    try:
        return parse_duration(text)
    except WorkError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
