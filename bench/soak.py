"""Benchmark: a long soak of one daemon, for leaks and for reads held up by generation.

`companion serve` on a fresh data dir (the bundled model, temperature 0, a few tokens per reply,
n_ctx 2048) gets `turns` generations in a row from a seeded script: prompts in three chats of two
companions (a change of chat saves and restores KV states), regenerates (new swipes of the last
reply), a memory added after about one turn in five; two `/api/events` streams stay open the
whole time. Every `sample_every` turns the daemon's resident memory (VmRSS), open file descriptors
and threads are read from /proc. A reader thread GETs a chat's messages and /api/status in turn
while the daemon generates; the latencies of reads that began during a generation are kept.

Reported against the targets of #28: RSS growth after warm-up <= 50 MB, no fd growth (counted
after warm-up and at the end once the daemon has been idle 5 s: a socket or KV state file in
flight at a sample is not growth; the samples taken while it works are reported beside), no
thread growth (the most in the five samples after warm-up against the most in the last five),
p99 of reads during generation <= 100 ms. A single run, not an A/B comparison: these are
absolute bounds, and the machine's noise shows in the p99.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import threading
import time
from pathlib import Path

import requests

from .common import median, percentile, rounded
from .daemon import Daemon, is_ready

RSS_GROWTH_MB = 50.0
COUNT_SAMPLES = 5      # fds and threads: the samples compared at each end (after warm-up, at the end)
IDLE_S = 5.0           # the daemon saves a chat's KV state 2 s after a turn; then its fds are counted
READ_P99_MS = 100.0
LINES = ["Good evening! How was your day?", "Tell me about the sea.", "What did you eat today?",
         "Do you like rainy days?", "I went for a long walk in the park.", "My sister Anna called me.",
         "What are you reading at the moment?", "I think I will bake bread tomorrow.",
         "The train was late again this morning.", "Do you remember what I told you about my garden?"]


def proc_sample(pid: int) -> dict:
    """The process's resident memory (MB), open fds and threads, from /proc."""
    rss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    fds = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            fds.append(os.readlink(fd))
        except OSError:      # closed meanwhile
            pass
    return {"rss_mb": rss, "fds": len(fds), "sockets": sum(f.startswith("socket:") for f in fds),
            "threads": len(list(Path(f"/proc/{pid}/task").iterdir()))}


def idle_sample(pid: int) -> dict:
    """A sample once the daemon has been idle IDLE_S: the KV state saved, connections closed."""
    time.sleep(IDLE_S)
    return proc_sample(pid)


class EventsReader(threading.Thread):
    """One `/api/events` stream held open, its events counted."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.events, self.response = url, 0, None

    def run(self) -> None:
        try:
            self.response = requests.get(self.url + "/api/events", stream=True, timeout=(10, 600))
            for line in self.response.iter_lines(decode_unicode=True):
                if line.startswith("event: "):
                    self.events += 1
        except (requests.RequestException, AttributeError):
            pass   # closed by close() at the end (urllib3 then reads from a connection it has let go)

    def close(self) -> None:
        if self.response is not None:
            self.response.close()


class Reader(threading.Thread):
    """GETs a chat's messages and /api/status in turn; keeps the latency of those begun during a generation."""

    def __init__(self, url: str, chat: int, generating: threading.Event) -> None:
        super().__init__(daemon=True)
        self.url, self.chat, self.generating = url, chat, generating
        self.stop = threading.Event()
        self.latencies: dict[str, list[float]] = {"messages": [], "status": []}
        self.errors = 0

    def run(self) -> None:
        paths = {"messages": f"/api/chats/{self.chat}/messages?limit=20", "status": "/api/status"}
        n = 0
        while not self.stop.is_set():
            if not self.generating.wait(timeout=0.2):
                continue
            name = ("messages", "status")[n % 2]
            n += 1
            began = time.perf_counter()
            try:
                ok = requests.get(self.url + paths[name], timeout=30).ok
            except requests.RequestException:
                ok = False
            elapsed = time.perf_counter() - began
            if not ok:
                self.errors += 1
            else:
                self.latencies[name].append(elapsed * 1000)
            self.stop.wait(0.05)


def setup(url: str) -> tuple[list[int], list[int]]:
    """Two companions and three chats; returns (companion ids, chat ids)."""
    first = requests.get(url + "/api/companionData", timeout=30).json()["id"]
    second = requests.post(url + "/api/companions", timeout=30, json={
        "name": "Mira", "description": "{{char}} is a cheerful gardener who talks about plants and the weather."})
    second.raise_for_status()
    companions = [first, second.json()["id"]]
    chats = []
    for companion in (first, first, companions[1]):
        chat = requests.post(url + "/api/chats", json={"companion_id": companion}, timeout=30)
        chat.raise_for_status()
        chats.append(chat.json()["id"])
    return companions, chats


def run(turns: int = 500, warmup: int = 50, sample_every: int = 10, max_tokens: int = 8, seed: int = 1) -> dict:
    """Run the soak; `turns` generations, the first `warmup` of them a warm-up."""
    warmup = min(warmup, turns // 2)
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="companion-soak-") as folder:
        config = Path(folder) / "config.toml"
        config.write_text(f"[generation]\ntemperature = 0.0\nmax_tokens = {max_tokens}\nseed = 1\ntop_k = 1\n"
                          "[model]\nn_ctx = 2048\n")
        daemon = Daemon(Path(folder) / "data", config, Path(folder) / "daemon.log")
        try:
            daemon.wait_until(is_ready)
            url, pid = daemon.url, daemon.process.pid
            companions, chats = setup(url)
            streams = [EventsReader(url) for _ in range(2)]
            for stream in streams:
                stream.start()
            generating = threading.Event()
            reader = Reader(url, chats[0], generating)
            reader.start()
            samples = [{"turn": 0, **proc_sample(pid)}]
            idle: list[dict] = []
            counts = {"prompt": 0, "regenerate": 0, "memory": 0, "switch": 0}
            last_reply: dict[int, int] = {}
            chat = chats[0]
            began = time.monotonic()
            for turn in range(1, turns + 1):
                regenerate = bool(last_reply.get(chat)) and rng.random() < 0.25
                if not regenerate:
                    other = rng.choice(chats) if rng.random() < 0.4 else chat
                    counts["switch"] += other != chat
                    chat = other
                generating.set()
                if regenerate:
                    response = requests.post(f"{url}/api/messages/{last_reply[chat]}/swipes", json={}, timeout=300)
                else:
                    line = f"{rng.choice(LINES)} ({turn})"
                    response = requests.post(url + "/api/prompt", json={"prompt": line, "chat_id": chat}, timeout=300)
                generating.clear()
                response.raise_for_status()
                counts["regenerate" if regenerate else "prompt"] += 1
                if not regenerate:
                    last_reply[chat] = response.json()["id"]
                if rng.random() < 0.2:
                    memory = requests.post(url + "/api/memories", timeout=60, json={
                        "text": f"Fact {turn}: {rng.choice(LINES)}", "companion_id": rng.choice(companions)})
                    memory.raise_for_status()
                    counts["memory"] += 1
                if turn % sample_every == 0 or turn == warmup or turn == turns:
                    samples.append({"turn": turn, **proc_sample(pid)})
                if turn in (warmup, turns):
                    idle.append({"turn": turn, **idle_sample(pid)})
            seconds = time.monotonic() - began
            reader.stop.set()
            reader.join(timeout=30)
            events = [s.events for s in streams]
            for stream in streams:
                stream.close()
            stopped = daemon.stop()
        finally:
            daemon.kill()
    return rounded(report(samples, idle, warmup, reader, counts, events, seconds, turns, max_tokens, stopped), 2)


def report(samples: list[dict], idle: list[dict], warmup: int, reader: Reader, counts: dict, events: list[int], seconds: float,
           turns: int, max_tokens: int, stopped: int) -> dict:
    """The soak's figures beside the targets."""
    warm = next(s for s in samples if s["turn"] >= warmup)
    end = samples[-1]
    # fds and threads: the most in the first samples after warm-up against the most in the last
    # ones, as many of each: a socket in flight at one sample is not growth
    after = [s for s in samples if s["turn"] >= warmup]
    span = max(1, min(COUNT_SAMPLES, len(after) // 2))
    first, last = after[:span], after[-span:]

    def most(which: list[dict], key: str) -> int:
        return max(s[key] for s in which)

    growth = end["rss_mb"] - warm["rss_mb"]
    reads = reader.latencies["messages"] + reader.latencies["status"]
    p99 = percentile(reads, 99)

    def latency(values: list[float]) -> dict:
        return {"count": len(values), "p50_ms": median(values), "p99_ms": percentile(values, 99),
                "max_ms": max(values) if values else None}

    return {
        "turns": turns, "max_tokens": max_tokens, "warmup_turns": warmup, "seconds": seconds,
        "actions": counts, "events_received": events, "exit_code_at_stop": stopped,
        "rss_mb": {"start": samples[0]["rss_mb"], "after_warmup": warm["rss_mb"], "end": end["rss_mb"],
                   "max": max(s["rss_mb"] for s in samples), "growth_after_warmup": growth,
                   "target_growth": RSS_GROWTH_MB, "pass": growth <= RSS_GROWTH_MB},
        "fds": {"start": samples[0]["fds"], "after_warmup": warm["fds"], "end": end["fds"],
                "max": max(s["fds"] for s in samples), "most_after_warmup": most(first, "fds"),
                "most_at_end": most(last, "fds"), "samples_compared": span,
                "idle_after_warmup": idle[0]["fds"], "idle_at_end": idle[-1]["fds"],
                "sockets_idle": [s["sockets"] for s in idle],
                "pass": idle[-1]["fds"] <= idle[0]["fds"]},
        "threads": {"start": samples[0]["threads"], "after_warmup": warm["threads"], "end": end["threads"],
                    "max": max(s["threads"] for s in samples), "most_after_warmup": most(first, "threads"),
                    "most_at_end": most(last, "threads"), "samples_compared": span,
                    "pass": most(last, "threads") <= most(first, "threads")},
        "reads_during_generation": {**latency(reads), "messages": latency(reader.latencies["messages"]),
                                    "status": latency(reader.latencies["status"]), "errors": reader.errors,
                                    "target_p99_ms": READ_P99_MS,
                                    "pass": p99 is not None and p99 <= READ_P99_MS and not reader.errors},
        "samples": samples, "idle_samples": idle,
    }


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    arguments = parser.parse_args()
    print(json.dumps(run(turns=arguments.turns, warmup=arguments.warmup), indent=2))
