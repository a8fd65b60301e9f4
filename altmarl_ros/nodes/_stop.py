"""SIGINT/SIGTERM as a stop request that a node honours once it exists (no rclpy: installed first thing).

A node process that is signalled while it still imports or loads its kernels used to die of the
default action, before run_node could install its handlers, so it never stopped cleanly. A
supervised child installs these handlers before anything else; run_node installs them too and
reads the same request, so a stop that came early ends the node as soon as it is built.
"""
import signal
import threading

STOP_REQUESTED = threading.Event()


def catch_stop_signals() -> threading.Event:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: STOP_REQUESTED.set())
    return STOP_REQUESTED
