"""The environment a command runs in, checked at start: one line naming the variable, never a traceback.

rclpy, numba and Python itself read the environment at awkward moments: a bad
ROS_DOMAIN_ID fails (or, for -1, silently means domain 0) when the first node is built,
an unwritable log or numba cache directory fails on the first node or the first
kernel, NUMBA_NUM_THREADS=0 fails when numba is imported, and a deleted working
directory fails when the first relative path is resolved. `check_environment(command)`
runs all the checks that command needs before it starts working; `check_stdout`
refuses a standard output that cannot take the result (/dev/full).
"""
from __future__ import annotations

import os
import re
import stat
import sys
from pathlib import Path

from altmarl_ros.core import budget, work
from altmarl_ros.errors import AltmarlError

ROS_COMMANDS = ("launch", "demo")  # commands that start ROS 2 nodes
MAX_ROS_DOMAIN_ID = 232  # rmw's port formula overflows above it on Linux
DISCOVERY_RANGES = ("SUBNET", "LOCALHOST", "OFF", "SYSTEM_DEFAULT")
MAX_NUMBA_THREADS = 1024


class EnvironmentProblem(AltmarlError):
    """An environment variable (or the working directory, or stdout) makes the command fail."""


def check_environment(command: str) -> None:
    """Every check `command` needs (ROS variables only for commands that start nodes)."""
    _check_cwd()
    for variable, parse in ((budget.ENV_VAR, budget.parse_size), (work.ENV_VAR, work.parse_duration)):
        if os.environ.get(variable):
            parse(os.environ[variable], variable)  # raises naming the variable
    _check_numba_threads()
    _check_numba_cache()
    if command in ROS_COMMANDS:
        _check_ros()


def _check_cwd() -> None:
    try:
        os.getcwd()
    except OSError as err:
        raise EnvironmentProblem(f"the current directory cannot be read ({err.strerror}; it was deleted?): "
                                 f"cd to an existing directory") from None


def _check_numba_threads() -> None:
    text = os.environ.get("NUMBA_NUM_THREADS")
    if text is not None and not (re.fullmatch(r"\s*[0-9]+\s*", text) and 1 <= int(text) <= MAX_NUMBA_THREADS):
        raise EnvironmentProblem(f"NUMBA_NUM_THREADS={text!r}: must be an integer in 1..{MAX_NUMBA_THREADS} "
                                 f"(unset it to use every core)")


def _writable_directory(path: Path) -> bool:
    """`path` is, or can be created as, a directory this process can write in: created (as the tool
    that writes there would) and probed with a temporary file (os.access says yes to root on /proc)."""
    import tempfile

    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            return True
    except OSError:
        return False


def _check_numba_cache() -> None:
    """numba caches compiled kernels next to their source or, where that is read-only, under
    NUMBA_CACHE_DIR or ~/.cache; with none writable every numeric command fails."""
    configured = os.environ.get("NUMBA_CACHE_DIR")
    if configured and not _writable_directory(Path(configured)):
        raise EnvironmentProblem(f"NUMBA_CACHE_DIR={configured}: not a writable directory; numba caches the "
                                 f"compiled kernels there: point it at one (or unset it)")
    source = Path(budget.__file__).parent / "__pycache__"
    if configured or _writable_directory(source):
        return
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    if not _writable_directory(cache):
        raise EnvironmentProblem(f"HOME={os.environ.get('HOME', '')}: numba cannot cache the compiled kernels "
                                 f"(the package directory and {cache} are read-only): set NUMBA_CACHE_DIR to a "
                                 f"writable directory")


def _check_ros() -> None:
    text = os.environ.get("ROS_DOMAIN_ID")
    if text is not None and text.strip() != "" and not (
            re.fullmatch(r"\s*[0-9]+\s*", text) and int(text) <= MAX_ROS_DOMAIN_ID):
        raise EnvironmentProblem(f"ROS_DOMAIN_ID={text!r}: must be an integer in 0..{MAX_ROS_DOMAIN_ID} "
                                 f"(0..101 is safe everywhere); every node of a fleet uses the same one")
    text = os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE")
    if text and text not in DISCOVERY_RANGES:
        raise EnvironmentProblem(f"ROS_AUTOMATIC_DISCOVERY_RANGE={text!r}: use one of {', '.join(DISCOVERY_RANGES)}")
    for variable, path in _ros_log_dirs():
        if not _writable_directory(path):
            raise EnvironmentProblem(f"{variable}={os.environ.get(variable, path)}: ROS 2 writes its node logs to "
                                     f"{path}, which is not a writable directory: point {variable} at one")


def _ros_log_dirs():
    """(variable, directory) of where rcl logging writes: ROS_LOG_DIR, else ROS_HOME/log, else ~/.ros/log."""
    if os.environ.get("ROS_LOG_DIR"):
        return [("ROS_LOG_DIR", Path(os.environ["ROS_LOG_DIR"]).expanduser())]
    if os.environ.get("ROS_HOME"):
        return [("ROS_HOME", Path(os.environ["ROS_HOME"]).expanduser() / "log")]
    return [("HOME", Path.home() / ".ros" / "log")]


def check_stdout() -> None:
    """Refuse, before any work, a stdout that can take nothing (/dev/full): the result would be lost."""
    try:
        fd = sys.stdout.fileno()
        mode, device = os.fstat(fd).st_mode, os.fstat(fd).st_rdev
        full = os.stat("/dev/full").st_rdev
    except (AttributeError, OSError, ValueError):  # a captured or closed stream, no /dev/full
        return
    if stat.S_ISCHR(mode) and device == full:
        raise EnvironmentProblem("stdout is /dev/full, which takes no output: the result would be lost; "
                                 "redirect stdout to a file or a pipe")
