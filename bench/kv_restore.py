"""The next turn's time to first token with a long history: after a restart with the chat's KV
cache restored from disk, after a restart without it (cold), and without a restart (warm).

Each round builds a chat whose prompt is ~1,500 tokens (imported, then one turn so the model
holds it), saves its state as the daemon does, copies the data dir twice, and then asks the same
next question three ways, in alternating order: the warm process itself, a fresh process on one
copy (its state restored), a fresh process on the other copy with the state removed (cold). A
fresh process loads its own model first; that load is not counted in the TTFT.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from .common import alternating, load_embedder, median, ratio, rounded
from .script import user_lines

REPLIES = ["That sounds lovely, tell me more about it!", "Oh, I remember you mentioned that before.",
           "How did that make you feel?", "What a day! And then what happened?"]


def history(tokens_wanted: int, count_tokens) -> list[tuple[bool, str]]:
    """Alternating user lines and replies until their text holds about tokens_wanted tokens (the
    chat template adds about five a message)."""
    items: list[tuple[bool, str]] = []
    lines = user_lines(400, seed=11)
    while count_tokens("\n".join(t for _, t in items)) < tokens_wanted:
        n = len(items) // 2
        items += [(False, lines[n]), (True, REPLIES[n % len(REPLIES)])]
    return items


def ttft(services, chat_id: int, question: str) -> tuple[float, int]:
    """Seconds from sending to the first token, and the prompt's tokens."""
    began = time.perf_counter()
    first = None
    turn = services.turns.start_send(chat_id, question)
    for kind, _ in turn.events():
        if kind == "token" and first is None:
            first = time.perf_counter() - began
    return first if first is not None else time.perf_counter() - began, services.generator.prompt_tokens(turn.request)


def run(rounds: int = 5, history_tokens: int = 1050, max_tokens: int = 16) -> dict:
    from companion.config import load_settings
    from companion.services import build_services

    embedder, _ = load_embedder()
    root = Path(tempfile.mkdtemp(prefix="bench-kv-"))
    generation = {"temperature": 0.0, "top_k": 1, "seed": 1, "max_tokens": max_tokens}

    def settings_for(folder: Path):
        return load_settings(env={}, overrides={"data_dir": str(folder), "generation": generation,
                                                "model": {"n_ctx": 2048}})

    def started(folder: Path):
        services = build_services(settings_for(folder), embedder=embedder)
        services.generator.load()
        if services.generator.state != "ready":
            raise RuntimeError(f"the model did not load: {services.generator.error}")
        return services

    arms = ["warm", "restored", "cold"]
    seconds: dict[str, list[float]] = {arm: [] for arm in arms}
    prompts: dict[str, list[int]] = {arm: [] for arm in arms}
    restored_ok = []
    warm = started(root / "warm")
    try:
        store = warm.store
        companion = warm.companions.active_companion_id()
        items = history(history_tokens, warm.generator.count_tokens)
        # the whole history in the window (a window start on a block boundary would drop half of it)
        store.update_companion(companion, {"short_term_mem": len(items) + 4, "long_term_mem": 0})
        questions = user_lines(rounds + 10, seed=23)[10:]
        for i in range(rounds):
            chat_id = warm.chats.create(companion)["id"]
            warm.messages.import_messages(chat_id, items)
            warm.turns.send(chat_id, "Good evening! Shall we go on?")     # the model now holds this chat
            warm.turns.states.save_now()
            warm.memory.flush()
            copies = {}
            for arm in ("restored", "cold"):
                copies[arm] = root / f"{arm}-{i}"
                shutil.copytree(root / "warm", copies[arm])
            shutil.rmtree(copies["cold"] / "kv_cache", ignore_errors=True)
            for arm in alternating(i, arms):
                if arm == "warm":
                    took, prompt = ttft(warm, chat_id, questions[i])
                else:
                    fresh = started(copies[arm])
                    try:
                        took, prompt = ttft(fresh, chat_id, questions[i])
                        if arm == "restored":
                            restored_ok.append(fresh.turns.states.restored == 1)
                    finally:
                        fresh.close()
                seconds[arm].append(took)
                prompts[arm].append(prompt)
    finally:
        warm.close()
        shutil.rmtree(root, ignore_errors=True)
    medians = {arm: median(seconds[arm]) for arm in arms}
    return {
        "what": "TTFT of the next turn with a long history: warm (no restart), restored (restart, state from "
                "disk), cold (restart, no state); interleaved rounds, model load not counted",
        "rounds": rounds,
        "history_text_tokens": history_tokens,
        "prompt_tokens_median": {arm: median(prompts[arm]) for arm in arms},
        "ttft_s_median": {arm: rounded(medians[arm], 3) for arm in arms},
        "ttft_s": {arm: [rounded(s, 3) for s in seconds[arm]] for arm in arms},
        "restored_every_round": all(restored_ok) and len(restored_ok) == rounds,
        "ratios": {"restored_vs_warm": ratio(medians["restored"], medians["warm"]),
                   "cold_vs_warm": ratio(medians["cold"], medians["warm"]),
                   "cold_vs_restored": ratio(medians["cold"], medians["restored"])},
        "target": "restored <= 1.3x warm",
    }
