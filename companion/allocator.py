"""The C allocator tuned for a daemon that runs for weeks: large buffers go back to the system.

glibc's malloc serves a block of 128 KiB or more with its own mmap, returned to the system when
freed, but each such free raises that threshold to the block's size (up to 32 MiB): from then on,
blocks of that size come from the heap, and a freed one stays in the process's resident memory
for as long as anything lives above it. The daemon makes such blocks on every chat switch and
summary (a KV state is megabytes to tens of megabytes, sized by the chat), so the resident memory
crept up as the chats grew. A fixed threshold keeps every block above it mapped on its own.
Elsewhere (musl, macOS) nothing is changed.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3       # glibc's mallopt parameter numbers (malloc.h)
MMAP_THRESHOLD = 1 << 20    # blocks of 1 MiB or more: mapped on their own, unmapped when freed


def keep_large_blocks_mapped(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold (which also stops it from moving); False where there is no mallopt."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = mallopt(M_MMAP_THRESHOLD, threshold) == 1
    if done:
        log.debug("malloc: blocks of %d bytes or more are mapped on their own", threshold)
    return done
