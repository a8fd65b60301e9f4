"""nodes/_stop.die_with_parent, a supervised child's first line, on both sides of its race: the supervisor
still its parent (the child runs on, SIGKILL armed for the supervisor's death) or already gone (the child
was re-parented before it armed the signal, so it kills itself at once)."""
import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1  # prctl(2)


def _child(supervisor: str):
    code = ("import os; from altmarl_ros.nodes._stop import die_with_parent; "
            f"die_with_parent({supervisor}); print('running')")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_a_child_of_a_live_supervisor_runs_on_and_one_whose_supervisor_is_gone_is_killed_at_once():
    alive = _child("os.getppid()")
    assert (alive.returncode, alive.stdout) == (0, "running\n"), alive.stderr
    orphan = _child("os.getppid() + 1")  # the pid it was told is not its parent: the supervisor died first
    assert (orphan.returncode, orphan.stdout) == (-signal.SIGKILL, ""), orphan.stderr


def test_die_with_parent_arms_the_death_signal_then_checks_the_parent(monkeypatch):
    """The same two sides in this process (what coverage can see: a killed child writes no data), with
    prctl and kill recorded instead of made."""
    from altmarl_ros.nodes import _stop

    calls = []

    class Libc:
        def prctl(self, option, value):
            calls.append(("prctl", option, value))
            return 0

    monkeypatch.setattr(_stop.ctypes, "CDLL", lambda *args, **kwargs: Libc())
    monkeypatch.setattr(_stop.os, "kill", lambda pid, sig: calls.append(("kill", pid, sig)))
    _stop.die_with_parent(os.getppid())
    assert calls == [("prctl", PR_SET_PDEATHSIG, signal.SIGKILL)]
    for other_parent in (os.getppid() + 1, os.getppid() - 1):  # any other pid, above or below the parent's
        calls.clear()
        _stop.die_with_parent(other_parent)
        assert calls == [("prctl", PR_SET_PDEATHSIG, signal.SIGKILL), ("kill", os.getpid(), signal.SIGKILL)]


def test_sigint_and_sigterm_each_become_the_stop_request():
    """catch_stop_signals: either signal, raised in this process, sets the event instead of ending it."""
    from altmarl_ros.nodes import _stop

    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        for signum in saved:
            signal.signal(signum, lambda *_: None)  # so a signal left uncaught fails the test, not the run
        for signum in saved:
            _stop.STOP_REQUESTED.clear()
            assert _stop.catch_stop_signals() is _stop.STOP_REQUESTED
            signal.raise_signal(signum)
            assert _stop.STOP_REQUESTED.is_set(), signal.Signals(signum).name
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
        _stop.STOP_REQUESTED.clear()
