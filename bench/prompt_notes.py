"""Benchmark: the prompt tokens a warm turn makes llama.cpp evaluate, old layout against the new one (#29).

Old layout: each turn's volatile part (the memories recalled for it, the lore it triggered, the
time) sits before the newest message and is not kept, so the next turn's prompt differs from
this one's from there on: llama.cpp re-evaluates the previous exchange, the new volatile part
and the new message. New layout: the note is kept with the message it went before and shown
there again, recall leaves out what a note in the window shows, and the next prompt is this one
with the reply, the new note and the new message appended.

One conversation (a long card, SillyTavern's Seraphina; stored memories of which each turn
recalls the best by words; a lore entry some turns trigger) runs through the real prompt builder
(chat/prompt.py: build_messages, fit_history, note_text) on the real bundled model
(companion.model.local), each layout on its own Llama object (each keeps its own KV cache),
interleaved turn by turn. Both continue the same conversation (the new layout's reply). The
tokens each turn evaluated are read as llama.cpp sees them: the prompt's tokens less the prefix
it shares with the tokens in the model's cache (its previous prompt and reply), so they are
deterministic; the seconds to the first token are reported too but are noisy here.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from companion.chat.prompt import PromptInput, Recalled, Turn, fit_history, note_text
from companion.config import ModelSettings
from companion.model.generation import GenerationParams, GenerationRequest
from companion.model.local import LlamaGenerator, bundled_model

from .common import common_prefix, median, ratio

CARD = Path(__file__).resolve().parents[2] / "shared" / "cards" / "default_Seraphina.png"
USER = "Sam"
START = datetime(2026, 6, 12, 19, 30, tzinfo=timezone.utc)
MEMORIES = [      # (text, days ago): what the companion remembers from earlier chats
    ("{{user}}: My sister Priya lives in Porto.\n{{char}}: Porto must be lovely in spring.", 40),
    ("{{user}}: I hurt my ankle climbing last week.\n{{char}}: Rest it and keep it warm.", 9),
    ("{{user}}: I keep three bees named after planets.\n{{char}}: What a charming idea.", 21),
    ("{{user}}: My favourite tea is smoky lapsang.\n{{char}}: A brew for quiet evenings.", 60),
    ("{{user}}: I am learning to play the cello.\n{{char}}: Music suits the forest.", 14),
    ("{{user}}: The storm last month flooded my garden.\n{{char}}: The glade drinks such rain gladly.", 30),
    ("{{user}}: My dog Rex is afraid of thunder.\n{{char}}: Poor Rex, storms are loud.", 5),
    ("{{user}}: I want to visit the old lighthouse this summer.\n{{char}}: I would love to hear of it.", 3),
]
LORE = ("lighthouse", "The old lighthouse on the cliff has been dark for a hundred years; "
                      "travellers say a blue light still turns in it on stormy nights.")
USER_LINES = [
    "Hello again, Seraphina. Do you remember my sister Priya?",
    "My ankle still hurts from climbing, can you help?",
    "The bees are buzzing today, all three planets of them.",
    "I brewed some smoky tea, would you like a cup?",
    "Could you teach me a song for the cello?",
    "Rex hid under the bed during the storm last night.",
    "Shall we walk to the lighthouse together?",
    "Tell me about the glade in the rain.",
]
SHORT_TERM = 20
LONG_TERM = 2


def recall(query: str, shown: set[int]) -> list[int]:
    """The memories a turn recalls, deterministically: the LONG_TERM best by words shared with
    the query (at least two), less those a note in the window shows (shown)."""
    words = {w.strip("?,.!").lower() for w in query.split() if len(w) > 3}
    scored = []
    for i, (text, _) in enumerate(MEMORIES):
        overlap = len(words & {w.strip("?,.!:").lower() for w in text.split()})
        if overlap >= 1 and i not in shown:
            scored.append((-overlap, i))
    return [i for _, i in sorted(scored)[:LONG_TERM]]


def run(turns: int = 8, max_tokens: int = 24, n_ctx: int = 4096) -> dict:
    from companion.formats.cards import read_card

    card = read_card(CARD.read_bytes())
    char = card["name"]
    path = bundled_model()
    arms = ["old", "new"]
    generators = {}
    for arm in arms:
        gen = LlamaGenerator(path, ModelSettings(n_ctx=n_ctx))
        gen.load()
        generators[arm] = gen
    params = GenerationParams(max_tokens=max_tokens, temperature=0.0, seed=1)
    history = {arm: [Turn(True, card["first_mes"], char)] for arm in arms}
    notes_shown: dict[int, tuple[set[int], bool]] = {}     # history index -> (memories, lore) its note shows
    evaluated: dict[str, list[int]] = {arm: [] for arm in arms}
    prompt_tokens: dict[str, list[int]] = {arm: [] for arm in arms}
    first_token: dict[str, list[float]] = {arm: [] for arm in arms}
    kept_from = {arm: 0 for arm in arms}
    for turn in range(turns):
        newest = USER_LINES[turn % len(USER_LINES)]
        now = START + timedelta(minutes=3 * turn)
        replies: dict[str, str] = {}
        notes: dict[str, str] = {}
        new_shows: tuple[set[int], bool] = (set(), False)
        for arm in (arms if turn % 2 == 0 else arms[::-1]):
            gen = generators[arm]
            shown: set[int] = set()
            lore_shown = False
            if arm == "new":
                for index, (memories, lore) in notes_shown.items():
                    if index >= kept_from[arm]:
                        shown |= memories
                        lore_shown = lore_shown or lore
            picked = recall(newest, shown)
            triggered = LORE[0] in newest.lower() or any(LORE[0] in t.text.lower() for t in history[arm][-2:])
            p = PromptInput(char=char, user=USER, persona=card["description"], scenario=card["scenario"],
                            personality=card["personality"], newest=newest, now=now,
                            last_message_at=(now - timedelta(minutes=3)).isoformat() if turn else None,
                            lore_triggered=[LORE[1]] if triggered and not lore_shown else [],
                            memories=[Recalled(MEMORIES[i][0], (START - timedelta(days=MEMORIES[i][1])).isoformat())
                                      for i in picked])

            def count(messages: list[dict], gen: LlamaGenerator = gen) -> int:
                return gen.prompt_tokens(GenerationRequest(messages=messages, char=char, user=USER))

            messages, kept_from[arm] = fit_history(p, history[arm], SHORT_TERM, count, n_ctx - max_tokens,
                                                   kept_from[arm])
            notes[arm] = note_text(p)
            if arm == "new":
                new_shows = (set(picked) if p.memories else set(), bool(p.lore_triggered))
            request = GenerationRequest(params, messages=messages, char=char, user=USER)
            prompt, _ = gen.render(request)
            tokens = gen._llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
            cached = gen.cached_tokens()     # what llama.cpp may reuse (a reply's tokens are not)
            evaluated[arm].append(len(tokens) - common_prefix(cached, tokens[:-1]))
            prompt_tokens[arm].append(len(tokens))
            began = time.perf_counter()
            pieces = gen.generate(request)
            text = ""
            for piece in pieces:
                if not text:
                    first_token[arm].append(time.perf_counter() - began)
                text += piece
            replies[arm] = text.strip() or "..."
        reply = replies["new"]        # both continue the same conversation
        notes_shown[len(history["new"])] = new_shows
        history["old"] += [Turn(False, newest, USER), Turn(True, reply, char)]
        history["new"] += [Turn(False, newest, USER, note=notes["new"]), Turn(True, reply, char)]
    warm = {arm: evaluated[arm][1:] for arm in arms}
    warm_ttft = {arm: first_token[arm][1:] for arm in arms}
    return {
        "model": Path(path).name,
        "card": CARD.name,
        "turns": turns,
        "short_term_mem": SHORT_TERM,
        "long_term_mem": LONG_TERM,
        "max_tokens": max_tokens,
        "n_ctx": n_ctx,
        "prompt_tokens_per_turn": prompt_tokens,
        "evaluated_tokens_per_turn": evaluated,
        "warm_evaluated_tokens_median": {arm: median(warm[arm]) for arm in arms},
        "warm_evaluated_tokens_total": {arm: sum(warm[arm]) for arm in arms},
        "ratio_old_over_new_warm_tokens": ratio(sum(warm["old"]), sum(warm["new"])),
        "warm_first_token_seconds_median": {arm: median(warm_ttft[arm]) for arm in arms},
        "ratio_old_over_new_warm_first_token_seconds": ratio(median(warm_ttft["old"]), median(warm_ttft["new"])),
        "note": "tokens evaluated are deterministic; the seconds are one noisy run on a shared machine",
    }


if __name__ == "__main__":
    json.dump(run(), sys.stdout, indent=2)
    print()
