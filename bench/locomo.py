"""Benchmark: long-term memory recall on LoCoMo, real multi-session conversations nobody here wrote.

Data (``bench/data/locomo/``, see its README for the source and licence): conversations of the
public LoCoMo dataset (Maharana et al., 2024), each two people chatting over months in 19-32
dated sessions (~600 turns, photos described in text), with questions of five categories whose
evidence is the dialogue turns that hold the answer: 1 multi-hop, 2 temporal, 3 open-domain,
4 single-hop, 5 adversarial (asks about something the other person did; left out of the
figures, as in the dataset's own retrieval evaluation).

Split: the weights are chosen on the ``TUNING`` conversations; the headline is on the others
(``HELD_OUT``), which no setting was chosen on. Both are reported.

Memory units, each a memory of one companion, made at its session's date (turns a minute apart):

* ``turn``: one turn, ``"Name: text"`` (a photo as ``[photo: caption]``).
* ``exchange``: two consecutive turns of a session, one memory, as the daemon keeps an
  exchange (``{{user}}: ...\\n{{char}}: ...``, whoever spoke first in the user's place), the
  names written in the lines; the daemon indexes it as it indexes its own
  (``companion.memory.units.views``: what the first said, and the whole exchange).

A question's recall@k is the share of its evidence turns inside the top k units (an exchange
holds two turns); hit@k whether any is. Arms, over the same units of the same store:

* ``bm25``: BM25 Okapi over the unit texts (bench/recall_quality.py's).
* ``brute_force_cosine``: exact cosine between the question's and every unit's embedding of
  its whole text (both lines of an exchange).
* ``daemon``: ``LongTermMemory.recall(companion, question, k, now=after the last session)``
  with the settings of ``companion.config.MemorySettings()`` (the defaults), through a real
  SQLite store and Chroma index; also run with the settings of the ``variants`` (each weight's
  measured effect).

    python -m bench.locomo [--conversations conv-41,conv-42] [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import common
from .recall_quality import BM25, Built, Item

DATA = Path(__file__).resolve().parent / "data" / "locomo"
CATEGORIES = {1: "multi_hop", 2: "temporal", 3: "open_domain", 4: "single_hop", 5: "adversarial"}
REPORTED = ("single_hop", "multi_hop", "temporal", "open_domain")
TUNING = ("conv-26", "conv-30")
HELD_OUT = ("conv-41", "conv-42", "conv-43", "conv-44")
KS = (5, 10)
UNITS = ("turn", "exchange")
TARGET_RATIO = 1.10


@dataclass
class Turn:
    dia_id: str
    speaker: str
    text: str
    photo: str = ""


@dataclass
class Session:
    number: int
    when: _dt.datetime
    turns: list[Turn]


@dataclass
class Question:
    category: int
    evidence: list[str]
    text: str
    answer: str

    @property
    def kind(self) -> str:
        return CATEGORIES[self.category]


@dataclass
class Conversation:
    sample_id: str
    speaker_a: str
    speaker_b: str
    sessions: list[Session]
    questions: list[Question] = field(default_factory=list)

    @property
    def end(self) -> _dt.datetime:
        """A day after the last session: when the questions are asked."""
        return self.sessions[-1].when + _dt.timedelta(days=1)


def session_time(text: str) -> _dt.datetime:
    """A LoCoMo session time ("1:56 pm on 8 May, 2023") as an aware UTC datetime."""
    return _dt.datetime.strptime(text.strip(), "%I:%M %p on %d %B, %Y").replace(tzinfo=_dt.timezone.utc)


def load(sample_id: str, folder: Path = DATA) -> Conversation:
    """One conversation and its questions from the folder's two text files."""
    header: dict[str, str] = {}
    sessions: list[Session] = []
    for line in (folder / f"{sample_id}.conversation.txt").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        if line.startswith("## session "):
            number, when = line[len("## session "):].split(": ", 1)
            sessions.append(Session(int(number), session_time(when), []))
        elif sessions:
            parts = line.split(" | ")
            dia_id, speaker, rest = parts[0].strip(), parts[1].strip(), parts[2:]
            photo = ""
            if rest and rest[-1].startswith("photo: "):
                photo = rest.pop()[len("photo: "):].strip()
            sessions[-1].turns.append(Turn(dia_id, speaker, " | ".join(rest).strip(), photo))
        else:
            key, value = line.split(":", 1)
            header[key.strip()] = value.strip()
    questions = []
    for line in (folder / f"{sample_id}.qa.txt").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        category, evidence, *rest = line.split(" | ")
        question, answer = rest[0], " | ".join(rest[1:])
        questions.append(Question(int(category), [e.strip() for e in evidence.split(",") if e.strip()],
                                  question.strip(), answer.strip()))
    return Conversation(header.get("sample_id", sample_id), header["speaker_a"], header["speaker_b"],
                        sessions, questions)


def available(folder: Path = DATA) -> list[str]:
    """The conversations whose two files are in the folder."""
    return sorted(p.name[:-len(".conversation.txt")] for p in folder.glob("*.conversation.txt")
                  if (folder / p.name.replace(".conversation.txt", ".qa.txt")).exists())


# --- memory units -----------------------------------------------------------------------------

@dataclass
class Unit:
    text: str            # as stored
    whole: str           # the text the baselines embed and match
    created_at: str
    turns: tuple[str, ...]


def said(turn: Turn) -> str:
    return f"{turn.text} [photo: {turn.photo}]" if turn.photo else turn.text


def units(conversation: Conversation, kind: str) -> list[Unit]:
    """The conversation as memories of one kind (module docstring)."""
    out: list[Unit] = []
    for session in conversation.sessions:
        turns = session.turns
        step = 1 if kind == "turn" else 2
        for n in range(0, len(turns), step):
            part = turns[n:n + step]
            when = (session.when + _dt.timedelta(minutes=n)).isoformat()
            lines = [f"{t.speaker}: {said(t)}" for t in part]
            whole = "\n".join(lines)
            if kind == "exchange" and len(part) == 2:
                text = f"{{{{user}}}}: {lines[0]}\n{{{{char}}}}: {lines[1]}"
            else:
                text = whole
            out.append(Unit(text, whole, when, tuple(t.dia_id for t in part)))
    return out


# --- scoring ----------------------------------------------------------------------------------

def score(found: list[int], unit_list: list[Unit], evidence: set[str], k: int) -> tuple[float, bool]:
    """(share of the evidence turns in the first k units, whether any is)."""
    covered = {t for i in found[:k] for t in unit_list[i].turns} & evidence
    return len(covered) / len(evidence), bool(covered)


def summarize(rows: list[dict]) -> dict:
    """Mean recall@k and hit@k overall and per kind."""
    def block(subset: list[dict]) -> dict:
        if not subset:
            return {"questions": 0}
        out: dict = {"questions": len(subset)}
        for k in KS:
            out[f"recall_at_{k}"] = round(sum(r[f"r{k}"] for r in subset) / len(subset), 4)
            out[f"hit_at_{k}"] = round(sum(r[f"h{k}"] for r in subset) / len(subset), 4)
        return out
    return {"overall": block(rows), "by_kind": {kind: block([r for r in rows if r["kind"] == kind])
                                               for kind in REPORTED}}


def evaluate(conversation: Conversation, kind: str, embedder, folder: Path, variants: dict) -> dict[str, list[dict]]:
    """Every arm's per-question scores on one conversation cut into units of one kind."""
    import numpy as np

    from companion.config import MemorySettings
    from companion.memory.ranking import side_by_side
    from companion.memory.units import views

    unit_list = units(conversation, kind)
    known = {t for u in unit_list for t in u.turns}
    questions = [q for q in conversation.questions
                 if q.kind in REPORTED and any(e in known for e in q.evidence)]
    # the index's vectors as the daemon makes them, and the baseline's (the whole unit), in one call
    both = side_by_side(embedder.embed, [views(u.text) for u in unit_list] + [(u.whole, u.whole) for u in unit_list])
    stored_vectors, whole_vectors = both[:len(unit_list)], both[len(unit_list):, :both.shape[1] // 2]
    question_vectors = np.asarray(embedder.embed([q.text for q in questions]), dtype=np.float32)
    bm25 = BM25([u.whole for u in unit_list])
    everything = list(range(len(unit_list)))
    built = Built([Item(u.text, u.created_at) for u in unit_list], embedder, folder, stored_vectors)
    depth = max(KS)
    rows: dict[str, list[dict]] = {}

    def record(arm: str, q: Question, found: dict[int, list[int]]) -> None:
        evidence = {e for e in q.evidence if e in known}
        row = {"kind": q.kind, "question": q.text}
        for k in KS:
            row[f"r{k}"], row[f"h{k}"] = score(found[k], unit_list, evidence, k)
        rows.setdefault(arm, []).append(row)

    try:
        settings = {"daemon": MemorySettings(), **variants}
        for q, qv in zip(questions, question_vectors):
            top = bm25.top(q.text, everything, depth)
            record("bm25", q, {k: top for k in KS})
            top = [int(i) for i in np.argsort(-(whole_vectors @ qv), kind="stable")[:depth]]
            record("brute_force_cosine", q, {k: top for k in KS})
            for arm, options in settings.items():
                built.memory.options = options
                # recall orders its k (newest first among them): each k is asked apart
                record(arm, q, {k: [built.position[m.id] for m in
                                    built.memory.recall(built.cid[0], q.text, k=k, now=conversation.end)]
                                for k in KS})
    finally:
        built.close()
    return rows


def settings_of(variant: str):
    """MemorySettings with a variant's changes over the defaults ('a=1+b=2'; 'default' for none)."""
    from companion.config import MemorySettings

    options = MemorySettings()
    if variant == "default":
        return options
    changes: dict = {}
    for part in variant.split("+"):
        key, value = part.split("=", 1)
        current = getattr(options, key)
        changes[key] = (value.lower() in ("1", "true", "yes")) if isinstance(current, bool) else type(current)(value)
    return dataclasses.replace(options, **changes)


def run(conversations: tuple[str, ...] = (), quick: bool = False, variants: tuple[str, ...] = ()) -> dict:
    chosen = list(conversations) or [c for c in TUNING + HELD_OUT if c in available()]
    if quick:
        chosen = chosen[:1]
    embedder, load_s = common.load_embedder()
    embedder.embed(["warm up the embedder"])
    per_arm: dict[str, dict[str, dict[str, list[dict]]]] = {}   # unit kind -> arm -> conversation -> rows
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-locomo-", ignore_cleanup_errors=True) as tmp:
        for sample_id in chosen:
            conversation = load(sample_id)
            if quick:
                conversation.questions = conversation.questions[:40]
            for kind in UNITS:
                rows = evaluate(conversation, kind, embedder, Path(tmp) / f"{sample_id}-{kind}",
                                {v: settings_of(v) for v in variants})
                for arm, arm_rows in rows.items():
                    per_arm.setdefault(kind, {}).setdefault(arm, {})[sample_id] = arm_rows

    def pooled(kind: str, arm: str, which: tuple[str, ...]) -> dict:
        return summarize([r for c, rs in per_arm[kind][arm].items() if c in which for r in rs])

    split = {"tuning": tuple(c for c in chosen if c in TUNING),
             "held_out": tuple(c for c in chosen if c not in TUNING)}
    results = {kind: {part: {arm: pooled(kind, arm, which) for arm in per_arm[kind]}
                      for part, which in split.items() if which}
               for kind in per_arm}
    per_conversation = {kind: {arm: {c: summarize(rs)["overall"] for c, rs in convs.items()}
                               for arm, convs in arms.items()} for kind, arms in per_arm.items()}
    targets = {}
    for kind in per_arm:
        part = results[kind].get("held_out") or results[kind].get("tuning")
        daemon, brute = part["daemon"], part["brute_force_cosine"]
        ratio = common.ratio(daemon["overall"]["recall_at_5"], brute["overall"]["recall_at_5"])
        below = [k for k in REPORTED if daemon["by_kind"][k].get("recall_at_5", 0) < brute["by_kind"][k].get("recall_at_5", 0)]
        targets[kind] = {
            "daemon_over_brute_force_recall_at_5": {"target": f">= {TARGET_RATIO}", "value": ratio,
                                                    "met": ratio is not None and ratio >= TARGET_RATIO},
            "daemon_at_least_brute_force_every_kind": {"met": not below, "kinds_below": below}}
    return {
        "benchmark": "locomo",
        "parameters": {"conversations": chosen, "tuning": list(split["tuning"]), "held_out": list(split["held_out"]),
                       "quick": quick, "ks": list(KS), "units": list(UNITS), "variants": list(variants)},
        "machine": common.machine(),
        "embedder": {"name": embedder.name, "load_s": round(load_s, 2)},
        "seconds": round(time.perf_counter() - began, 1),
        "targets": targets,
        "results": results,
        "per_conversation": per_conversation,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", default="", help="comma-separated sample ids (default: all present)")
    parser.add_argument("--variant", action="append", default=[], help="a settings variant, e.g. lexical_weight=0")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    chosen = tuple(c for c in args.conversations.split(",") if c)
    print(json.dumps(run(chosen, args.quick, tuple(args.variant)), indent=2))


if __name__ == "__main__":
    main()
