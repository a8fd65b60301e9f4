"""Atomic file writes: a reader never sees a half-written model, policy or table.

The data goes to a temporary file in the destination's directory (same file
system, so `os.replace` is atomic), is flushed and fsynced, then renamed over
the destination. On any failure the temporary file is removed and the old
destination, if any, is left untouched.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_writer(path, mode: str = "wb"):
    """Yield a file object whose contents replace `path` only if the block succeeds."""
    path = Path(path)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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
