"""Benchmark: the daemon's start-up and memory, with each embedder backend.

`companion serve` starts as a fresh process (the bundled model and embedder, an empty data dir)
with `[memory] embedder_backend` = "sentence-transformers" (torch) or "numpy", the two arms
alternating round by round. Measured from the process start: the first HTTP answer of
/api/status (`http_s`), both models loaded (`ready_s`), then one reply to a short message
(`first_reply_s`, the reply fully generated) and the process's resident memory after it
(`rss_mb`, VmRSS from /proc). Targets of issue #14: HTTP within 1 s, RSS at most 450 MB.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import requests

from .common import alternating, median, ratio, rounded
from .daemon import Daemon, is_ready

ARMS = ["sentence-transformers", "numpy"]


def rss_mb(pid: int) -> float:
    """A process's resident memory, in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


def one_start(backend: str, folder: Path) -> dict:
    config = folder / "config.toml"
    config.write_text(f'[memory]\nembedder_backend = "{backend}"\n[model]\nn_ctx = 2048\n'
                      '[generation]\nmax_tokens = 16\ntemperature = 0.0\nseed = 1\n')
    began = time.monotonic()
    daemon = Daemon(folder / "data", config, folder / "daemon.log")
    try:
        http = None
        while http is None:
            try:
                requests.get(daemon.url + "/api/status", timeout=5)
                http = time.monotonic() - began
            except requests.ConnectionError:
                time.sleep(0.02)
        daemon.wait_until(is_ready)
        ready = time.monotonic() - began
        requests.post(daemon.url + "/api/prompt", json={"prompt": "Hello!"}, timeout=120).raise_for_status()
        first_reply = time.monotonic() - began
        memory = rss_mb(daemon.process.pid)
    finally:
        daemon.stop()
    return {"http_s": http, "ready_s": ready, "first_reply_s": first_reply, "rss_mb": memory}


def run(rounds: int = 3) -> dict:
    """`rounds` fresh starts of each backend, interleaved."""
    runs: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    for i in range(rounds):
        for arm in alternating(i, ARMS):
            with tempfile.TemporaryDirectory() as folder:
                runs[arm].append(one_start(arm, Path(folder)))

    def summary(arm: str) -> dict:
        return {key: rounded(median([r[key] for r in runs[arm]]), 3)
                for key in ("http_s", "ready_s", "first_reply_s", "rss_mb")}

    result = {arm: summary(arm) for arm in ARMS}
    result["numpy_over_torch"] = {key: ratio(result["numpy"][key], result["sentence-transformers"][key])
                                  for key in ("http_s", "ready_s", "first_reply_s", "rss_mb")}
    result["targets"] = {"http_s": 1.0, "rss_mb": 450}
    result["rounds"] = rounds
    return result
