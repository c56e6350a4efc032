"""Benchmark: per-turn overhead outside the model, with 10,000 long-term memories.

One companion's long-term memory is filled with 10,000 varied memory rows (stored with
``store.add_memory`` in one transaction, then embedded and indexed by
``memory.reconcile()``, batch by batch, as a start-up would). Then turns run through
``ChatService.send`` with a fast fake generator (renders by joining the messages, counts
len(text)//4 tokens, yields a few fixed words), so what is timed is everything else: storing
the messages, recall (embedding the prompt, the exact vector search and the word search, reading
the rows), building the prompt and storing the reply. The exchange is embedded and indexed as a new memory on a
background thread once the reply is stored (`index_later`): that time is reported apart, as
index_ms, measured by waiting for it (`memory.flush()`) right after each turn, outside the turn.
Each arm's turns alternate with turns that index inside the turn instead (arm "/sync_index",
the way it was before `index_later`), so the gain is an interleaved A/B ratio in one run.

A second companion with no memories up front (each turn still adds one) runs interleaved turn
by turn for contrast (A B, B A, ...). Both use the real store, Chroma and the bundled
embedder, shared (one model in memory). Reports median and p90 per-turn milliseconds and a
breakdown: recall and the rest; and index_ms, the background work after each reply.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from .common import CpuMeter, Gate, alternating, load_embedder, median, percentile, ratio, rounded, timed
from .script import memory_texts, user_lines

TARGET_MEDIAN_MS = 30.0
REPLY_WORDS = ["That", " sounds", " lovely", ",", " tell", " me", " more", "!"]


class FakeGenerator:
    """A Generator that costs next to nothing: only the chat service's own work is timed."""

    def __init__(self, n_ctx: int = 2048) -> None:
        self.path = "fake-model.gguf"
        self.n_ctx = n_ctx
        self.state = "ready"
        self.error = None
        self.template, self.template_note = "transcript", "a fake"
        self.n_ctx_reason = "a fake"

    def start(self) -> None:
        pass

    def wait_ready(self, timeout: float | None = None) -> bool:
        return True

    def count_tokens(self, text: str) -> int:
        return len(text) // 4

    def prompt_tokens(self, request) -> int:
        return self.count_tokens(request.prompt or "\n".join(m["content"] for m in request.messages or []))

    def generate(self, request, stop_event=None):
        yield from REPLY_WORDS


SYNC = "/sync_index"   # arm B: indexing the exchange inside the turn


def run(memories: int = 10_000, turns: int = 30, warmup: int = 2) -> dict:
    from companion.config import load_settings
    from companion.services import build_services

    embedder, _ = load_embedder()
    arms = {f"{memories}_memories": memories, "0_memories": 0}
    lines = user_lines(warmup + turns, seed=3)

    with tempfile.TemporaryDirectory(prefix="bench-overhead-", ignore_cleanup_errors=True) as tmp:
        services, sinks, fill = {}, {}, {}
        for name, count in arms.items():
            settings = load_settings(env={}, overrides={"data_dir": str(Path(tmp) / name)})
            svc = build_services(settings, generator=FakeGenerator(settings.model.n_ctx or 2048), embedder=embedder)
            companion_id = svc.store.active_companion_id()
            if count:
                began = time.perf_counter()
                with svc.store.transaction():
                    for text in memory_texts(count):
                        svc.store.add_memory(companion_id, text, "custom")
                stored = time.perf_counter() - began
                began = time.perf_counter()
                added, _ = svc.memory.reconcile()
                indexed = time.perf_counter() - began
                fill[name] = {"rows": count, "store_seconds": stored, "index_seconds": indexed,
                              "indexed": added, "total_seconds": stored + indexed,
                              "rows_per_second": count / (stored + indexed)}
            sink: dict = {}
            svc.memory.recall = timed(svc.memory.recall, sink, "recall_ms")
            services[name], sinks[name] = svc, sink

        keys = [f"{name}{suffix}" for name in arms for suffix in ("", SYNC)]
        per_turn = {key: {"turn_ms": [], "recall_ms": [], "index_ms": [], "rest_ms": [], "recalled": [],
                          "foreign_cpu": []}
                    for key in keys}
        gate = Gate(window=0.3)
        try:
            for i, line in enumerate(lines):
                for name in alternating(i, list(arms)):
                    for suffix in alternating(i, ["", SYNC]):
                        memory = services[name].memory
                        if suffix:   # B: the exchange indexed inside the turn, as before index_later
                            memory.index_later = memory.index
                        else:
                            memory.__dict__.pop("index_later", None)
                        sink = sinks[name]
                        sink.clear()
                        gate()
                        meter = CpuMeter()
                        began = time.perf_counter()
                        reply = services[name].turns.send(services[name].companions.active_chat_id(), line)
                        total = (time.perf_counter() - began) * 1000
                        began = time.perf_counter()
                        memory.flush()   # the exchange's embedding, after the reply
                        sink["index_ms"] = (time.perf_counter() - began) * 1000
                        foreign = meter.foreign()
                        if i < warmup:
                            continue
                        d = per_turn[name + suffix]
                        d["turn_ms"].append(total)
                        d["recall_ms"].append(sink.get("recall_ms", 0.0))
                        d["index_ms"].append(sink.get("index_ms", 0.0))
                        d["rest_ms"].append(total - sink.get("recall_ms", 0.0))
                        d["recalled"].append(len(reply.memories))
                        d["foreign_cpu"].append(foreign)
            counts = {name: services[name].memory.indexed_count() for name in arms}
        finally:
            for svc in services.values():
                svc.close()

    summary = {}
    for key in keys:
        d = per_turn[key]
        summary[key] = {
            "turn_ms_median": median(d["turn_ms"]), "turn_ms_p90": percentile(d["turn_ms"], 90),
            "recall_ms_median": median(d["recall_ms"]), "index_ms_median": median(d["index_ms"]),
            "rest_ms_median": median(d["rest_ms"]),
            "turns_with_memories": sum(1 for r in d["recalled"] if r),
            "foreign_cpu_median": median(d["foreign_cpu"]),
            "indexed_at_end": counts[key.removesuffix(SYNC)],
        }
    big = summary[f"{memories}_memories"]
    return rounded({
        "benchmark": "overhead",
        "memories": memories,
        "turns": turns,
        "warmup_turns": warmup,
        "generator": "fake (joins messages, len//4 tokens, yields 8 fixed pieces)",
        "fill": fill,
        "gate": gate.report(),
        "summary": summary,
        "ratio_full_over_empty_median": ratio(big["turn_ms_median"], summary["0_memories"]["turn_ms_median"]),
        "ratio_sync_index_over_background_median": ratio(summary[f"{memories}_memories{SYNC}"]["turn_ms_median"],
                                                         big["turn_ms_median"]),
        "target": {"median_turn_ms_at_most": TARGET_MEDIAN_MS,
                   "met": big["turn_ms_median"] is not None and big["turn_ms_median"] <= TARGET_MEDIAN_MS},
        "per_turn": per_turn,
    }, 3)


if __name__ == "__main__":
    json.dump(run(), sys.stdout, indent=2)
    print()
