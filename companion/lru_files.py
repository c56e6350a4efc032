"""Folders of cached files bounded by size: the least recently used (oldest mtime) go first."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable


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
