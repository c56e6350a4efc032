"""Load: 8 clients reading messages, status and memories while one generation streams.

Starts `companion serve` on a free loopback port with a fresh data dir, streams one long reply
(a few rounds), and meanwhile runs reader threads for a bounded time and request count.
Reports requests per second and p50/p99 latency per endpoint, and errors (target: none, and
reads p99 ≤ 100 ms during generation). Loopback only; bounded in requests and time.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from .daemon import Daemon, is_ready

ENDPOINTS = ("/api/messages", "/api/status", "/api/memories?limit=20")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def run(clients: int = 8, seconds: float = 30.0, max_requests: int = 20000, max_tokens: int = 300,
        quick: bool = False) -> dict:
    if quick:
        seconds, max_tokens = 8.0, 120
    data_dir = Path(tempfile.mkdtemp(prefix="companion-load-"))
    config = data_dir / "config.toml"
    config.write_text(f"[generation]\ntemperature = 0.7\nmax_tokens = {max_tokens}\n")
    daemon = Daemon(data_dir / "d", config, data_dir / "serve.log")
    url = daemon.url
    try:
        daemon.wait_until(is_ready, timeout=180)
        for n in range(20):
            requests.post(url + "/api/addData", json={"text": f"fact number {n} about the sea"}, timeout=30)

        latencies: dict[str, list[float]] = {e: [] for e in ENDPOINTS}
        errors: dict[str, int] = {e: 0 for e in ENDPOINTS}
        stop = threading.Event()
        count = [0]
        lock = threading.Lock()
        generating = threading.Event()

        def generation() -> None:
            while not stop.is_set():
                generating.set()
                with requests.post(url + "/api/prompt", json={"prompt": "Tell me a long story about the sea.",
                                                              "stream": True}, stream=True, timeout=300) as r:
                    for _ in r.iter_lines():
                        if stop.is_set():
                            break

        def reader(index: int) -> None:
            session = requests.Session()
            generating.wait(30)
            n = index
            while not stop.is_set():
                endpoint = ENDPOINTS[n % len(ENDPOINTS)]
                n += 1
                began = time.perf_counter()
                try:
                    ok = session.get(url + endpoint, timeout=10).status_code == 200
                except requests.RequestException:
                    ok = False
                elapsed = (time.perf_counter() - began) * 1000
                with lock:
                    latencies[endpoint].append(elapsed)
                    errors[endpoint] += not ok
                    count[0] += 1
                    if count[0] >= max_requests:
                        stop.set()

        threads = [threading.Thread(target=generation, daemon=True)]
        threads += [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(clients)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        stop.wait(seconds)
        stop.set()
        duration = time.perf_counter() - started
        requests.post(url + "/api/abort", timeout=10)
        for t in threads:
            t.join(timeout=30)
        per_endpoint = {
            e: {"requests": len(v), "errors": errors[e], "rps": round(len(v) / duration, 1),
                "p50_ms": round(percentile(v, 50), 1), "p99_ms": round(percentile(v, 99), 1),
                "median_ms": round(statistics.median(v), 1) if v else None}
            for e, v in latencies.items()}
        worst_p99 = max(r["p99_ms"] for r in per_endpoint.values())
        total_errors = sum(errors.values())
        return {
            "benchmark": "load",
            "clients": clients, "seconds": round(duration, 1), "max_tokens": max_tokens,
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "endpoints": per_endpoint,
            "total_requests": sum(len(v) for v in latencies.values()),
            "errors": total_errors,
            "targets": {"no_errors": total_errors == 0, "reads_p99_le_100ms": worst_p99 <= 100,
                        "worst_p99_ms": worst_p99},
        }
    finally:
        daemon.stop()


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
