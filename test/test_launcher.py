"""The in-package launcher's mechanics: start a node set in one process or several, stop it on a signal.

The launcher runs in a child process (as `altmarl launch` does) with stand-in
nodes (test/_launch_dummy_nodes.py); SIGTERM/SIGINT must stop every node
cleanly (each node's destroy_node ran), exit 0, and leave no process behind.
"""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

TEST_DIR = Path(__file__).resolve().parent
NAMES = ("alpha", "beta", "gamma")


def _start_launcher(marks: Path, processes: bool) -> subprocess.Popen:
    script = textwrap.dedent(f"""
        import sys
        from altmarl_ros import launcher
        launcher.NODE_CLASSES = {{"greeter": ("_launch_dummy_nodes", "Greeter")}}
        specs = [launcher.NodeSpec(kind="greeter", name=name, parameters={{"peers": {len(NAMES) - 1}}})
                 for name in {NAMES!r}]
        sys.exit(launcher.run(specs, processes={processes}))
    """)
    env = dict(os.environ, ALTMARL_TEST_MARKS=str(marks),
               PYTHONPATH=os.pathsep.join([str(TEST_DIR), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen([sys.executable, "-c", script], env=env)


def _wait_for(marks: Path, suffix: str, proc: subprocess.Popen, timeout: float = 40.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all((marks / f"{name}.{suffix}").exists() for name in NAMES):
            return
        assert proc.poll() is None, f"launcher exited early with {proc.returncode}"
        time.sleep(0.1)
    pytest.fail(f"nodes not {suffix} after {timeout} s: {sorted(p.name for p in marks.iterdir())}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


@pytest.mark.ros
@pytest.mark.parametrize("processes, signum", [(False, signal.SIGTERM), (True, signal.SIGTERM),
                                               (True, signal.SIGINT)])
def test_signal_stops_every_node_cleanly(tmp_path, processes, signum):
    proc = _start_launcher(tmp_path, processes)
    try:
        _wait_for(tmp_path, "ready", proc)
        pids = {int((tmp_path / f"{name}.pid").read_text()) for name in NAMES}
        assert (len(pids) == len(NAMES)) == processes  # one process per node, or all in the launcher
        proc.send_signal(signum)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert all((tmp_path / f"{name}.stopped").exists() for name in NAMES)
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in pids), "a node process outlived the launcher"


@pytest.mark.ros
def test_children_die_with_a_killed_launcher(tmp_path):
    proc = _start_launcher(tmp_path, processes=True)
    try:
        _wait_for(tmp_path, "ready", proc)
        pids = {int((tmp_path / f"{name}.pid").read_text()) for name in NAMES}
        proc.kill()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in pids), "a node process was orphaned"


@pytest.mark.ros
def test_a_node_that_fails_stops_the_run_with_its_name(tmp_path, monkeypatch):
    from altmarl_ros import launcher

    monkeypatch.setenv("ALTMARL_TEST_MARKS", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(TEST_DIR))
    monkeypatch.setattr(launcher, "NODE_CLASSES", {"greeter": ("_launch_dummy_nodes", "Greeter")})
    specs = [launcher.NodeSpec(kind="greeter", name="good", parameters={"peers": 1}),
             launcher.NodeSpec(kind="greeter", name="bad", parameters={"peers": "many"})]
    with pytest.raises(launcher.LaunchError, match=r"node /bad \(altmarl_greeter\) exited with code 2"):
        launcher.run(specs, processes=True, duration=60)
    assert (tmp_path / "good.stopped").exists()
