"""Benchmark: long-term memory recall quality on a LoCoMo/LongMemEval-like corpus.

A generated corpus (``bench/corpus.py``, deterministic from the seed): long conversations
between a user and a companion, one companion per conversation, each exchange stored as one
memory row in the daemon's form ("{{user}}: ...\\n{{char}}: ...", source "exchange") with a
``created_at`` spread over weeks, newest last. Some exchanges plant facts; after the
conversation, questions ask about them, of three kinds: ``single`` (one fact), ``updated`` (an
early fact and a later change: the correct memory is the latest) and ``time`` ("What did I do
last Tuesday?").

The rows are indexed with ``LongTermMemory.index`` in batches of 256 (embedding included, timed),
then each question goes through ``LongTermMemory.recall(companion_id, question, k=5,
min_relevance=-1.0)``; a question counts as recalled when the planted memory's id is among
the 5 (recall@5). Also reported: recall@1, MRR@5 and, for updated facts, how often the latest
memory ranks above the superseded one. A keyword baseline runs on the same texts and
questions: BM25 Okapi (k1=1.5, b=0.75, Lucene's idf as in tantivy, lowercase word tokens, no
stemming or stop words; one index over all memories, filtered to the companion, ties broken
newest first), which is what the AI Companion project does with tantivy. Two reference arms, not the
daemon's recall, show where its ranking stands: Chroma's plain cosine top 5 (no recency, no
de-duplication) and a hybrid, reciprocal rank fusion of cosine and BM25.

Target: dense recall@5 over all questions >= 0.90.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

from . import common
from .corpus import corpus

TARGET_RECALL_AT_5 = 0.90
KINDS = ("single", "updated", "time")
TOKEN = re.compile(r"[a-z0-9]+")


# --- the keyword baseline ---------------------------------------------------------------------

def tokens(text: str) -> list[str]:
    return TOKEN.findall(text.lower())


class BM25:
    """BM25 Okapi over a fixed list of documents (idf = ln(1 + (N - n + 0.5) / (n + 0.5)))."""

    def __init__(self, docs: list[str], k1: float = 1.5, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.tf = [Counter(tokens(d)) for d in docs]
        self.length = [sum(tf.values()) for tf in self.tf]
        self.avgdl = sum(self.length) / max(1, len(docs))
        df = Counter(t for tf in self.tf for t in tf)
        n = len(docs)
        self.idf = {t: math.log(1 + (n - c + 0.5) / (c + 0.5)) for t, c in df.items()}

    def score(self, query: list[str], i: int) -> float:
        tf, norm = self.tf[i], self.k1 * (1 - self.b + self.b * self.length[i] / self.avgdl)
        return sum(self.idf.get(t, 0.0) * tf[t] * (self.k1 + 1) / (tf[t] + norm)
                   for t in query if t in tf)

    def top(self, query: str, candidates: list[int], k: int) -> list[int]:
        q = tokens(query)
        return sorted(candidates, key=lambda i: (-self.score(q, i), -i))[:k]


def rrf(rankings: list[list[int]], k: int, c: int = 60) -> list[int]:
    """Reciprocal rank fusion of several rankings (ties newest, i.e. highest id, first)."""
    score: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, 1):
            score[item] = score.get(item, 0.0) + 1.0 / (c + rank)
    return sorted(score, key=lambda i: (-score[i], -i))[:k]


# --- metrics ----------------------------------------------------------------------------------

def _rank(ids: list[int], wanted: int | None) -> int | None:
    """1-based rank of wanted in ids, None when absent."""
    if wanted is None:
        return None
    return ids.index(wanted) + 1 if wanted in ids else None


def summarize(results: list[dict], k: int) -> dict:
    """recall@k, recall@1, MRR@k overall and by kind; for updated facts the order of new and old."""
    def block(rs: list[dict]) -> dict:
        if not rs:
            return {"questions": 0}
        ranks = [r["rank"] for r in rs]
        out = {
            "questions": len(rs),
            f"recall_at_{k}": round(sum(x is not None for x in ranks) / len(rs), 4),
            "recall_at_1": round(sum(x == 1 for x in ranks) / len(rs), 4),
            f"mrr_at_{k}": round(sum(1 / x for x in ranks if x) / len(rs), 4),
        }
        upd = [r for r in rs if r["kind"] == "updated"]
        if upd:
            inf = k + 1
            out["updated_latest_above_stale"] = round(
                sum((r["rank"] or inf) < (r["stale_rank"] or inf) for r in upd) / len(upd), 4)
            out["updated_stale_in_top"] = round(sum(r["stale_rank"] is not None for r in upd) / len(upd), 4)
            out["updated_stale_first"] = round(sum(r["stale_rank"] == 1 for r in upd) / len(upd), 4)
        return out

    return {"overall": block(results), "by_kind": {kind: block([r for r in results if r["kind"] == kind])
                                                    for kind in KINDS}}


def _one_line(text: str) -> str:
    return text.replace("\n", " | ")


# --- the benchmark ----------------------------------------------------------------------------

def run(conversations: int = 20, seed: int = 0, quick: bool = False, exchanges: int = 60,
        facts: int = 6, k: int = 5, batch: int = 256, examples: int = 10) -> dict:
    from companion.memory import LongTermMemory
    from companion.store import Store

    if quick:
        conversations, exchanges, facts = min(conversations, 2), min(exchanges, 20), min(facts, 6)
    convs = corpus(seed=seed, conversations=conversations, exchanges=exchanges, facts=facts)
    embedder, load_s = common.load_embedder()

    with tempfile.TemporaryDirectory(prefix="bench-recall-quality-", ignore_cleanup_errors=True) as tmp:
        store = Store(Path(tmp) / "companion.db")
        memory = LongTermMemory(store, embedder, Path(tmp) / "chroma")
        try:
            # rows: one companion per conversation, every exchange one memory
            companion_ids: list[int] = []
            rows_by_conv: list[list[dict]] = []
            with store.transaction():
                for i, conv in enumerate(convs):
                    cid = (store.active_companion_id() if i == 0
                           else store.create_companion({"name": f"Companion {i}"}))
                    companion_ids.append(cid)
                    rows_by_conv.append([store.add_memory(cid, ex.text, "exchange", created_at=ex.created_at)
                                         for ex in conv.exchanges])
            all_rows = [row for rows in rows_by_conv for row in rows]

            # index: embedding + upsert, in batches like reconcile
            batch_s = []
            for start in range(0, len(all_rows), batch):
                t = time.perf_counter()
                memory.index(all_rows[start:start + batch])
                batch_s.append(time.perf_counter() - t)
            index_s = sum(batch_s)
            indexed = memory.indexed_count()

            # BM25 over every memory text (one index), candidates filtered to the companion
            position = {row["id"]: n for n, row in enumerate(all_rows)}
            bm25 = BM25([row["text"] for row in all_rows])

            # the question vectors, once, for the reference arms (recall embeds on its own)
            question_vectors = embedder.embed([q.text for conv in convs for q in conv.questions])
            collection = memory.collection()
            dense, keyword, cosine_only, hybrid, recall_ms = [], [], [], [], []
            qn = 0
            text_of = {row["id"]: row["text"] for row in all_rows}
            created_of = {row["id"]: row["created_at"] for row in all_rows}
            for conv, cid, rows in zip(convs, companion_ids, rows_by_conv):
                candidates = [position[row["id"]] for row in rows]
                for q in conv.questions:
                    expected = rows[q.expected]["id"]
                    stale = rows[q.stale]["id"] if q.stale is not None else None
                    t = time.perf_counter()
                    found = memory.recall(cid, q.text, k=k, min_relevance=-1.0)
                    recall_ms.append((time.perf_counter() - t) * 1000)
                    ids = [m.id for m in found]
                    base = {"qid": q.qid, "kind": q.kind, "question": q.text, "expected_id": expected,
                            "stale_id": stale}
                    dense.append({**base, "rank": _rank(ids, expected), "stale_rank": _rank(ids, stale),
                                  "ids": ids, "scores": [m.score for m in found],
                                  "relevance": [getattr(m, "relevance", None) for m in found]})
                    deep_bm25 = [all_rows[i]["id"] for i in bm25.top(q.text, candidates, 50)]
                    top = deep_bm25[:k]
                    keyword.append({**base, "rank": _rank(top, expected), "stale_rank": _rank(top, stale),
                                    "ids": top})
                    raw = collection.query(query_embeddings=[question_vectors[qn]], n_results=min(50, len(rows)),
                                           where={"companion_id": int(cid)}, include=["distances"])
                    qn += 1
                    deep_cos = [int(i) for i in raw["ids"][0]]
                    cosine_only.append({**base, "rank": _rank(deep_cos[:k], expected),
                                        "stale_rank": _rank(deep_cos[:k], stale)})
                    fused = rrf([deep_cos, deep_bm25], k)
                    hybrid.append({**base, "rank": _rank(fused, expected), "stale_rank": _rank(fused, stale)})

            # examples of what went wrong, with the expected memory's rank among the first 50
            def example(r: dict, cid: int) -> dict:
                deep = memory.recall(cid, r["question"], k=50, min_relevance=-1.0)
                deep_ids = [m.id for m in deep]
                scores = {m.id: m.score for m in deep}
                relevance = {m.id: getattr(m, "relevance", None) for m in deep}
                first = r["ids"][0] if r["ids"] else None
                out = {"kind": r["kind"], "question": r["question"],
                       "expected": _one_line(text_of[r["expected_id"]]),
                       "expected_rank_within_50": _rank(deep_ids, r["expected_id"]),
                       "expected_score": scores.get(r["expected_id"]),
                       "expected_relevance": relevance.get(r["expected_id"]),
                       "first_instead": _one_line(text_of[first]) if first else None,
                       "first_score": r["scores"][0] if r["scores"] else None,
                       "first_relevance": r["relevance"][0] if r["relevance"] else None,
                       "first_created_at": created_of[first] if first else None,
                       "expected_created_at": created_of[r["expected_id"]]}
                if r["stale_id"] is not None:
                    out["stale"] = _one_line(text_of[r["stale_id"]])
                    out["stale_rank_within_50"] = _rank(deep_ids, r["stale_id"])
                    out["stale_score"] = scores.get(r["stale_id"])
                    out["stale_relevance"] = relevance.get(r["stale_id"])
                return out

            cid_of = {q.qid: cid for conv, cid in zip(convs, companion_ids) for q in conv.questions}
            misses = [r for r in dense if r["rank"] is None]
            order = [r for r in dense if r["kind"] == "updated" and r["rank"] is not None
                     and r["stale_rank"] is not None and r["stale_rank"] < r["rank"]]
            failures = [example(r, cid_of[r["qid"]]) for r in misses[:examples]]
            order_failures = [example(r, cid_of[r["qid"]]) for r in order[:max(3, examples // 2)]]
            bm25_only = [{"kind": r["kind"], "question": r["question"],
                          "expected": _one_line(text_of[r["expected_id"]])}
                         for r, d in zip(keyword, dense) if r["rank"] is not None and d["rank"] is None][:examples]
            hits_expected = [d["scores"][d["rank"] - 1] for d in dense if d["rank"]]
            first_scores = [d["scores"][0] for d in dense if d["scores"]]
        finally:
            store.close()

    dense_summary = summarize(dense, k)
    keyword_summary = summarize(keyword, k)
    value = dense_summary["overall"][f"recall_at_{k}"]
    return {
        "benchmark": "recall_quality",
        "parameters": {"conversations": conversations, "exchanges_per_conversation": exchanges,
                       "facts_per_conversation": facts, "seed": seed, "quick": quick, "k": k,
                       "min_relevance": -1.0, "index_batch": batch},
        "machine": common.machine(),
        "embedder": {"name": embedder.name, "load_s": round(load_s, 2)},
        "corpus": {"conversations": len(convs), "memories": len(all_rows), "indexed": indexed,
                   "questions": len(dense),
                   "questions_by_kind": dict(Counter(r["kind"] for r in dense)),
                   "created_at_span": [min(r["created_at"] for r in all_rows),
                                       max(r["created_at"] for r in all_rows)]},
        "indexing": {"seconds": round(index_s, 2), "memories_per_s": round(len(all_rows) / index_s, 1),
                     "batches": len(batch_s),
                     "batch_s_median": round(statistics.median(batch_s), 3)},
        "dense": {**dense_summary,
                  "recall_ms_p50": round(common.percentile(recall_ms, 50), 1),
                  "recall_ms_p95": round(common.percentile(recall_ms, 95), 1),
                  "expected_score_median": round(statistics.median(hits_expected), 4) if hits_expected else None,
                  "first_score_median": round(statistics.median(first_scores), 4) if first_scores else None},
        "bm25": {**keyword_summary, "k1": 1.5, "b": 0.75,
                 "note": "BM25 Okapi, Lucene/tantivy idf, lowercase [a-z0-9]+ tokens, no stemming or "
                         "stop words, one index over all memories filtered to the companion, ties newest first"},
        "dense_minus_bm25_recall_at_5": round(value - keyword_summary["overall"][f"recall_at_{k}"], 4),
        "reference_arms": {
            "note": "not the daemon's recall: for comparison with it. cosine_only = Chroma's nearest k "
                    "(the same collection and filter, no recency, no de-duplication); hybrid_rrf = "
                    "reciprocal rank fusion (c=60) of cosine_only's top 50 and bm25's top 50",
            "cosine_only": summarize(cosine_only, k),
            "hybrid_rrf": summarize(hybrid, k),
        },
        "targets": {f"dense_recall_at_{k}_overall": {"target": f">= {TARGET_RECALL_AT_5}", "value": value,
                                                     "met": value >= TARGET_RECALL_AT_5}},
        "failures": {"dense_misses": len(misses), "examples": failures,
                     "updated_stale_ranked_above_latest": len(order),
                     "update_order_examples": order_failures,
                     "found_by_bm25_not_dense": bm25_only},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny corpus (a smoke check)")
    parser.add_argument("--conversations", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(json.dumps(run(conversations=args.conversations, seed=args.seed, quick=args.quick), indent=2))


if __name__ == "__main__":
    main()
