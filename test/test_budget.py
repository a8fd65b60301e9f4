"""core.budget against documented values (docs/operations.md, Limits): binary units, the default of half
the RAM, which hard limit binds and how it is named, the size limits of its messages. The process's limits
and /proc are stubbed, so each case is exact (test_guards checks them against a real child process)."""
import math
import os
import resource
from pathlib import Path

import pytest

from altmarl_ros.core import budget

GIB = 1 << 30


@pytest.mark.parametrize("text, size", [("1", 1), ("1k", 1 << 10), ("1M", 1 << 20), ("1g", 1 << 30), ("1T", 1 << 40),
                                        ("1.5TiB", 3 << 39), ("9223372036854774784", 2**63 - 1024)])
def test_each_unit_is_a_power_of_1024_up_to_just_below_8_eib(text, size):
    assert budget.parse_size(text) == size


@pytest.mark.parametrize("text", ["9223372036854775808", "8388608T", "0.9"])  # 2^63 bytes, in bytes and in TiB
def test_sizes_from_8_eib_and_below_one_byte_are_refused(text):
    with pytest.raises(budget.BudgetError, match="must be at least 1 byte and below 8 EiB"):
        budget.parse_size(text)


@pytest.mark.parametrize("nbytes, text", [(0, "0 B"), (1023, "1023 B"), (1024, "1 KiB"), (1536, "1.5 KiB"),
                                          ((1 << 20) - 1, "1024 KiB"), (1 << 20, "1 MiB"), (GIB, "1 GiB"),
                                          (1 << 40, "1 TiB"), (1 << 50, "1 PiB"), (1 << 62, "4096 PiB")])
def test_sizes_are_named_in_the_largest_binary_unit_below_1024(nbytes, text):
    assert budget.format_bytes(nbytes) == text


def _machine(monkeypatch, tmp_path, cgroup_max="max", cgroup_current="0", status=None, rlimits=None):
    """Stub the cgroup files, /proc/self/status and the soft rlimits (None: unlimited)."""
    limit_file = tmp_path / "memory.max"
    limit_file.write_text(cgroup_max + "\n")
    (tmp_path / "memory.current").write_text(cgroup_current + "\n")
    monkeypatch.setattr(budget, "_CGROUP_LIMIT", limit_file)
    monkeypatch.setattr(budget, "_proc_status", lambda: dict(status or {}))
    soft = {resource.RLIMIT_AS: resource.RLIM_INFINITY, resource.RLIMIT_DATA: resource.RLIM_INFINITY,
            **(rlimits or {})}
    monkeypatch.setattr(resource, "getrlimit", lambda which: (soft[which], resource.RLIM_INFINITY))
    monkeypatch.delenv(budget.ENV_VAR, raising=False)


def test_the_default_budget_is_half_the_ram(monkeypatch, tmp_path):
    _machine(monkeypatch, tmp_path, cgroup_max=str(6 * GIB + 2))
    assert budget.machine_ram() == min(6 * GIB + 2, os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    assert budget.limit() == budget.machine_ram() // 2


def test_the_tightest_hard_limit_binds_and_is_named(monkeypatch, tmp_path):
    status = {"VmSize": 3 * GIB, "VmData": 1 * GIB}
    AS, DATA = resource.RLIMIT_AS, resource.RLIMIT_DATA
    # (rlimits, cgroup memory.max, memory.current) -> (headroom, named limit); ties go to the first checked
    for rlimits, cgroup, expected in (
            ({AS: 4 * GIB, DATA: 64 * GIB}, ("max", "0"), (GIB, "ulimit -v (RLIMIT_AS) = 4 GiB")),
            ({AS: 64 * GIB, DATA: 2 * GIB}, ("max", "0"), (GIB, "ulimit -d (RLIMIT_DATA) = 2 GiB")),
            ({AS: 5 * GIB, DATA: 3 * GIB}, ("max", "0"), (2 * GIB, "ulimit -v (RLIMIT_AS) = 5 GiB")),
            ({AS: 5 * GIB}, (str(8 * GIB), str(5 * GIB)), (2 * GIB, "ulimit -v (RLIMIT_AS) = 5 GiB")),
            ({AS: 5 * GIB}, (str(8 * GIB), str(6 * GIB)), (2 * GIB, "ulimit -v (RLIMIT_AS) = 5 GiB")),
            ({AS: 9 * GIB}, (str(8 * GIB), str(5 * GIB)), (3 * GIB, "the cgroup's memory.max = 8 GiB")),
            ({DATA: 9 * GIB}, (str(8 * GIB), str(7 * GIB)), (GIB, "the cgroup's memory.max = 8 GiB")),
            ({AS: 2 * GIB}, ("max", "0"), (0.0, "ulimit -v (RLIMIT_AS) = 2 GiB"))):  # over the limit already
        _machine(monkeypatch, tmp_path, *cgroup, status=status, rlimits=rlimits)
        headroom, which = budget.process_headroom()
        assert (headroom, which) == (expected[0], f"left under {expected[1]}"), (rlimits, cgroup)
    _machine(monkeypatch, tmp_path, status=status)
    assert budget.process_headroom() == (math.inf, "")


def test_sizes_from_8_eib_are_named_so(monkeypatch, tmp_path):
    _machine(monkeypatch, tmp_path)
    with budget.limited(GIB):
        for nbytes in (2.0**63, 1e19, math.inf, math.nan):
            with pytest.raises(budget.BudgetError, match=r"^z needs more than 8 EiB, over the memory budget of 1 GiB"):
                budget.require("z", nbytes)
        with pytest.raises(budget.BudgetError, match=r"^z needs 8192 PiB, over"):
            budget.require("z", 2.0**63 - 2**20)


def test_array_bytes_is_the_product_of_the_shape_and_the_item_size():
    assert budget.array_bytes((3, 4, 5), 8) == 480.0
    assert budget.array_bytes((), 4) == 4.0
    assert budget.array_bytes((2**40, 2**40), 8) == 2.0**83  # beyond int64, as a float


def _kb_lines(text):
    found = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if rest.split()[1:] == ["kB"]:
            found[key] = int(rest.split()[0]) * 1024
    return found


def test_the_process_status_is_read_in_bytes():
    """_proc_status: every "Key: N kB" line of /proc/self/status as N * 1024 bytes, nothing else (the values
    that did not move between two reads around it compared)."""
    before = _kb_lines(Path("/proc/self/status").read_text())
    status = budget._proc_status()
    after = _kb_lines(Path("/proc/self/status").read_text())
    assert set(status) == set(before) and "VmSize" in status and "Name" not in status
    steady = [key for key in before if before[key] == after[key]]
    assert "VmExe" in steady and all(status[key] == before[key] for key in steady)
