"""Every numeric flag of every command is refused just outside its range and accepted at and just inside it.

The range checks of `commands/_flags.count` and `real` are the whole class here: the flags are
found by walking `altmarl`'s own parser, so a flag added later is covered without a new row.
The expected answer at each edge comes from the range the flag's help and error message state
(`[low, high]`, `(low, ...` when the low end is excluded), checked at the edge itself and at the
nearest representable value on either side of it.
"""
import argparse
import math

import pytest

from altmarl_ros.cli import build_parser


def _command_actions():
    """(command, option or positional name, argparse action) for every argument of every `altmarl` command."""
    parser = build_parser()
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    return [(name, action.option_strings[-1] if action.option_strings else action.dest, action)
            for name, command in sorted(commands.choices.items()) for action in command._actions]


def _numeric_flags():
    """(command, option, type) for every flag whose type is a range-checked integer or number."""
    return [(name, option, action.type) for name, option, action in _command_actions()
            if hasattr(action.type, "bounds")]


FLAGS = _numeric_flags()


def _accepts(parse, value) -> bool:
    try:
        parse(repr(value))
    except argparse.ArgumentTypeError as err:
        assert "out of range" in str(err) and ("[" in str(err) or "(" in str(err)), err
        return False
    return True


def _edges(low, high, low_open, high_open, integer):
    """(value, accepted) at each finite edge: the edge itself, one step outside, one step inside."""
    step_out = (lambda x, toward: x + (1 if toward > x else -1)) if integer else math.nextafter
    rows = []
    ends = ((low, low_open, -math.inf, math.inf), (high, high_open, math.inf, -math.inf))
    for edge, is_open, outside, inside in ends:
        if math.isfinite(edge):
            rows += [(edge, not is_open), (step_out(edge, outside), False), (step_out(edge, inside), True)]
    return rows


def test_the_walk_finds_the_range_checked_flags_of_every_command():
    found = {(command, option) for command, option, _ in FLAGS}
    for command in ("train", "evaluate", "demo", "render", "launch"):
        assert any(name == command for name, _ in found), f"no numeric flag found for {command}"
    assert {("demo", "--duration"), ("demo", "--rollouts"), ("demo", "--seed")} <= found
    assert len(found) >= 20


def test_no_numeric_flag_escapes_the_range_types():
    """A flag typed plain int or float would take 2**40 or nan unchecked: every typed flag is range-checked,
    a path, or one of the two parsers of sizes and durations (tested in test_guards)."""
    from pathlib import Path

    from altmarl_ros.commands._flags import memory_size, work_duration

    for name, option, action in _command_actions():
        assert action.type in (None, Path, memory_size, work_duration) or hasattr(action.type, "bounds"), \
            f"{name} {option}: type {action.type!r} has no range check (use _flags.count/real)"


@pytest.mark.parametrize("command, option, parse", FLAGS, ids=[f"{c} {o}" for c, o, _ in FLAGS])
def test_each_edge_of_the_range_is_where_the_flag_says(command, option, parse):
    low, high, low_open, high_open = parse.bounds
    integer = parse.__name__ == "integer"
    assert low < high, f"{command} {option}: an empty range [{low}, {high}]"
    for value, accepted in _edges(low, high, low_open, high_open, integer):
        assert _accepts(parse, value) == accepted, f"{command} {option} = {value!r}: accepted should be {accepted}"
    if not integer:  # never a non-finite number, whatever the range
        for text in ("nan", "inf", "-inf"):
            assert not _accepts(parse, float(text)), f"{command} {option} = {text}"
