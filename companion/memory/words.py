"""A memory's words for the lexical side of recall: content words, their rarity, FTS queries."""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import AbstractSet

WORD = re.compile(r"\w+")


STOP_WORDS = frozenset("""
a about above after again against all am an and any are aren't as at be because been before being
below between both but by can can't could couldn't did didn't do does doesn't doing don't down during
each few for from further had hadn't has hasn't have haven't having he he'd he'll he's her here here's
hers herself him himself his how how's i i'd i'll i'm i've if in into is isn't it it's its itself
let's me more most mustn't my myself no nor not of off on once only or other ought our ours ourselves
out over own same shan't she she'd she'll she's should shouldn't so some such than that that's the
their theirs them themselves then there there's these they they'd they'll they're they've this those
through to too under until up very was wasn't we we'd we'll we're we've were weren't what what's when
when's where where's which while who who's whom why why's with won't would wouldn't you you'd you'll
you're you've your yours yourself yourselves s t d ll m re ve
user char tell told remember know think say said ask asked again ever still now these days
anything something thing things really just also get got going go
""".split())


def content_words(text: str) -> list[str]:
    """The text's words that carry meaning: lower case, stop words and single letters left out."""
    return [w for w in WORD.findall(text.lower()) if len(w) > 1 and w not in STOP_WORDS]


class WordCounts:
    """In how many memories each word occurs, for how much a memory's words tell: "Good
    morning!" is said every day, "flea market" once. Counted when the memories are first read
    and kept up as they are indexed (an edited or deleted memory's old words stay counted until
    the next start: the counts are a statistic, not an index)."""

    def __init__(self) -> None:
        self.documents = 0
        self.counts: Counter[str] = Counter()

    def add(self, text: str) -> None:
        self.documents += 1
        self.counts.update(set(content_words(text)))

    def rarity(self, text: str) -> float:
        """The mean inverse document frequency of the text's content words (0 with none)."""
        words = content_words(text)
        if not words:
            return 0.0
        return sum(math.log((1 + self.documents) / (1 + self.counts[w])) for w in words) / len(words)


TIME_FILLERS = frozenset({"on", "in", "at", "during", "of", "the", "this", "past", "over"})


def phrase_query(phrase: str) -> str | None:
    """An FTS5 query for the words of a time phrase, in order ("last Tuesday" -> "last tuesday"),
    leaving out the little words around it ("on", "in", "the")."""
    words = [w for w in WORD.findall(phrase.lower()) if w not in TIME_FILLERS]
    return '"' + " ".join(words) + '"' if words else None


def lexical_query(text: str, skip: AbstractSet[str] = frozenset()) -> str | None:
    """An FTS5 query matching any of the text's content words (stop words and `skip` left out);
    None when it has none."""
    words = list(dict.fromkeys(w for w in content_words(text) if w not in skip))
    return " OR ".join(f'"{w}"' for w in words[:32]) or None
