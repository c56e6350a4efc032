"""Folders of cached files bounded by size: the least recently used (oldest mtime) go first."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable


def write_whole(path: Path, data: bytes) -> None:
    """Write a file whole or not at all: a .partial renamed into place, removed when the write
    fails (a full disk leaves neither half a file under the real name nor a stray .partial)."""
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_bytes(data)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def trim_least_recent(files: Iterable[Path], max_bytes: int, keep: Path | None = None) -> None:
    """Remove the least recently used files until the rest (keep included) fit max_bytes; keep,
    the file just written, goes only when it alone is larger than the bound."""
    others = sorted((p for p in files if p != keep), key=lambda p: p.stat().st_mtime)
    total = sum(p.stat().st_size for p in others) + (keep.stat().st_size if keep and keep.exists() else 0)
    for path in others:
        if total <= max_bytes:
            break
        total -= path.stat().st_size
        path.unlink(missing_ok=True)
    if keep is not None and total > max_bytes:
        keep.unlink(missing_ok=True)
