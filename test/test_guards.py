"""The guard helpers on their own: the memory budget, safe YAML/.npz reading, atomic-write leftovers."""
import os
import subprocess
import sys

import numpy as np
import pytest

from altmarl_ros.core import budget
from altmarl_ros.core.atomic import OutputError, check_output, remove_leftovers, write_atomic
from altmarl_ros.core.safe_files import FileFormatError, load_yaml, npz_members, parse_yaml


@pytest.mark.parametrize("text, size", [("8G", 8 << 30), ("512M", 512 << 20), ("1.5GiB", 3 << 29),
                                        ("4e9", 4_000_000_000), ("100", 100), ("2 kB", 2048)])
def test_sizes_parse_in_binary_units(text, size):
    assert budget.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "G", "-1G", "0", "1Q", "9e30"])
def test_bad_sizes_are_refused(text):
    with pytest.raises(budget.BudgetError, match="--max-memory"):
        budget.parse_size(text)


def test_budget_is_a_share_of_ram_and_names_the_flag(monkeypatch):
    monkeypatch.delenv(budget.ENV_VAR, raising=False)
    assert budget.limit() == int(budget.DEFAULT_SHARE * budget.machine_ram())
    monkeypatch.setenv(budget.ENV_VAR, "3M")
    assert budget.limit() == 3 << 20
    with budget.limited(1 << 20):
        budget.require("a", 1 << 20)  # exactly the budget fits
        with pytest.raises(budget.BudgetError, match=r"a needs 1\.004 MiB, over the memory budget of 1 MiB "
                                                     r"\(--max-memory\): smaller, or raise --max-memory"):
            budget.require("a", (1 << 20) + 4096, "smaller")
        with pytest.raises(budget.BudgetError, match="more than 8 EiB"):
            budget.require("b", float("inf"))
    assert budget.limit() == 3 << 20


def test_yaml_anchors_within_reason_load_and_bombs_do_not():
    assert parse_yaml("a: &x [1, 2]\nb: *x\n", "t") == {"a": [1, 2], "b": [1, 2]}
    merged = parse_yaml("base: &b {x: 1}\nderived: {<<: *b, y: 2}\n", "t")
    assert merged["derived"] == {"x": 1, "y": 2}
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 6)]
    with pytest.raises(FileFormatError, match=r"t: its aliases expand \d+ YAML nodes to 1\.23e\+06"):
        parse_yaml("\n".join(lines), "t")
    with pytest.raises(FileFormatError, match="nested more than 64 levels deep"):
        parse_yaml("[" * 50_000, "t")


def test_yaml_must_be_utf8(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_bytes(b"a: \xff\n")
    with pytest.raises(FileFormatError, match=r"x\.yaml: the YAML file is not UTF-8 text \(byte 3 is b'\\xff'\)"):
        load_yaml(path)


def test_npz_headers_are_read_without_loading(tmp_path):
    path = tmp_path / "a.npz"
    np.savez(path, x=np.zeros((3, 4)), name=np.str_("hi"))
    members = npz_members(path)
    assert members["x"][0] == (3, 4) and members["name"][1].kind == "U"
    np.savez(path, z=np.zeros(2, complex))
    with pytest.raises(FileFormatError, match="z holds complex numbers"):
        npz_members(path)
    np.savez(path, x=np.zeros(1000))
    with budget.limited(4000):
        with pytest.raises(budget.BudgetError, match=r"needs 7\.812 KiB, over the memory budget of 3\.906 KiB"):
            npz_members(path)


def test_leftovers_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    target = tmp_path / "P.npz"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    dead_file = tmp_path / f".P.npz.{dead}-abc123.tmp"
    live_file = tmp_path / f".P.npz.{os.getppid()}-def456.tmp"
    other_file = tmp_path / f".Q.npz.{dead}-abc123.tmp"
    for path in (dead_file, live_file, other_file):
        path.write_bytes(b"half")
    write_atomic(target, b"whole")
    assert target.read_bytes() == b"whole"
    assert not dead_file.exists() and live_file.exists() and other_file.exists()
    assert remove_leftovers(tmp_path / "Q.npz") == [other_file]


def test_outputs_are_checked_before_work(tmp_path):
    model = tmp_path / "m.npz"
    model.write_bytes(b"x")
    with pytest.raises(OutputError, match="is also an input"):
        check_output(tmp_path / "sub" / ".." / "m.npz", [model])
    with pytest.raises(OutputError, match="outside its output directory"):
        check_output(tmp_path / "runs" / ".." / "p.npz", inside=tmp_path / "runs")
    assert check_output(tmp_path / "new" / "p.npz", [model]) == tmp_path / "new" / "p.npz"
    assert list((tmp_path / "new").iterdir()) == []  # the probe file is gone
