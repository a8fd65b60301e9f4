"""Safe outputs: atomic writes, and output paths checked before any work starts.

The data goes to a temporary file in the destination's directory (same file
system, so `os.replace` is atomic), is flushed and fsynced, then renamed over
the destination. On any failure the temporary file is removed and the old
destination, if any, is left untouched. A process killed inside that window
leaves its temporary file behind; its name carries the writer's pid
(`.<name>.<pid>-<random>.tmp`), and the next write to the same destination
removes leftovers whose writer is gone.

`check_output` (a file) and `check_output_dir` (a directory of outputs) are what
every command calls on each output path before it starts working: the path must
not be one of the command's inputs, must stay inside the directory it was built
in, must not be a directory or a special file (/dev/null), must leave room in
its name for the temporary suffix, and must be writable (checked by creating and
removing a probe file), so a bad --out fails in a second, not after training.
"""
from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from pathlib import Path

from altmarl_ros.errors import AltmarlError

# A temporary file named without a pid has no writer to ask about: it counts as a leftover once it is this old.
STALE_UNNAMED_SEC = 3600.0


class OutputError(AltmarlError):
    """An output path would overwrite an input, leave its directory, or cannot be written."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers(path) -> list:
    """Remove temporary files of earlier writes to `path` whose writer no longer runs."""
    path = Path(path)
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(?:(\d+)-)?[^/]*\.tmp$")
    removed = []
    with contextlib.suppress(OSError):
        for candidate in path.parent.iterdir():
            match = pattern.match(candidate.name)
            if not match:
                continue
            with contextlib.suppress(OSError):
                pid = match.group(1)
                stale = (not _alive(int(pid)) if pid else
                         time.time() - candidate.stat().st_mtime > STALE_UNNAMED_SEC)
                if stale and pid != str(os.getpid()):
                    candidate.unlink()
                    removed.append(candidate)
    return removed


@contextlib.contextmanager
def atomic_writer(path, mode: str = "wb"):
    """Yield a file object whose contents replace `path` only if the block succeeds."""
    path = Path(path)
    remove_leftovers(path)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file 0600; keep the old file's mode, or the usual 0644.
        os.fchmod(handle, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        with os.fdopen(handle, mode) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def write_atomic(path, data) -> None:
    """Replace `path` with `data` (str or bytes) atomically."""
    mode = "w" if isinstance(data, str) else "wb"
    with atomic_writer(path, mode) as stream:
        stream.write(data)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


# What atomic_writer adds to a name: ".<name>.<pid>-<8 random characters>.tmp" (pids below 10^7).
TEMP_NAME_EXTRA = len("..") + 7 + len("-12345678.tmp")


def _nearest_directory(path: Path) -> Path:
    """`path`'s parent, or its nearest existing ancestor (where pathconf can be asked)."""
    for candidate in (path.parent, *path.parent.parents):
        if candidate.is_dir():
            return candidate
    return Path(".")


def _check_not_input(path: Path, inputs, flag: str) -> None:
    for source in inputs:
        if source is not None and _same_file(path, Path(source)):
            raise OutputError(f"{flag} {path} is also an input of this command ({source}); "
                              f"writing it would destroy the input: choose another {flag}")


def _check_name_length(path: Path, flag: str) -> None:
    try:
        name_max = os.pathconf(_nearest_directory(path), "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    if len(os.fsencode(path.name)) + TEMP_NAME_EXTRA > name_max:
        raise OutputError(f"{flag} {str(path)[:80]}...: the file name is {len(os.fsencode(path.name))} bytes; with "
                          f"the temporary suffix of an atomic write it must stay within {name_max}: use a name of "
                          f"at most {name_max - TEMP_NAME_EXTRA} bytes")


def _probe_directory(directory: Path, path: Path, flag: str, name: str) -> None:
    """Create `directory` if needed and a temporary file `.<name>...tmp` in it, as the write will."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=f".{name}.{os.getpid()}-", suffix=".tmp", dir=directory)
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        raise OutputError(f"{flag} {path}: cannot write there ({err.strerror or err}); "
                          f"choose a writable location") from None


def check_output(path, inputs=(), *, flag: str = "--out", inside=None) -> Path:
    """`path`, after checking (before any work) that writing it is safe; see the module docstring.

    The one guard of every file a command writes. Refused: one of `inputs` (files the
    command reads; None entries skipped), a path outside `inside` (the output directory,
    for names read from files), a directory, a device, FIFO or socket (an atomic write
    would replace /dev/null with a regular file), a read-only file, a name too long for
    the temporary file, and a place where no file can be created.
    """
    path = Path(path)
    _check_not_input(path, inputs, flag)
    if inside is not None:
        root = Path(inside).resolve()
        if root != path.resolve() and root not in path.resolve().parents:
            raise OutputError(f"{flag} {path} is outside its output directory {inside}; "
                              f"use a plain name without '..' or '/'")
    _check_name_length(path, flag)  # first: the file system answers a longer name's is_dir with ENAMETOOLONG
    if path.is_dir():
        raise OutputError(f"{flag} {path} is a directory; give a file name")
    if path.exists() and not path.is_file():
        raise OutputError(f"{flag} {path} is a special file (a device, FIFO or socket), which a write would "
                          f"replace: give a regular file name")
    _probe_directory(path.parent, path, flag, path.name)
    if path.exists() and not path.stat().st_mode & 0o222:  # mode bits: root may write anything
        raise OutputError(f"{flag} {path}: the file exists and is read-only; choose another {flag}")
    return path


def check_output_dir(path, inputs=(), *, flag: str) -> Path:
    """`path` as a directory a command writes files into, checked like check_output's files:
    not an existing file (an input or otherwise), and a file can be created in it."""
    path = Path(path)
    _check_not_input(path, inputs, flag)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{flag} {path} exists and is not a directory; give a directory")
    _probe_directory(path, path, flag, "probe")
    return path
