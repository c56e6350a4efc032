"""The C allocator's tuning: freed large blocks (KV states) go back to the system."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from companion.allocator import keep_large_blocks_mapped

CHURN = textwrap.dedent("""
    import ctypes, sys
    from companion.allocator import keep_large_blocks_mapped

    def rss_mb():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

    if sys.argv[1] == "fixed":
        assert keep_large_blocks_mapped()
    start, kept = rss_mb(), []
    for i in range(16):
        size = (20 - i if i % 2 else 2 + i) << 20     # KV states of long and short chats taking turns
        state = ctypes.create_string_buffer(size)
        kept.append(ctypes.create_string_buffer(100_000))   # made meanwhile, and kept
        del state
    print(rss_mb() - start)
""")


def resident_growth(mode: str) -> float:
    done = subprocess.run([sys.executable, "-c", CHURN, mode], capture_output=True, text=True, timeout=60, check=True)
    return float(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc and /proc are Linux's")
def test_freed_kv_state_sized_blocks_leave_resident_memory():
    if not keep_large_blocks_mapped():
        pytest.skip("no glibc mallopt here (musl?)")
    default, fixed = resident_growth("default"), resident_growth("fixed")
    # glibc's moving threshold keeps freed blocks of up to 32 MiB on the heap, under what was made later
    assert default > 12 and fixed < 6, (default, fixed)
