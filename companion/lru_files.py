"""Folders of cached files bounded by size: the least recently used (oldest mtime) go first. Each
file is written to a temporary name, synced and renamed (write_atomically); what a crash left under a
temporary name is removed when the folder is opened again (remove_partials)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterable

log = logging.getLogger(__name__)


def write_whole(path: Path, data: bytes) -> None:
    """Write a file whole or not at all (write_atomically through path.partial): a crash or a full
    disk leaves neither half a file under the real name nor a stray .partial."""
    write_atomically(path, path.with_name(path.name + ".partial"), data)


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


def write_atomically(target: Path, partial: Path, *pieces: bytes | memoryview) -> None:
    """Write the pieces to partial, sync it to disk and rename it to target: a crash or a power cut
    leaves the old file or none under the target's name, never half a file."""
    try:
        with open(partial, "wb") as fh:
            for piece in pieces:
                fh.write(piece)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def remove_partials(folder: Path, pattern: str) -> list[str]:
    """Remove the files matching pattern in folder: writes a crash cut short, which never got their
    final name (call it at start, before anything writes to the folder). Returns their names."""
    removed = []
    for path in sorted(folder.glob(pattern)) if folder.is_dir() else []:
        path.unlink(missing_ok=True)
        removed.append(path.name)
    if removed:
        log.info("%s: removed %d writes a crash cut short (%s)", folder, len(removed), ", ".join(removed))
    return removed
