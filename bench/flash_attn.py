"""Benchmark: llama.cpp's flash attention on or off, on the daemon's own generator.

The previous default (on) was chosen on prompt evaluation alone. A companion's context is long
(a card, memories, a history window), and decoding a token attends to all of it, so both are
measured here at the context lengths of real use: a chat of a long card and N past exchanges
(history of ~250, ~1,000 and ~1,800 tokens), rendered through the model's chat template; each
round loads the model once per arm (on, off, alternating which first) and, for every length,
times the prompt's evaluation from a cold cache (time to first token) and the decoding of the
reply (tokens per second after the first). Temperature 0, so both arms write the same text.
"""

from __future__ import annotations

import time

from .common import alternating, median, ratio, rounded
from .script import user_lines

CARD = ("You are Mira, a warm and curious companion who lives in a small harbour town. You keep a herb garden, "
        "read old travel books, remember every friend's birthday and like to tell short stories about the "
        "lighthouse keeper and the fishing boats. You answer in a few sentences and ask about the person's day. ")
REPLY = "That sounds lovely! Tell me more about it, I want to hear every detail of how it went for you."


def chat(exchanges: int) -> list[dict]:
    messages = [{"role": "system", "content": CARD * 4}]
    for line in user_lines(exchanges, seed=11):
        messages += [{"role": "user", "content": line}, {"role": "assistant", "content": REPLY}]
    return messages + [{"role": "user", "content": "Please tell me a long story about the lighthouse keeper."}]


def run(rounds: int = 3, lengths: tuple[int, ...] = (4, 20, 40), max_tokens: int = 64) -> dict:
    """Flash attention on vs off: TTFT and decode speed at several context lengths."""
    from companion.config import ModelSettings
    from companion.model.generation import GenerationParams, GenerationRequest
    from companion.model.local import LlamaGenerator, bundled_model

    arms = ["on", "off"]
    params = GenerationParams(temperature=0.0, top_k=1, max_tokens=max_tokens, seed=1)
    ttft: dict[str, dict[int, list[float]]] = {arm: {n: [] for n in lengths} for arm in arms}
    decode: dict[str, dict[int, list[float]]] = {arm: {n: [] for n in lengths} for arm in arms}
    prompt_tokens: dict[int, int] = {}
    texts: dict[str, dict[int, str]] = {arm: {} for arm in arms}
    for i in range(rounds):
        for arm in alternating(i, arms):
            generator = LlamaGenerator(bundled_model(), ModelSettings(n_ctx=4096, flash_attn=arm == "on"))
            generator.load()
            for n in lengths:
                request = GenerationRequest(params=params, messages=chat(n), char="Mira", user="Sam")
                prompt_tokens[n] = len(generator.prompt_token_ids(request))
                generator._llama.reset()           # a cold cache: the whole prompt is evaluated
                began = time.perf_counter()
                first = last = None
                pieces = []
                for piece in generator.generate(request):
                    last = time.perf_counter()
                    first = first or last
                    pieces.append(piece)
                tokens = generator.count_tokens("".join(pieces))
                ttft[arm][n].append(first - began)
                if tokens > 1 and last > first:
                    decode[arm][n].append((tokens - 1) / (last - first))
                texts[arm][n] = "".join(pieces)
            del generator                          # frees the model before the other arm loads
    rows = {}
    for n in lengths:
        rows[f"{prompt_tokens[n]}_tokens"] = {
            "ttft_s": {arm: rounded(median(ttft[arm][n])) for arm in arms},
            "decode_tps": {arm: rounded(median(decode[arm][n])) for arm in arms},
            "ttft_off_over_on": ratio(median(ttft["off"][n]), median(ttft["on"][n])),
            "decode_off_over_on": ratio(median(decode["off"][n]), median(decode["on"][n])),
        }
    return {"rounds": rounds, "max_tokens": max_tokens, "n_ctx": 4096, "by_prompt_length": rows,
            "same_text": all(texts["on"][n] == texts["off"][n] for n in lengths)}
