"""Benchmark: what a change of speaker costs in a group chat.

A group of three companions with long cards talks in one chat, in-process on the real store,
Chroma index, embedder and the bundled model (n_ctx 2048, short replies at temperature 0).
After each user line one member replies ("let X speak"), and then a second reply follows,
either by the **same** member again or by **another** member; the second reply's time to first
token (from start_group to the first token: recall, prompt building, prompt evaluation) is
what is compared. The arms alternate turn by turn (same, other, other, same, ...), so both see
the same conversation lengths and the same machine noise.

The group prompt is laid out so that the stable part (every member's card in the group's
order, and the history, each message named after its speaker) reads the same whoever speaks;
only the volatile tail (the speaker's memories, lore and "write X's next message") differs. A
change of speaker should therefore cost about what a second reply by the same member costs;
the ratio other/same says how well that holds. The tokens of the second prompt that follow the
prefix shared with the first prompt (roughly what llama.cpp had to evaluate) are reported too.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from .common import alternating, common_prefix, load_embedder, median, ratio, rounded
from .script import user_lines

ARMS = ["same", "other"]
CARD = ("{name} is a {trait} companion who lives by the sea, keeps a small garden of herbs and tomatoes, "
        "reads old travel books in the evening, remembers every friend's birthday, and likes to tell short "
        "stories about the harbour, the lighthouse keeper and the fishing boats that come in at dawn. ")


def run(turns: int = 16) -> dict:
    """Alternate 'same' and 'other' second replies over `turns` user lines."""
    from companion.config import load_settings
    from companion.formats.cards import normalize_card
    from companion.model.local import LlamaGenerator, resolve_model_path
    from companion.services import build_services

    embedder, _ = load_embedder()
    with tempfile.TemporaryDirectory() as folder:
        settings = load_settings(env={}, overrides={
            "data_dir": folder, "model": {"n_ctx": 2048},
            "generation": {"temperature": 0.0, "max_tokens": 24, "seed": 1, "top_k": 1}})
        generator = LlamaGenerator(resolve_model_path(settings.model, Path(folder)), settings.model)
        generator.load()
        services = build_services(settings, generator=generator, embedder=embedder)
        members = []
        for name, trait in (("Ada", "curious"), ("Bo", "cheerful"), ("Cy", "thoughtful")):
            card = normalize_card({"spec": "chara_card_v3", "data": {
                "name": name, "description": CARD.format(name=name, trait=trait) * 3,
                "personality": f"{trait}, kind", "first_mes": ""}})
            members.append(services.companions.create(card, {}))
        ids = [m["id"] for m in members]
        group = services.groups.create({"name": "Harbour friends", "members": ids, "strategy": "manual"})
        chat_id = group["active_chat_id"]
        prompts: list = []
        real_generate = generator.generate

        def recording(request, stop_event=None):
            prompts.append(generator.prompt_token_ids(request))
            return real_generate(request, stop_event)

        generator.generate = recording  # type: ignore[method-assign]
        times: dict[str, list[float]] = {arm: [] for arm in ARMS}
        fresh: dict[str, list[int]] = {arm: [] for arm in ARMS}
        lines = user_lines(turns)
        for i, line in enumerate(lines):
            arm = alternating(i, ARMS)[0]
            first = ids[i % 3]
            second = first if arm == "same" else ids[(i + 1) % 3]
            services.turns.start_group(chat_id, line, [first]).run()
            began = time.perf_counter()
            events = services.turns.start_group(chat_id, None, [second]).events()
            for kind, _ in events:
                if kind == "token":
                    times[arm].append(time.perf_counter() - began)
                    break
            for _ in events:
                pass
            fresh[arm].append(len(prompts[-1]) - common_prefix(prompts[-2], prompts[-1]))
        services.close()
    result = {
        "turns": turns,
        "median_ttft_s": {arm: rounded(median(times[arm])) for arm in ARMS},
        "median_new_prompt_tokens": {arm: median(fresh[arm]) for arm in ARMS},
        "ttft_other_over_same": ratio(median(times["other"]), median(times["same"])),
        "note": "second reply of a turn: by the same member again, or by another member",
    }
    return result
