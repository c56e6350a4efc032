"""Benchmark: the block-aligned history window against a sliding one, on the real model.

llama.cpp re-evaluates only the prompt tokens after the longest prefix shared with the
previous call. A window that slides by one message each turn changes the prefix every turn
once the history is longer than the window; the block-aligned window keeps it for several
turns. Both strategies run the same conversation on their own Llama object (each keeps its
own KV cache), interleaved turn by turn (A B, B A, ...). Reports the tokens each turn had to
evaluate (deterministic) and the seconds per turn (noisy: medians and the ratio).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

from companion.chat.prompt import PromptInput, Turn, build_messages, window_start
from companion.config import ModelSettings
from companion.model.generation import GenerationParams, GenerationRequest
from companion.model.local import LlamaGenerator, bundled_model

from .common import common_prefix

PERSONA = ("{{char}} is a warm, curious librarian from a small seaside town who loves old maps, "
           "tea and long conversations about travel. {{char}} speaks gently and asks questions.")
USER_LINES = [
    "Hi! I just moved here. Any tips?", "I love old maps too. Where do you find them?",
    "What kind of tea do you drink?", "Have you ever travelled far from here?",
    "Tell me about the harbour.", "What do people do in winter?", "Is there a good bakery?",
    "I found a map of the coast from 1890!", "Could we look at it together?",
    "What is your favourite book?", "Do you like the rain?", "What should I see first?",
    "How long have you worked at the library?", "Do you know any local legends?",
    "What's the best time to visit the lighthouse?", "Thanks, this was lovely.",
]


def sliding_start(n_history: int, short_term_mem: int) -> int:
    return max(0, n_history - short_term_mem)


def run(turns: int = 16, short_term_mem: int = 6, max_tokens: int = 8) -> dict:
    path = bundled_model()
    strategies = {"aligned": window_start, "sliding": sliding_start}
    generators = {}
    for name in strategies:
        gen = LlamaGenerator(path, ModelSettings(n_ctx=2048))
        gen.load()
        generators[name] = gen
    params = GenerationParams(max_tokens=max_tokens, temperature=0.0, seed=1)
    history: list[Turn] = [Turn(True, "Welcome to the library, {{user}}!")]
    previous: dict[str, list[int]] = {name: [] for name in strategies}
    seconds: dict[str, list[float]] = {name: [] for name in strategies}
    evaluated: dict[str, list[int]] = {name: [] for name in strategies}
    for turn in range(turns):
        newest = USER_LINES[turn % len(USER_LINES)]
        order = list(strategies) if turn % 2 == 0 else list(reversed(strategies))
        replies = {}
        for name in order:
            gen = generators[name]
            start = strategies[name](len(history), short_term_mem)
            p = PromptInput(char="Mira", user="Sam", persona=PERSONA, history=history[start:], newest=newest)
            request = GenerationRequest(params, messages=build_messages(p), char="Mira", user="Sam")
            prompt, _ = gen.render(request)
            tokens = gen._llama.tokenize(prompt.encode(), add_bos=True, special=True)
            evaluated[name].append(len(tokens) - common_prefix(previous[name], tokens))
            began = time.perf_counter()
            replies[name] = "".join(gen.generate(request))
            seconds[name].append(time.perf_counter() - began)
            previous[name] = tokens + gen._llama.tokenize(replies[name].encode(), add_bos=False, special=True)
        # both strategies continue the same conversation (the aligned one's reply)
        history += [Turn(False, newest), Turn(True, replies["aligned"].strip() or "...")]
    medians = {name: statistics.median(seconds[name]) for name in strategies}
    return {
        "benchmark": "prompt_cache",
        "model": Path(path).name,
        "turns": turns,
        "short_term_mem": short_term_mem,
        "max_tokens": max_tokens,
        "evaluated_tokens_total": {name: sum(evaluated[name]) for name in strategies},
        "evaluated_tokens_per_turn": evaluated,
        "seconds_median": medians,
        "ratio_sliding_over_aligned_seconds": round(medians["sliding"] / medians["aligned"], 3),
        "ratio_sliding_over_aligned_tokens": round(
            sum(evaluated["sliding"]) / max(1, sum(evaluated["aligned"])), 3),
    }


if __name__ == "__main__":
    json.dump(run(), sys.stdout, indent=2)
    print()
