"""The index of memories: Chroma (embedded on disk, or a server) and the in-memory vector table searched exactly."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from companion.errors import STORAGE_FULL_MESSAGE, StorageFull

if TYPE_CHECKING:   # imported when a client opens (chromadb is slow to import)
    from chromadb.api import ClientAPI

COLLECTION = "memories"


VECTOR_PAGE = 5000   # vectors read from Chroma at a time when the in-memory copy is built


INDEX_VERSION = "3"   # 3: two views a memory (what was said, the whole exchange); a change rebuilds the index


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


def open_chroma(path: Path, url: str = "") -> ClientAPI:
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
        self.vectors: np.ndarray | None = None         # None until the first rows come (and say the dimension)
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
        assert self.vectors is not None   # _grow made it
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
            assert self.vectors is not None   # it holds the row
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
        assert self.vectors is not None   # it holds them
        half = self.vectors.shape[1] // 2
        return dict(zip(found, self.vectors[[self.row[i] for i in found], :half]))

    def whole_views(self, rows: np.ndarray | slice, stock_reply: int) -> np.ndarray | None:
        """Which of the rows may be found by their whole view: those whose reply was given fewer
        than `stock_reply` times (None: all of them; `stock_reply` 0 never counts replies)."""
        if stock_reply <= 0 or not len(self.reply_counts):
            return None
        replies = self.replies[rows]
        return (replies < 0) | (self.reply_counts[np.maximum(replies, 0)] < stock_reply)

    def stock_replies(self, ids: list[int], stock_reply: int) -> set[int]:
        """Those of the ids here whose reply was given `stock_reply` times or more (none when 0)."""
        found = [i for i in ids if i in self.row]
        if not found:
            return set()
        whole = self.whole_views(np.asarray([self.row[i] for i in found], dtype=np.int64), stock_reply)
        return set() if whole is None else {i for i, by_whole in zip(found, whole.tolist()) if not by_whole}

    def similarities(self, ids: list[int], query: np.ndarray, stock_reply: int = 0) -> dict[int, float]:
        """How similar to the query those ids that are here are (their closer view's cosine;
        see whole_views for `stock_reply`)."""
        found = [i for i in ids if i in self.row]
        if not found:
            return {}
        rows = np.asarray([self.row[i] for i in found], dtype=np.int64)
        assert self.vectors is not None   # it holds them
        return dict(zip(found, closer_view(self.vectors[rows], query, self.whole_views(rows, stock_reply)).tolist()))

    def nearest(self, query: np.ndarray, companion_id: int, depth: int,
                since: float | None = None, until: float | None = None,
                stock_reply: int = 0) -> list[tuple[int, float]]:
        """The companion's `depth` memories most similar to the query (by the closer of their
        views; see whole_views for `stock_reply`), best first, within [since, until) when given."""
        if not self.count:
            return []
        assert self.vectors is not None   # it holds some
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
