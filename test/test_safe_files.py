"""safe_files' guards on their own, against values fixed by hand or by docs/operations.md's Limits table.

Where the YAML guard's refusals are (line and column counted from 1, as editors do), its limits (64-bit
integers, aliases, the budget per byte), what it builds, and the edges of the .npz and JSON guards.
test_bad_inputs tries every fault on every file a command reads, through the CLI; these call the guards.
"""
import zipfile

import numpy as np
import pytest

from altmarl_ros.core import budget
from altmarl_ros.core.safe_files import (FileFormatError, clip_text, load_npz, load_yaml, npz_members,
                                         parse_json, parse_yaml)


@pytest.mark.parametrize("text, says", [
    ("a: 1\nb: 2\na: 3\n", "t: line 3, column 1: the key 'a' is given again (first at line 1); "),
    ("a: 1\nb:\n  c: 1\n\n  c: 2\n", "t: line 5, column 3: the key 'c' is given again (first at line 3); "),
    ("a: 1\nb:\n  c: 1\n  yes: 2\n", "t: line 4, column 3: the key True is not text "),
    ("a: 1\nb: !!binary aGk=\n", "t: line 2, column 4: the tag tag:yaml.org,2002:binary is not allowed "),
    ("a: 1\n? [1, 2]\n: x\n", "t: line 2, column 3: the key [1, 2] is not text "),
])
def test_yaml_refusals_name_the_line_and_column_counted_from_one(text, says):
    with pytest.raises(FileFormatError) as info:
        parse_yaml(text, "t")
    assert str(info.value).startswith(says), str(info.value)


def test_a_key_nested_deeper_than_python_recurses_is_named_not_raised():
    """400 anchors, each a list holding the one before: 400 lines deep only through aliases (the nesting
    guard counts written levels) and short of the alias limit (about 400^2 / 2 = 80,000 nodes expanded),
    but constructing the last as a key recurses deeper than Python's 1000 frames."""
    n = 400
    text = "a0: &a0 [0]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, n + 1)) + f"? *a{n}\n: x\n"
    with pytest.raises(FileFormatError, match=r"^t: nested too deeply to read; flatten it$"):
        parse_yaml(text, "t")


def test_quoted_input_is_cut_to_200_characters_and_marked():
    assert clip_text("x" * 200) == "x" * 200
    assert clip_text("x" * 199 + "yz") == "x" * 199 + "y..."
    assert clip_text("abcdef", 3) == "abc..."


def test_yaml_integers_are_int64_and_at_most_30_digits_are_converted():
    """docs/operations.md: integers within 64 bits (30 digits at most before conversion)."""
    assert parse_yaml("a: 9223372036854775807\nb: -9223372036854775808\n", "t") == {"a": 2 ** 63 - 1, "b": -2 ** 63}
    for literal in ("9223372036854775808", "-9223372036854775809", "1" + "0" * 29):
        with pytest.raises(FileFormatError, match=rf"^t: line 1, column 4: the integer {literal} does not fit in 64 "):
            parse_yaml(f"a: {literal}\n", "t")
    with pytest.raises(FileFormatError, match=r"^t: line 1, column 4: an integer of 31 digits; integers must fit"):
        parse_yaml("a: 1" + "0" * 30 + "\n", "t")


def test_a_float_too_large_to_build_is_named_not_raised():
    """YAML 1.1's base-60 float 1:00:...:00.0 with 200 places is 60^200, beyond a float (OverflowError)."""
    with pytest.raises(FileFormatError, match=r"^t: not valid YAML \(a value does not fit its tag: int too large"):
        parse_yaml("a: 1" + ":00" * 200 + ".0\n", "t")


@pytest.mark.parametrize("cycles, refused", [(1, False), (2, True)])
def test_aliases_may_add_100000_nodes_and_a_cycle_counts_once(cycles, refused):
    """docs/operations.md: aliases add at most 100,000 nodes. A list l of 2438 scalars (2439 nodes) aliased
    41 times adds 41 * 2439 = 99,999; each self-holding list c: &c [*c] adds its one alias back to itself."""
    text = "".join(f"c{i}: &c{i} [*c{i}]\n" for i in range(cycles))
    text += "l: &l [" + ", ".join(["0"] * 2438) + "]\nr: [" + ", ".join(["*l"] * 41) + "]\n"
    if refused:
        with pytest.raises(FileFormatError, match=r"^t: its aliases expand \d+ YAML nodes to 1\.0\de\+05"):
            parse_yaml(text, "t")
    else:
        assert len(parse_yaml(text, "t")["r"]) == 41


def test_a_yaml_file_needs_200_bytes_of_budget_per_byte(tmp_path):
    """docs/operations.md: 200 bytes per byte of file within the budget."""
    path = tmp_path / "x.yaml"
    path.write_text("a: " + "x" * 4996 + "\n")  # 5000 bytes: 1,000,000 bytes of budget
    with budget.limited(1_000_000):
        assert load_yaml(path) == {"a": "x" * 4996}
    with budget.limited(999_999), pytest.raises(budget.BudgetError, match=r"x\.yaml: parsing this YAML file of "):
        load_yaml(path)


def test_json_nests_32_levels_at_most():
    """docs/operations.md: policy metadata at most 32 levels of nesting (lists and objects; a value in the
    innermost is not a level)."""
    expected = {"a": 1}
    for _ in range(31):
        expected = [expected]
    assert parse_json("[" * 31 + '{"a": 1}' + "]" * 31, "t") == expected
    with pytest.raises(FileFormatError, match=r"^t: JSON nested more than 32 levels deep"):
        parse_json("[" * 32 + '{"a": 1}' + "]" * 32, "t")


def test_a_mapping_that_holds_itself_loads_as_safe_load_builds_it():
    """What the guard lets through is built as yaml.safe_load builds it, self-reference included."""
    import yaml

    text = "a: &a {x: *a, y: [1, *a]}\n"
    for value in (parse_yaml(text, "t")["a"], yaml.safe_load(text)["a"]):
        assert value["x"] is value and value["y"][1] is value and value["y"][0] == 1


def test_a_file_that_cannot_be_read_is_named_with_the_systems_reason(tmp_path):
    with pytest.raises(FileFormatError, match=r"absent\.yaml: cannot read the YAML file \(No such file or "
                                              r"directory\)$"):
        load_yaml(tmp_path / "absent.yaml")
    with pytest.raises(FileFormatError, match=r": cannot read the YAML file \(Is a directory\)$"):
        load_yaml(tmp_path)


def test_npz_members_of_format_version_2_are_read(tmp_path):
    """numpy writes .npy format 2.0 when a header passes 64 KiB; its header length field is 4 bytes, not 2."""
    path = tmp_path / "v2.npz"
    with zipfile.ZipFile(path, "w") as archive, archive.open("x.npy", "w") as stream:
        np.lib.format.write_array(stream, np.arange(6.0).reshape(2, 3), version=(2, 0))
    assert npz_members(path)["x"][0] == (2, 3)
    assert load_npz(path)["x"].tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]


@pytest.mark.parametrize("value, dtype", [(np.bytes_(b"hi"), r"\|S2"),
                                          (np.datetime64("2024-01-01"), r"datetime64\[D\]")])
def test_npz_text_is_unicode_only(tmp_path, value, dtype):
    """One string member is allowed (metadata); bytes and dates are neither it nor numbers."""
    path = tmp_path / "a.npz"
    np.savez(path, name=value)
    with pytest.raises(FileFormatError, match=rf"a\.npz: name holds dtype {dtype}; save real numbers"):
        npz_members(path)
