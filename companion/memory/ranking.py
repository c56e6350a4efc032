"""Ranking recalled memories: vector, words, recency and time fused; duplicates and the newest version of a fact."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

import numpy as np

from companion.config import MemorySettings
from companion.memory.time_words import TimeWindow
from companion.memory.units import without_reply


@dataclass
class RecalledMemory:
    id: int
    text: str
    created_at: str
    score: float
    relevance: float = 0.0
    stock_reply: bool = False   # an exchange whose reply is a stock phrase (given stock_reply_count times or more)

    @property
    def told(self) -> str:
        """The memory as a prompt tells it: an exchange whose reply is a stock phrase without that
        reply, which tells nothing of it ("I'm sorry for any confusion...", said fifty times)."""
        return without_reply(self.text) if self.stock_reply else self.text


class Recall(list):
    """Recalled memories, best first, and the time window the query named (None when none)."""

    window: TimeWindow | None = None


def recency(created_at: str, now: datetime, half_life_hours: float) -> float:
    """1.0 for a memory made now, halving every half_life_hours."""
    try:
        then = datetime.fromisoformat(created_at)
    except (TypeError, ValueError):
        return 0.0
    if then.tzinfo is None:
        then = then.replace(tzinfo=timezone.utc)
    hours = max(0.0, (now - then).total_seconds() / 3600)
    return 0.5 ** (hours / half_life_hours) if half_life_hours > 0 else 0.0


def cosine(a, b) -> float:
    """Cosine similarity of two vectors (ours are normalized, so a dot product)."""
    return float(np.dot(a, b))


def side_by_side(embed: Callable[[list[str]], list], pairs: list[tuple[str, str]]) -> np.ndarray:
    """Rows of two embeddings side by side, from (first, second) texts; each distinct text
    is embedded once."""
    distinct = list(dict.fromkeys(text for pair in pairs for text in pair))
    if not distinct:
        return np.zeros((0, 0), dtype=np.float32)
    made = dict(zip(distinct, np.asarray(embed(distinct), dtype=np.float32)))
    return np.stack([np.concatenate([made[a], made[b]]) for a, b in pairs])


def epoch(moment: str) -> float:
    """Seconds since 1970 of a stored time (UTC when it has no zone)."""
    when = datetime.fromisoformat(moment)
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


@dataclass
class Rankings:
    """A recall's three rankings of its candidates (1-based ranks by id; absent: not ranked)."""
    meaning: dict[int, int]
    words: dict[int, int]
    rarity: dict[int, int]

    def fused(self, memory_id: int, options: MemorySettings) -> float:
        """Weighted reciprocal rank fusion, 1.0 for first in every ranking that ranked anything."""
        c = options.fusion_k
        parts = ((self.meaning, options.relevance_weight), (self.words, options.lexical_weight),
                 (self.rarity, options.rarity_weight))
        best = sum(weight for ranks, weight in parts if ranks) / (c + 1)
        fused = sum(weight / (c + ranks[memory_id]) for ranks, weight in parts if memory_id in ranks)
        return fused / best if best > 0 else 0.0


def without_duplicates(ranked: list[tuple], vectors: dict[int, np.ndarray], k: int,
                       similarity: float) -> list[tuple]:
    """The first k ranked (score, id, row, ...) candidates, leaving out a memory with the same
    text as a better one or at least `similarity` alike."""
    kept: list[tuple] = []
    seen: list[tuple[str, np.ndarray]] = []
    for candidate in ranked:
        memory_id, row = candidate[1], candidate[2]
        text = " ".join(row["text"].lower().split())
        if any(text == other or cosine(vectors[memory_id], v) >= similarity for other, v in seen):
            continue
        seen.append((text, vectors[memory_id]))
        kept.append(candidate)
        if len(kept) == k:
            break
    return kept


def distinct_ranks(order: list[int], text: dict[int, str], asked: dict[int, bool]) -> dict[int, int]:
    """1-based ranks of an ordered list of memory ids, counted by distinct text (copies of a
    text share its rank, so fifty "Good night!"s take one place, not fifty) and with what the
    person only asked after everything else (an earlier asking never crowds out the answer)."""
    ranks: dict[int, int] = {}
    first: dict[str, int] = {}
    for memory_id in [i for i in order if not asked[i]] + [i for i in order if asked[i]]:
        key = text[memory_id]
        if key not in first:
            first[key] = len(first) + 1
        ranks[memory_id] = first[key]
    return ranks


def newest_first(ranked: list[tuple], vectors: dict[int, np.ndarray], similarity: float) -> list[tuple]:
    """Ranked (score, id, row, relevance, asked) candidates where a memory about the same thing
    as a better-ranked one (a statement at least `similarity` alike) but newer moves up to just
    before it: an updated fact comes before the one it replaced, which drops one place.
    Questions keep their places."""
    out = list(ranked)
    heads: list[tuple] = []
    for candidate in ranked:
        if candidate[4]:
            continue
        vector, when = vectors[candidate[1]], candidate[2]["created_at"]
        older = next((head for head in heads if head[2]["created_at"] < when
                      and cosine(vectors[head[1]], vector) >= similarity), None)
        if older is not None:
            out.remove(candidate)
            out.insert(out.index(older), candidate)
        heads.append(candidate)
    return out
