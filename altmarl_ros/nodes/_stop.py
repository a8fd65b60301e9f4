"""SIGINT/SIGTERM as a stop request that a node honours once it exists (no rclpy: installed first thing).

A node process that is signalled while it still imports or loads its kernels used to die of the
default action, before run_node could install its handlers, so it never stopped cleanly. A
supervised child installs these handlers before anything else; run_node installs them too and
reads the same request, so a stop that came early ends the node as soon as it is built.
"""
import ctypes
import os
import signal
import threading

STOP_REQUESTED = threading.Event()


def catch_stop_signals() -> threading.Event:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: STOP_REQUESTED.set())
    return STOP_REQUESTED


def die_with_parent(parent_pid: int) -> None:
    """SIGKILL this process if the supervisor (parent_pid) dies without stopping it.

    SIGKILL, not SIGTERM: a node's shutdown can hang (seen once: FastDDS busy-waiting in
    destroy_participant), and with the supervisor gone nobody would escalate. When the
    supervisor stops normally, it sends SIGTERM first and SIGKILL only after a grace period.
    Set here, first thing in the child, rather than in a preexec_fn: a preexec_fn runs Python
    in the forked child before exec, which can deadlock when the parent has other threads
    (JAX's, in a test worker that ran the FA learners), and CPython forks without running any
    Python when there is none.
    """
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # it died before the line above
        os.kill(os.getpid(), signal.SIGKILL)
