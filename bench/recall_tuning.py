"""Choosing recall's weights on data that is never reported: settings variants side by side.

The reported figures are ``bench/recall_quality.py`` (chat log seed 0) and ``bench/locomo.py``
(LoCoMo's held-out conversations). Weights are chosen here instead, on other data: the chat log
generator with other seeds (``--seeds``, default 1 and 2) and LoCoMo's tuning conversations
(``bench.locomo.TUNING``), both unit kinds. Each variant is ``field=value`` over the defaults
of ``companion.config.MemorySettings``, several joined with ``+``
(``lexical_weight=1+rarity_weight=0.5``); the defaults always run as ``default``.

    python -m bench.recall_tuning --variant lexical_weight=1 --variant rarity_weight=0.5

Without --variant it runs ``EFFECTS``: each weight off or moved, beside the defaults.

Prints one JSON document: per variant, recall@5 on each chat log seed (and newest first for
updated facts) and LoCoMo recall@5 per unit kind, and the worst of its ratios to the defaults.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from . import common, locomo
from .locomo import settings_of
from .recall_quality import Built, K, _rank, chatlog_corpus, default_end, embed_distinct


def chatlog_scores(seed: int, days: int, embedder, folder: Path, variants: dict) -> dict[str, dict]:
    """recall@5 and newest first of each variant on one generated chat log."""
    end = default_end(True)
    corpus = chatlog_corpus(seed, days, end)
    vectors, _, _ = embed_distinct(embedder, [it.text for it in corpus.items])
    built = Built(corpus.items, embedder, folder, vectors)
    out = {}
    try:
        for name, options in variants.items():
            built.memory.options = options
            hits, newest, updated = 0, 0, 0
            kinds: dict[str, list[int]] = {}
            for ask in corpus.asks:
                found = built.memory.recall(built.cid[ask.companion], ask.text, k=K, now=corpus.end)
                top = [built.position[m.id] for m in found if m.id in built.position]
                rank, stale = _rank(top, ask.expected), _rank(top, ask.stale)
                hits += rank is not None
                kinds.setdefault(ask.kind, []).append(rank is not None)
                if ask.kind == "updated":
                    updated += 1
                    newest += rank is not None and rank < (stale or K + 1)
            out[name] = {"recall_at_5": round(hits / len(corpus.asks), 4),
                         "updated_newest_first": round(newest / updated, 4) if updated else None,
                         "by_kind": {k: round(sum(v) / len(v), 4) for k, v in kinds.items()}}
    finally:
        built.close()
    return out


# each weight's effect: off, or moved to another value (the defaults are in companion/config.py)
EFFECTS = ("relevance_weight=0", "lexical_weight=0", "lexical_weight=0.5", "lexical_weight=1.5", "rarity_weight=0",
           "fusion_k=60", "recency_weight=0", "question_weight=1", "same_fact_similarity=1",
           "duplicate_similarity=1", "search_depth=20", "stock_reply_count=0", "same_fact_similarity=0.4")


def run(variants: tuple[str, ...] = EFFECTS, seeds: tuple[int, ...] = (1, 2), days: int = 90,
        conversations: tuple[str, ...] = locomo.TUNING) -> dict:
    names = ("default",) + tuple(v for v in variants if v != "default")
    options = {name: settings_of(name) for name in names}
    embedder, _ = common.load_embedder()
    table: dict[str, dict] = {name: {} for name in names}
    with tempfile.TemporaryDirectory(prefix="bench-recall-tuning-", ignore_cleanup_errors=True) as tmp:
        for seed in seeds:
            for name, scores in chatlog_scores(seed, days, embedder, Path(tmp) / f"chatlog-{seed}", options).items():
                table[name][f"chatlog_seed_{seed}"] = scores
        for kind in locomo.UNITS:
            rows: dict[str, list[dict]] = {}
            for sample_id in conversations:
                got = locomo.evaluate(locomo.load(sample_id), kind, embedder, Path(tmp) / f"{sample_id}-{kind}",
                                      {name: o for name, o in options.items() if name != "default"})
                for arm, arm_rows in got.items():
                    rows.setdefault("default" if arm == "daemon" else arm, []).extend(arm_rows)
            for arm, arm_rows in rows.items():
                summary = locomo.summarize(arm_rows)
                entry = {"recall_at_5": summary["overall"]["recall_at_5"],
                         "by_kind": {k: v.get("recall_at_5") for k, v in summary["by_kind"].items()}}
                table.setdefault(arm, {})[f"locomo_{kind}"] = entry
    base = table["default"]
    for name in names:
        ratios = [common.ratio(v["recall_at_5"], base[key]["recall_at_5"]) for key, v in table[name].items()
                  if key in base and base[key]["recall_at_5"]]
        table[name]["worst_ratio_to_default"] = min(r for r in ratios if r is not None) if ratios else None
    return {"benchmark": "recall_tuning", "seeds": list(seeds), "locomo_conversations": list(conversations),
            "variants": table}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", default=[])
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--days", type=int, default=90)
    args = parser.parse_args()
    print(json.dumps(run(tuple(args.variant) or EFFECTS, tuple(int(s) for s in args.seeds.split(",") if s), args.days), indent=1))


if __name__ == "__main__":
    main()
