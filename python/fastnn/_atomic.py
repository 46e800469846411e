"""Atomic file writes: write a temporary file beside the destination, then rename it into place.

``os.replace`` within one folder is atomic, so readers see either the old file or the complete
new one, and a crash or error mid-write leaves no partial file under the destination's name.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from pathlib import Path
from typing import Iterator


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's file-creation mask (read without changing it where /proc says it, else by
    setting and restoring it under a lock)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path in ``dest``'s folder; when the block finishes without error the
    file there is flushed to disk and renamed to ``dest``. It is deleted in every other case.

    The file ends up with the permissions of any newly created file (0666 less the umask), not
    the 0600 that ``mkstemp`` gives its temporary file."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        if hasattr(os, "fchmod"):  # POSIX; Windows has no mode bits to fix
            os.fchmod(fd, 0o666 & ~current_umask())
    finally:
        os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(dest: str | os.PathLike, data: bytes) -> None:
    """Writes ``data`` to ``dest`` atomically."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
