"""What a memory is embedded as: what was said, and the whole exchange (two views a memory)."""

from __future__ import annotations

import re

from companion.memory.words import WORD

EXCHANGE = re.compile(r"^\{\{user\}\}: (.*?)\n\{\{char\}\}: ", re.DOTALL)


def embedded_text(text: str) -> str:
    """What is embedded for a memory: for an exchange, the user's line only.

    The companion's reply ("What happened next?") drowns the fact the user told; measured with
    bench/recall_quality.py: recall@5 0.79 embedding the whole exchange, 0.94 the user's line.
    """
    match = EXCHANGE.match(text)
    return match.group(1) if match else text


def whole_text(text: str) -> str:
    """A memory's second view: for an exchange, both lines without their speaker marks (what
    the companion said holds facts too: on LoCoMo's held-out conversations, where both people
    tell things, recall@5 went 0.46 -> 0.61 with it, see docs/decisions.md); else the text."""
    match = EXCHANGE.match(text)
    return f"{match.group(1)}\n{text[match.end():]}" if match else text


def without_reply(text: str) -> str:
    """An exchange with only what the person said ("{{user}}: ..."); another memory as it is."""
    match = EXCHANGE.match(text)
    return f"{{{{user}}}}: {match.group(1)}" if match else text


def reply_of(text: str) -> str | None:
    """An exchange's reply, normalized (lower case, single spaces) to count how often it was
    given; None for a memory that is not an exchange."""
    match = EXCHANGE.match(text)
    return " ".join(text[match.end():].lower().split()) if match else None


def views(text: str) -> tuple[str, str]:
    """The two texts a memory is embedded by: what was said (embedded_text) and the whole (whole_text)."""
    return embedded_text(text), whole_text(text)


SENTENCE = re.compile(r"[^.!?]+[.!?]*")


def is_question(line: str) -> bool:
    """True when every sentence of the line is a question ("Where does my uncle live?"), not
    when a statement comes with one ("I got a dog! Isn't that great?")."""
    sentences = [s.strip() for s in SENTENCE.findall(line) if s.strip(" .!?")]
    return bool(sentences) and all(s.endswith("?") for s in sentences)


def asked_only(text: str) -> bool:
    """An exchange in which the person only asked, and the reply named nothing new (no name,
    number or other capitalised word that the question did not have)."""
    match = EXCHANGE.match(text)
    if not match or not is_question(match.group(1)):
        return False
    asked = {w.lower() for w in WORD.findall(match.group(1))}
    for sentence in SENTENCE.findall(text[match.end():]):
        words = WORD.findall(sentence)
        for n, word in enumerate(words):
            named = n > 0 and word[0].isupper() and word not in ("I", "{{user}}", "{{char}}")
            if (named or any(c.isdigit() for c in word)) and word.lower() not in asked:
                return False
    return True
