"""One process owns a data dir: the embedded Chroma store is not safe for two writers."""

from __future__ import annotations

import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, run one daemon by hand
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = "companion.lock"


class DataDirBusy(RuntimeError):
    """Another process holds the data dir."""


class DataDirLock:
    """An exclusive advisory lock on <data_dir>/companion.lock, held while the process runs."""

    def __init__(self, data_dir: str | Path) -> None:
        self.path = Path(data_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> "DataDirLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise DataDirBusy(f"another companion process is using {self.path.parent}") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "DataDirLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def is_locked(data_dir: str | Path) -> bool:
    """Whether another process holds the data dir now."""
    try:
        DataDirLock(data_dir).acquire().release()
    except DataDirBusy:
        return False if fcntl is None else True
    return False
