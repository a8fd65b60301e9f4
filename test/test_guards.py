"""The guard helpers on their own: the memory budget, safe YAML/.npz reading, atomic-write leftovers."""
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from altmarl_ros.core import budget
from altmarl_ros.core.atomic import OutputError, check_output, check_output_dir, remove_leftovers, write_atomic
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


# ---------------------------------------------------------------------------------------------- issue 25
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_oversized_evaluate_under_ulimit_v_is_refused_with_the_budget_line(tmp_path):
    """Under `ulimit -v` (RLIMIT_AS) an evaluate whose rollout state fits the RAM budget but not the
    address space left is refused with the budget line, never a number (a failed allocation inside
    the numba prange used to print welfare 1.647 +- 20.9)."""
    from altmarl_ros.core.model import load_model, save_model
    from altmarl_ros.core.policy import build_policy, save_policy

    game = load_model(os.path.join(ROOT, "config", "models", "warehouse.yaml"))
    save_model(game, tmp_path / "m.npz")
    from altmarl_ros.core.counts import n_count_vectors

    n_f = n_count_vectors(2, game.n_sl)
    save_policy(build_policy(np.zeros((game.n_sg, n_f), np.int32),
                             np.full((game.n_sl, game.n_sg, game.n_al), 1.0 / game.n_al), 2, game=game),
                tmp_path / "p.npz")
    limit = 3 << 30  # 3 GiB of address space: numba and numpy load in ~1.5 GiB of it

    # `ulimit -v` as a user sets it (no preexec_fn: Python in a forked child can deadlock in a threaded worker)
    argv = ["bash", "-c", f'ulimit -v {limit // 1024} && exec "$@"', "bash", sys.executable, "-m", "altmarl_ros.cli",
            "evaluate", "--model", "m.npz", "--policy", "p.npz",
            "--n", "200000000", "--horizon", "2", "--seeds", "1", "--rollouts", "2", "--no-baselines", "--quiet",
            "--max-memory", "64G"]
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NUMBA_NUM_THREADS": "2"})
    assert done.returncode == 2, done.stderr
    assert done.stdout == "", "a number was printed"
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert re.search(r"rollout state of n = 200000000 agents .* needs [\d.]+ GiB, over the memory budget of "
                     r"[\d.]+ [GM]iB \(left under ulimit -v \(RLIMIT_AS\) = 3 GiB\)", lines[0]), lines[0]


def test_headroom_counts_the_address_space_left(tmp_path):
    """process_headroom against /proc's own VmSize: the limit minus what is mapped, in a child."""
    code = ("import resource; from altmarl_ros.core import budget; "
            "resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30)); "
            "left, which = budget.process_headroom(); status = budget._proc_status(); "
            "print(left, status['VmSize'], which)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    left, mapped, *which = done.stdout.split()
    assert abs(float(left) - ((4 << 30) - int(mapped))) < 64 << 20  # a few allocations between the two reads
    assert " ".join(which) == "left under ulimit -v (RLIMIT_AS) = 4 GiB"


def test_a_cgroup_memory_limit_lowers_the_ram_and_the_headroom_and_is_named(tmp_path, monkeypatch):
    """A container's memory.max below the RAM is the RAM the default budget is a share of, and what it leaves
    (memory.max - memory.current) is the headroom, named; "max" (no limit) leaves both as they were."""
    limit_file = tmp_path / "memory.max"
    (tmp_path / "memory.current").write_text("300000000\n")
    monkeypatch.setattr(budget, "_CGROUP_LIMIT", limit_file)
    monkeypatch.delenv(budget.ENV_VAR, raising=False)
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit_file.write_text("max\n")
    assert budget.machine_ram() == ram
    assert budget.process_headroom()[0] == float("inf") or "cgroup" not in budget.process_headroom()[1]
    limit_file.write_text("1000000000\n")
    assert budget.machine_ram() == 1_000_000_000
    assert budget.limit() == int(budget.DEFAULT_SHARE * 1_000_000_000)
    left, which = budget.process_headroom()
    assert (left, which) == (700_000_000.0, "left under the cgroup's memory.max = 953.7 MiB")
    with budget.limited(900_000_000):  # a budget above what the cgroup leaves: the cgroup binds
        budget.require("x", 700_000_000)  # exactly what is left fits
        with pytest.raises(budget.BudgetError, match=r"x needs 667\.6 MiB, over the memory budget of 667\.6 MiB "
                                                     r"\(left under the cgroup's memory.max = 953\.7 MiB\): raise "
                                                     r"that limit"):
            budget.require("x", 700_000_001)


def test_the_default_budget_is_named_with_its_share_of_the_ram(monkeypatch):
    monkeypatch.delenv(budget.ENV_VAR, raising=False)
    monkeypatch.setattr(budget, "process_headroom", lambda: (float("inf"), ""))
    ram = budget.machine_ram()
    share = f"{budget.DEFAULT_SHARE:.0%} of {budget.format_bytes(ram)} RAM"
    with pytest.raises(budget.BudgetError, match=re.escape(f"(default: {share}): fewer, or raise --max-memory")):
        budget.require("y", ram, "fewer")


NAMES = ["amr_1", "a", "_a", "a__b", "a/b", "robot_0/arm", "A9", "1a", "a//b", "a/", "/a", "a b", "a-b", "a.b",
         "~a", "a/{x}", "", "é", "a/1b", "a" * 199, "a" * 201]


@pytest.mark.parametrize("name", NAMES)
def test_robot_name_rules_match_rclpy(name):
    """names.check_relative_name accepts exactly what rclpy's own namespace validator accepts (as
    the absolute namespace /<name>) within the length altmarl allows."""
    from rclpy.exceptions import InvalidNamespaceException
    from rclpy.validate_namespace import validate_namespace

    from altmarl_ros.errors import ConfigError
    from altmarl_ros.names import MAX_NAME_CHARS, check_relative_name

    try:
        validate_namespace("/" + name)
        rclpy_ok = bool(name) and len(name) <= MAX_NAME_CHARS
    except InvalidNamespaceException:
        rclpy_ok = False
    try:
        check_relative_name(ConfigError, "robot_names[0]", name, "a robot name")
        ours = True
    except ConfigError:
        ours = False
    assert ours == rclpy_ok


def test_count_vectors_beyond_any_table_are_refused_quickly():
    """n_count_vectors refuses (by the log-gamma size) what math.comb takes 40 s on, and still
    counts exactly below the cap (independent: the stars-and-bars closed form for tiny cases)."""
    import math
    import time

    from altmarl_ros.core.counts import CountsError, n_count_vectors

    started = time.process_time()
    with pytest.raises(CountsError, match="far beyond any table"):
        n_count_vectors(3_000_000, 3_000_000)
    assert time.process_time() - started < 1.0
    assert n_count_vectors(400, 5) == math.comb(404, 4)
    assert [n_count_vectors(k, 3) for k in range(5)] == [(k + 1) * (k + 2) // 2 for k in range(5)]


@pytest.mark.parametrize("text, seconds", [("90", 90.0), ("90s", 90.0), ("30m", 1800.0), ("12h", 43200.0),
                                           ("2d", 172800.0), ("1.5h", 5400.0), ("1e3", 1000.0)])
def test_work_durations_parse(text, seconds):
    from altmarl_ros.core import work

    assert work.parse_duration(text) == seconds


def test_work_ceiling_names_count_estimate_ceiling_and_flag():
    from altmarl_ros.core import work

    with work.limited(10.0):
        assert work.require("x", {"agent-steps": work.RATES["agent-steps"] * 10}, "less") == pytest.approx(10.0)
        with pytest.raises(work.WorkError, match=r"x: 1\.65e\+09 agent-steps, about 11 s on this kind of machine, "
                                                 r"over the work ceiling of 10 s \(--max-work\): less, or raise "
                                                 r"--max-work"):
            work.require("x", {"agent-steps": work.RATES["agent-steps"] * 11}, "less")


def test_outputs_refuse_devices_fifos_and_long_names(tmp_path):
    os.mkfifo(tmp_path / "fifo.npz")
    for path in ("/dev/null", tmp_path / "fifo.npz"):
        with pytest.raises(OutputError, match="is a special file"):
            check_output(path)
    (tmp_path / "link.npz").symlink_to("/dev/zero")
    with pytest.raises(OutputError, match="is a special file"):
        check_output(tmp_path / "link.npz")
    name_max = os.pathconf(tmp_path, "PC_NAME_MAX")
    # 22 bytes for the temporary name: "." + "." + 7 pid digits + "-" + 8 random characters + ".tmp"
    longest = "p" * (name_max - 22)
    check_output(tmp_path / longest)  # accepted, and the atomic write (temporary name included) works
    write_atomic(tmp_path / longest, b"x")
    assert (tmp_path / longest).read_bytes() == b"x"
    with pytest.raises(OutputError, match=rf"the file name is {len(longest) + 1} bytes; .* within {name_max}: "
                                          rf"use a name of at most {len(longest)} bytes"):
        check_output(tmp_path / (longest + "p"))


def test_unnamed_leftovers_are_removed_once_an_hour_old_and_kept_before(tmp_path):
    """A temporary file named without a pid has no writer to ask: docs (core/atomic.py) say it is a
    leftover once an hour old; one a minute either side of that is kept or removed."""
    now = time.time()
    young, old = tmp_path / ".P.npz.abc.tmp", tmp_path / ".P.npz.def.tmp"
    for path, age in ((young, 3600 - 60), (old, 3600 + 60)):
        path.write_bytes(b"half")
        os.utime(path, (now - age, now - age))
    assert remove_leftovers(tmp_path / "P.npz") == [old]
    assert young.exists() and not old.exists()


def test_the_name_length_is_asked_of_the_nearest_existing_directory(tmp_path, monkeypatch):
    """An output in directories still to be made is checked against the file system it will be on: the
    nearest existing ancestor's NAME_MAX (here a stub: 100 bytes in `small`, 255 elsewhere)."""
    from altmarl_ros.core import atomic

    small = tmp_path / "small"
    small.mkdir()
    real = os.pathconf
    monkeypatch.setattr(atomic.os, "pathconf",
                        lambda path, name: 100 if Path(path) == small else real(path, name))
    name = "p" * (100 - 22 + 1)  # one byte over: 22 = "." + "." + 7 pid digits + "-" + 8 random + ".tmp"
    with pytest.raises(OutputError, match=f"the file name is {len(name)} bytes.*within 100: use a name of at most 78 "):
        check_output(small / "new" / "deeper" / name)
    check_output(small / "new" / "deeper" / name[1:])
    assert not (small / "new" / "deeper" / name[1:]).exists()


def test_an_unnamed_leftover_exactly_an_hour_old_is_kept(tmp_path, monkeypatch):
    """'Older than an hour' (core/atomic.py): at exactly 3600 s it is kept, just past it removed."""
    from altmarl_ros.core import atomic

    leftover = tmp_path / ".P.npz.abc.tmp"
    leftover.write_bytes(b"half")
    os.utime(leftover, ns=(10**18, 10**18))
    for now, kept in ((1e9 + 3600.0, True), (np.nextafter(1e9 + 3600.0, np.inf), False)):
        monkeypatch.setattr(atomic.time, "time", lambda now=now: float(now))
        assert (remove_leftovers(tmp_path / "P.npz") == []) is kept and leftover.exists() is kept


def test_asking_whether_a_writer_lives_sends_it_no_signal(tmp_path, monkeypatch):
    """A live writer's leftover is kept, and the writer is only asked (signal 0), not signalled; one
    whose pid belongs to another user (kill answers EPERM) counts as alive too."""
    from altmarl_ros.core import atomic

    # a writer on every signal's default action (not the ignored SIGHUP a shell may hand down)
    code = ("import signal, time; [signal.signal(s, signal.SIG_DFL) for s in signal.valid_signals() "
            "if s not in (signal.SIGKILL, signal.SIGSTOP)]; print(flush=True); time.sleep(60)")
    writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        writer.stdout.readline()
        live = tmp_path / f".P.npz.{writer.pid}-abc.tmp"
        live.write_bytes(b"half")
        assert remove_leftovers(tmp_path / "P.npz") == [] and live.exists()
        with pytest.raises(subprocess.TimeoutExpired):  # still running a moment later
            writer.wait(timeout=0.2)
    finally:
        writer.kill()
        writer.wait()

    def not_permitted(pid, sig):
        raise PermissionError(1, "Operation not permitted")
    monkeypatch.setattr(atomic.os, "kill", not_permitted)
    assert remove_leftovers(tmp_path / "P.npz") == [] and live.exists()


@pytest.mark.parametrize("mode, read_only", [(0o444, True), (0o555, True), (0o000, True),
                                             (0o200, False), (0o020, False), (0o002, False)])
def test_a_file_with_no_write_bit_is_read_only_and_any_one_write_bit_is_enough(tmp_path, mode, read_only):
    out = tmp_path / "p.npz"
    out.write_bytes(b"keep")
    out.chmod(mode)
    if read_only:
        with pytest.raises(OutputError, match="the file exists and is read-only"):
            check_output(out)
    else:
        assert check_output(out) == out


def test_an_existing_output_is_refused_only_when_it_is_an_input(tmp_path):
    """Overwriting an earlier output is allowed; the same file under another name (a hard link or a
    symlink to an input) is refused."""
    model, old = tmp_path / "m.npz", tmp_path / "p.npz"
    model.write_bytes(b"model")
    old.write_bytes(b"earlier output")
    assert check_output(old, [model]) == old
    os.link(model, tmp_path / "hard.npz")
    (tmp_path / "soft.npz").symlink_to(model)
    for alias in ("hard.npz", "soft.npz"):
        with pytest.raises(OutputError, match="is also an input"):
            check_output(tmp_path / alias, [model])


def test_an_output_outside_its_directory_is_refused_whatever_its_name(tmp_path):
    runs = tmp_path / "runs"
    for name in ("a.npz", "z.npz"):  # names sorting before and after the directory's
        with pytest.raises(OutputError, match="outside its output directory"):
            check_output(tmp_path / "runs" / ".." / name, inside=runs)
    assert check_output(runs / "p.npz", inside=runs) == runs / "p.npz"
    with pytest.raises(OutputError, match="is a directory"):  # the directory itself is inside it
        check_output(runs, inside=runs)


def test_without_pathconf_a_name_may_take_255_bytes(tmp_path, monkeypatch):
    """Where the file system cannot be asked, NAME_MAX is Linux's 255; the path in the message is cut
    to its first 80 characters."""
    from altmarl_ros.core import atomic

    def unanswered(path, name):
        raise OSError(22, "Invalid argument")
    monkeypatch.setattr(atomic.os, "pathconf", unanswered)
    check_output(tmp_path / ("p" * (255 - 22)))
    too_long = tmp_path / ("p" * (255 - 21))
    with pytest.raises(OutputError) as refused:
        check_output(too_long, flag="--out")
    assert str(refused.value) == (f"--out {str(too_long)[:80]}...: the file name is 234 bytes; with the temporary "
                                  f"suffix of an atomic write it must stay within 255: use a name of at most 233 bytes")
def test_a_place_where_no_file_can_be_made_is_named_with_the_system_reason(tmp_path):
    (tmp_path / "x.npz").write_bytes(b"a file, not a directory")
    with pytest.raises(OutputError) as refused:
        check_output(tmp_path / "x.npz" / "p.npz")
    assert str(refused.value) == f"--out {tmp_path}/x.npz/p.npz: cannot write there (File exists); " \
                                 f"choose a writable location"


def test_an_atomic_write_keeps_the_old_files_mode_and_gives_a_new_one_0644(tmp_path):
    """mkstemp makes 0600 files; the replaced file must keep its own mode bits, every one of them."""
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text("a")
    old.chmod(0o751)
    write_atomic(old, "b")
    write_atomic(new, "c")
    assert (old.stat().st_mode & 0o7777, new.stat().st_mode & 0o7777) == (0o751, 0o644)
    assert (old.read_text(), new.read_text()) == ("b", "c")


def test_outputs_named_before_or_after_an_input_are_not_that_input(tmp_path):
    model = tmp_path / "m.npz"
    model.write_bytes(b"model")
    for name in ("a.npz", "z.npz"):
        assert check_output(tmp_path / name, [model]) == tmp_path / name
    # a name the file system refuses to look up (over NAME_MAX) is not an input either: it is named too long
    with pytest.raises(OutputError, match="the file name is 300 bytes"):
        check_output(tmp_path / ("p" * 300), [model])


def test_an_output_directory_may_exist_or_be_made_but_not_be_a_file(tmp_path):
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(OutputError, match="--frames .*file exists and is not a directory; give a directory"):
        check_output_dir(tmp_path / "file", flag="--frames")
    (tmp_path / "old").mkdir()
    for name in ("old", "new/deeper"):
        assert check_output_dir(tmp_path / name, flag="--frames") == tmp_path / name
        assert list((tmp_path / name).iterdir()) == []  # made if needed, the probe gone
