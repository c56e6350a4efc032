"""Read a GGUF file's metadata (key/value header) without loading the model."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, BinaryIO

SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
STRING, ARRAY = 8, 9
MAX_KEYS = 100_000


class GGUFError(ValueError):
    """Not a GGUF file, or a header that cannot be read."""


def _read(fh: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize(fmt)
    data = fh.read(size)
    if len(data) != size:
        raise GGUFError("the file ends inside its header")
    return struct.unpack(fmt, data)[0]


def _string(fh: BinaryIO, keep: bool = True) -> str | None:
    length = _read(fh, "<Q")
    if length > 1 << 30:
        raise GGUFError("a string in the header is implausibly long")
    if not keep:
        fh.seek(length, 1)
        return None
    data = fh.read(length)
    if len(data) != length:
        raise GGUFError("the file ends inside its header")
    return data.decode("utf-8", errors="replace")


def _value(fh: BinaryIO, kind: int, keep: bool) -> Any:
    if kind in SCALARS:
        return _read(fh, SCALARS[kind])
    if kind == STRING:
        return _string(fh, keep)
    if kind == ARRAY:
        item_kind, count = _read(fh, "<I"), _read(fh, "<Q")
        if item_kind in SCALARS and not keep:
            fh.seek(struct.calcsize(SCALARS[item_kind]) * count, 1)
            return None
        items = [_value(fh, item_kind, keep) for _ in range(count)]
        return items if keep else None
    raise GGUFError(f"unknown value type {kind} in the header")


def read_metadata(path: str | Path, keys: set[str] | None = None) -> dict[str, Any]:
    """The header's key/value pairs (only `keys` when given; arrays of other keys are skipped)."""
    with open(path, "rb") as fh:
        if fh.read(4) != b"GGUF":
            raise GGUFError(f"not a GGUF file: {path}")
        version = _read(fh, "<I")
        if version < 2:
            raise GGUFError(f"GGUF version {version} is too old")
        _read(fh, "<Q")  # tensor count
        count = _read(fh, "<Q")
        if count > MAX_KEYS:
            raise GGUFError("implausible number of header keys")
        found: dict[str, Any] = {"gguf.version": version}
        for _ in range(count):
            key = _string(fh)
            kind = _read(fh, "<I")
            keep = keys is None or key in keys
            # arrays (the vocabulary) are read only when asked for by name
            value = _value(fh, kind, keep and (kind != ARRAY or keys is not None))
            if keep and key is not None:
                found[key] = value
            if keys is not None and keys <= found.keys():
                break
        return found
