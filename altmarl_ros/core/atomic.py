"""Safe outputs: atomic writes, and output paths checked before any work starts.

The data goes to a temporary file in the destination's directory (same file
system, so `os.replace` is atomic), is flushed and fsynced, then renamed over
the destination. On any failure the temporary file is removed and the old
destination, if any, is left untouched. A process killed inside that window
leaves its temporary file behind; its name carries the writer's pid
(`.<name>.<pid>-<random>.tmp`), and the next write to the same destination
removes leftovers whose writer is gone.

`check_output` is what a command calls on each output path before it starts
working: the path must not be one of the command's inputs, must stay inside the
directory it was built in, and must be writable (checked by creating and
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


def check_output(path, inputs=(), *, flag: str = "--out", inside=None) -> Path:
    """`path`, after checking (before any work) that writing it is safe; see the module docstring.

    `inputs`: files the command reads (None entries are skipped). `inside`: the output
    directory `path` must stay in (for paths built from names read from files).
    """
    path = Path(path)
    for source in inputs:
        if source is not None and _same_file(path, Path(source)):
            raise OutputError(f"{flag} {path} is also an input of this command ({source}); "
                              f"writing it would destroy the input: choose another {flag}")
    if inside is not None:
        root = Path(inside).resolve()
        if root != path.resolve() and root not in path.resolve().parents:
            raise OutputError(f"{flag} {path} is outside its output directory {inside}; "
                              f"use a plain name without '..' or '/'")
    if path.is_dir():
        raise OutputError(f"{flag} {path} is a directory; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent)
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        raise OutputError(f"{flag} {path}: cannot write there ({err.strerror or err}); "
                          f"choose a writable location") from None
    if path.exists() and not path.stat().st_mode & 0o222:  # mode bits: root may write anything
        raise OutputError(f"{flag} {path}: the file exists and is read-only; choose another {flag}")
    return path
