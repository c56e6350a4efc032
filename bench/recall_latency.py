"""Benchmark: long-term memory recall latency at 1k, 10k and 100k memories, and ingestion speed.

One store (SQLite rows + its own embedded Chroma collection, in a temp dir) per size, all held
open at once, one companion each. The largest store is filled first: its rows are inserted
(``store.add_memory`` in one transaction), then embedded and indexed by
``LongTermMemory.index`` in batches of 256, timed batch by batch (ingestion throughput,
embedding included; the embedding share is measured too).

Embedding 100k texts takes far too long on a small CPU, so the rate is measured on the first
batch and, when the projected time for the largest size exceeds ``embed_budget_s`` (~12 min),
only as many texts as fit in that budget are embedded; the remaining rows get precomputed
vectors: vectors of the embedded pool reused with small Gaussian perturbations (renormalized,
cosine ~0.9 to their source, so they are not near-duplicates) and upserted straight into the
Chroma collection together with matching SQLite rows (distinct generated texts). The JSON says
whether that happened, why, and how many rows are real. The smaller stores get the same rows
and vectors (the same ids, upserted directly) so that no text is embedded twice.

Queries (questions about facts and small-talk lines) then run through
``LongTermMemory.recall(companion_id, query, k=5, min_relevance=-1.0)``, round-robin over the
stores with the order rotated each query, so that machine noise hits every size alike. Each
recall is split into the query embedding (timed inside recall through a wrapper on the
embedder instance) and the rest (vector and word search, SQLite rows, scoring). A short probe at the end
compares the query embedding at torch's default thread count and at one thread, interleaved.
Also timed after each recall, outside it: the bare Chroma query (the same filter, n_results=30,
distances and embeddings included) with a precomputed query vector, to split the rest.

Target: recall p50 <= 20 ms at 100k memories.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from . import common
from .corpus import filler_texts, latency_queries

TARGET_P50_MS = 20.0
TARGET_SIZE = 100_000


def _p(values: list[float], q: float) -> float | None:
    v = common.percentile(values, q)
    return round(v, 2) if v is not None else None


def _ms_summary(values: list[float]) -> dict:
    return {"p50": _p(values, 50), "p95": _p(values, 95), "min": _p(values, 0), "n": len(values)}


def run(sizes: tuple[int, ...] = (1000, 10_000, 100_000), queries: int = 50, quick: bool = False,
        batch: int = 256, embed_budget_s: float = 720.0, warmup: int = 3, seed: int = 0,
        perturb_sigma: float = 0.025, upsert_chunk: int = 2048) -> dict:
    import numpy as np

    from companion.memory.recall import LongTermMemory
    from companion.store import Store
    if quick:
        sizes, queries, embed_budget_s, warmup = (200, 1000), min(queries, 8), min(embed_budget_s, 20.0), 1
    sizes = tuple(sorted(set(int(s) for s in sizes)))
    largest = sizes[-1]
    texts = filler_texts(largest, seed=seed)
    query_texts = latency_queries(queries + warmup, seed=seed + 1)

    embedder, load_s = common.load_embedder()
    embedder.embed(["warm up the embedder"])

    # time every embed call made through the instance (index batches and recall's query)
    original_embed = embedder.embed
    embed_log: list[float] = []
    captured: list[list[list[float]]] = []
    capture = {"on": False}

    def timed_embed(batch_texts: list[str]) -> list[list[float]]:
        t = time.perf_counter()
        vectors = original_embed(batch_texts)
        embed_log.append(time.perf_counter() - t)
        if capture["on"]:
            captured.append(vectors)
        return vectors

    embedder.embed = timed_embed

    tmp = tempfile.TemporaryDirectory(prefix="bench-recall-latency-", ignore_cleanup_errors=True)
    stores: dict[int, tuple[Store, LongTermMemory, int]] = {}
    try:
        for size in sizes:
            folder = Path(tmp.name) / f"n{size}"
            store = Store(folder / "companion.db")
            memory = LongTermMemory(store, embedder, folder / "chroma")
            stores[size] = (store, memory, store.active_companion_id())

        # rows of every store (the same texts in the same order: the same ids)
        rows_by_size: dict[int, list[dict]] = {}
        insert_s: dict[int, float] = {}
        for size in sizes:
            store, _, cid = stores[size]
            t = time.perf_counter()
            with store.transaction():
                rows_by_size[size] = [store.add_memory(cid, text, "exchange") for text in texts[:size]]
            insert_s[size] = time.perf_counter() - t
        ids = [row["id"] for row in rows_by_size[largest]]
        for size in sizes:
            assert [row["id"] for row in rows_by_size[size]] == ids[:size]

        # the largest store: embed + index through LongTermMemory.index until done or out of budget
        store, memory, cid = stores[largest]
        rows = rows_by_size[largest]
        capture["on"] = True
        batch_s: list[float] = []
        batch_embed_s: list[float] = []
        first_rate = projected_s = None
        indexed_real = 0
        while indexed_real < largest:
            chunk = rows[indexed_real:indexed_real + batch]
            mark = len(embed_log)
            t = time.perf_counter()
            memory.index(chunk)
            batch_s.append(time.perf_counter() - t)
            batch_embed_s.append(sum(embed_log[mark:]))
            indexed_real += len(chunk)
            if first_rate is None:
                first_rate = len(chunk) / batch_s[0]
                projected_s = largest / first_rate
            if sum(batch_s) >= embed_budget_s:
                break
        capture["on"] = False
        real = indexed_real
        index_s = sum(batch_s)
        dim = len(captured[0][0])
        vectors = np.zeros((largest, dim), dtype=np.float32)
        vectors[:real] = np.asarray([v for part in captured for v in part], dtype=np.float32)[:real]
        captured.clear()

        # the rest: perturbed copies of the real vectors, upserted straight into Chroma
        filled = largest - real
        fill_cos = []
        upsert_fill_s = 0.0
        if filled:
            rng = np.random.default_rng(seed)
            source = rng.integers(0, real, size=filled)
            noisy = vectors[source] + rng.normal(0.0, perturb_sigma, size=(filled, dim)).astype(np.float32)
            noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
            fill_cos = np.einsum("ij,ij->i", noisy, vectors[source])
            vectors[real:] = noisy
            collection = memory.collection()
            t = time.perf_counter()
            for start in range(real, largest, upsert_chunk):
                end = min(largest, start + upsert_chunk)
                collection.upsert(ids=[str(i) for i in ids[start:end]], embeddings=vectors[start:end],
                                  metadatas=[{"companion_id": cid}] * (end - start),
                                  documents=texts[start:end])
            upsert_fill_s = time.perf_counter() - t

        # the smaller stores: the same rows and vectors, upserted directly
        upsert_small_s = {}
        for size in sizes[:-1]:
            _, small_memory, small_cid = stores[size]
            collection = small_memory.collection()
            t = time.perf_counter()
            for start in range(0, size, upsert_chunk):
                end = min(size, start + upsert_chunk)
                collection.upsert(ids=[str(i) for i in ids[start:end]], embeddings=vectors[start:end],
                                  metadatas=[{"companion_id": small_cid}] * (end - start),
                                  documents=texts[start:end])
            upsert_small_s[size] = time.perf_counter() - t
        counts = {size: stores[size][1].indexed_count() for size in sizes}

        # queries: round-robin over the sizes, order rotated each query
        names = [str(s) for s in sizes]
        query_vectors = [original_embed([q])[0] for q in query_texts]  # for the bare Chroma query
        chroma_ms = {s: [] for s in sizes}
        recall_ms = {s: [] for s in sizes}
        embed_ms = {s: [] for s in sizes}
        returned = {s: [] for s in sizes}
        for i, query in enumerate(query_texts):
            for name in common.alternating(i, names):
                size = int(name)
                _, mem, c = stores[size]
                mark = len(embed_log)
                t = time.perf_counter()
                found = mem.recall(c, query, k=5, min_relevance=-1.0)
                elapsed = (time.perf_counter() - t) * 1000
                t = time.perf_counter()
                mem.collection().query(query_embeddings=[query_vectors[i]], n_results=min(counts[size], 30),
                                       where={"companion_id": int(c)}, include=["distances", "embeddings"])
                bare = (time.perf_counter() - t) * 1000
                if i < warmup:
                    continue
                chroma_ms[size].append(bare)
                recall_ms[size].append(elapsed)
                embed_ms[size].append(sum(embed_log[mark:]) * 1000)
                returned[size].append(len(found))

        # probe: the query embedding at torch's default thread count against one thread
        probe = None
        try:
            import torch

            default_threads = torch.get_num_threads()
            probe_ms = {"default": [], "one_thread": []}
            for i, query in enumerate(query_texts[: max(6, min(20, queries))]):
                for arm in common.alternating(i, ["default", "one_thread"]):
                    torch.set_num_threads(default_threads if arm == "default" else 1)
                    t = time.perf_counter()
                    original_embed([query])
                    probe_ms[arm].append((time.perf_counter() - t) * 1000)
            torch.set_num_threads(default_threads)
            probe = {"torch_default_threads": default_threads,
                     "default_ms": _ms_summary(probe_ms["default"]),
                     "one_thread_ms": _ms_summary(probe_ms["one_thread"]),
                     "ratio_p50_one_over_default": common.ratio(common.percentile(probe_ms["one_thread"], 50),
                                                                common.percentile(probe_ms["default"], 50))}
        except Exception as exc:  # pragma: no cover - torch is a dependency of the embedder
            probe = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        embedder.embed = original_embed
        for store, _, _ in stores.values():
            store.close()
        tmp.cleanup()

    per_size = {}
    for size in sizes:
        rest = [r - e for r, e in zip(recall_ms[size], embed_ms[size])]
        per_size[str(size)] = {
            "memories": size, "indexed": counts[size],
            "embedded_rows": min(size, real), "precomputed_rows": max(0, size - real),
            "recall_ms": _ms_summary(recall_ms[size]),
            "query_embed_ms": _ms_summary(embed_ms[size]),
            "rest_ms_chroma_sqlite_scoring": _ms_summary(rest),
            "bare_chroma_query_ms": _ms_summary(chroma_ms[size]),
            "returned_median": statistics.median(returned[size]) if returned[size] else None,
            "sqlite_insert_s": round(insert_s[size], 2),
        }
    smallest = str(sizes[0])
    target_size = TARGET_SIZE if TARGET_SIZE in sizes else largest
    p50 = per_size[str(target_size)]["recall_ms"]["p50"]
    fill_note = None
    if filled:
        fill_note = (f"embedding ran at {first_rate:.1f} memories/s on the first batch, so {largest} would take "
                     f"~{projected_s / 60:.1f} min (budget {embed_budget_s / 60:.1f} min): {real} rows were embedded "
                     f"through LongTermMemory.index and the other {filled} got precomputed vectors (embedded "
                     f"vectors reused with Gaussian noise sigma={perturb_sigma}, renormalized) upserted straight "
                     f"into Chroma with matching SQLite rows")
    return {
        "benchmark": "recall_latency",
        "parameters": {"sizes": list(sizes), "queries": queries, "warmup": warmup, "quick": quick, "k": 5,
                       "min_relevance": -1.0, "index_batch": batch, "embed_budget_s": embed_budget_s,
                       "seed": seed, "perturb_sigma": perturb_sigma},
        "machine": common.machine(),
        "embedder": {"name": embedder.name, "load_s": round(load_s, 2), "dim": dim},
        "ingestion": {
            "through_memory_index": {
                "memories": real, "seconds": round(index_s, 1),
                "memories_per_s": round(real / index_s, 1),
                "batch_memories_per_s": {"p50": _p([batch / s for s in batch_s[:-1] or batch_s], 50),
                                         "first_batch": round(first_rate, 1),
                                         "last_full_batch": round(batch / batch_s[-2], 1) if len(batch_s) > 1 else None},
                "embedding_share": round(sum(batch_embed_s) / index_s, 3),
            },
            "precomputed_upsert_memories_per_s": round(filled / upsert_fill_s, 1) if filled else None,
            "direct_upsert_small_stores_s": {str(s): round(v, 2) for s, v in upsert_small_s.items()},
        },
        "precomputed_vectors": {
            "used": bool(filled), "embedded_rows": real, "precomputed_rows": filled,
            "projected_full_embedding_min": round(projected_s / 60, 1) if projected_s else None,
            "fill_cosine_to_source_median": round(float(np.median(fill_cos)), 3) if filled else None,
            "why": fill_note,
        },
        "recall": per_size,
        "ratios_p50_vs_smallest": {str(s): common.ratio(per_size[str(s)]["recall_ms"]["p50"],
                                                        per_size[smallest]["recall_ms"]["p50"]) for s in sizes},
        "query_embedding_probe": probe,
        "targets": {f"recall_p50_ms_at_{target_size}": {"target": f"<= {TARGET_P50_MS}", "value": p50,
                                                        "met": p50 is not None and p50 <= TARGET_P50_MS}},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="sizes 200 and 1000, a few queries")
    parser.add_argument("--queries", type=int, default=50)
    args = parser.parse_args()
    print(json.dumps(run(queries=args.queries, quick=args.quick), indent=2))


if __name__ == "__main__":
    main()
