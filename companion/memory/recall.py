"""Long-term memory: rows in SQLite, vectors in Chroma, embeddings from sentence-transformers.

The ``memories`` table is the truth; the Chroma collection is an index of it that can be
rebuilt at any time (``companion reindex``) and is reconciled with it on start."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, AbstractSet, Callable, List, Literal

import numpy as np

from companion.config import MemorySettings
from companion.errors import NotFound
from companion.formats.documents import chunk_text
from companion.memory.embedder import Embedder
from companion.memory.index import INDEX_VERSION, VECTOR_PAGE, VectorTable, collection_name, open_chroma, room_for_index
from companion.memory.ranking import (
    Rankings,
    Recall,
    RecalledMemory,
    distinct_ranks,
    epoch,
    newest_first,
    recency,
    side_by_side,
    without_duplicates,
)
from companion.memory.time_words import TimeWindow, time_window
from companion.memory.units import asked_only, embedded_text, reply_of, views, whole_text
from companion.memory.words import WORD, WordCounts, lexical_query, phrase_query
from companion.store import Store
from companion.store.times import utc_iso

if TYPE_CHECKING:   # imported when a client opens (chromadb is slow to import)
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

log = logging.getLogger(__name__)


class _Auto(Enum):
    AUTO = "auto"


AUTO = _Auto.AUTO   # recall(window=AUTO): the window the query's own time words name


class LongTermMemory:
    """Memory rows plus their Chroma index, always changed together."""

    def __init__(self, store: Store, embedder: Embedder, chroma_path: Path,
                 options: MemorySettings | None = None) -> None:
        self.options = options or MemorySettings()
        self.store = store
        self.embedder = embedder
        self.chroma_path = Path(chroma_path)
        self._client: ClientAPI | None = None
        self._collection: Collection | None = None
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

    def collection(self) -> Collection:
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
        made = self.embed_views([row["text"] for row in rows]) if vectors is None else vectors
        vectors = [list(map(float, v)) for v in made]
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
        """Change a memory's text and embed it again (404 when there is none: a delete on another
        thread may come between the caller's look and this change)."""
        with self.store.transaction():
            self.store.set_memory_text(memory_id, text)
            row = self.store.get_memory(memory_id)
            if row is None:     # nothing changed, no event told
                raise NotFound(f"no memory with id {memory_id}")
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
        document = self.store.get_document(document_id)
        assert document is not None   # just written
        return document

    def delete_document(self, document_id: int) -> None:
        """Forget a document: all its chunks go, from both stores (404 when there is none)."""
        if self.store.get_document(document_id) is None:
            raise NotFound(f"no document with id {document_id}")
        ids = self.store.document_memory_ids(document_id)
        self.store.delete_document(document_id)
        self.unindex(ids)

    def delete(self, ids: List[int]) -> None:
        self.store.delete_memories(ids)
        self.unindex(ids)

    def erase(self, companion_id: int) -> int:
        """Forget everything a companion remembers; returns how many memories went."""
        ids = self.store.memory_ids(companion_id)
        self.delete(ids)
        return len(ids)

    def recall(self, companion_id: int, query: str, k: int, min_relevance: float | None = None,
               exclude_message_ids: AbstractSet[int] = frozenset(), now: datetime | None = None,
               window: TimeWindow | None | Literal[_Auto.AUTO] = AUTO) -> Recall:
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
            stock = table.stock_replies(list(vectors), options.stock_reply_count)
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
                                         round(relevance, 4), memory_id in stock))
        return result

    def _candidates(self, companion_id: int, query: str, query_vector: np.ndarray, window: TimeWindow | None,
                    now: datetime, depth: int) -> tuple[List[tuple[int, float]], List[int]]:
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
        if window and named:
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
            assert self._client is not None   # collection() opened it
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
