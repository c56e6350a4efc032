"""The LoCoMo benchmark's data and scoring (bench/locomo.py): pure, no model."""

from __future__ import annotations

import re

from bench import locomo


def test_the_six_conversations_parse_whole():
    ids = locomo.available()
    assert ids == ["conv-26", "conv-30", "conv-41", "conv-42", "conv-43", "conv-44"]
    assert set(locomo.TUNING) | set(locomo.HELD_OUT) == set(ids) and not set(locomo.TUNING) & set(locomo.HELD_OUT)
    for sample_id in ids:
        conversation = locomo.load(sample_id)
        assert conversation.sample_id == sample_id
        assert [s.number for s in conversation.sessions] == list(range(1, len(conversation.sessions) + 1))
        assert all(a.when < b.when for a, b in zip(conversation.sessions, conversation.sessions[1:]))
        for session in conversation.sessions:        # turns D<session>:1, :2, ... in order, by the two people
            assert [t.dia_id for t in session.turns] == [f"D{session.number}:{n}" for n in range(1, len(session.turns) + 1)]
            assert {t.speaker for t in session.turns} <= {conversation.speaker_a, conversation.speaker_b}
            assert all(t.text or t.photo for t in session.turns)
        known = {t.dia_id for s in conversation.sessions for t in s.turns}
        asked = [q for q in conversation.questions if q.kind in locomo.REPORTED]
        assert len(asked) >= 80 and all(q.text.strip() and q.answer.strip() for q in asked)
        evidence = [e for q in asked for e in q.evidence]
        assert sum(e in known for e in evidence) / len(evidence) > 0.98    # the dataset's few broken ids aside
        assert all(re.fullmatch(r"D\d+:\d+", e) for e in evidence if e in known)


def test_units_and_scores():
    conversation = locomo.load("conv-26")
    turns = locomo.units(conversation, "turn")
    exchanges = locomo.units(conversation, "exchange")
    assert len(turns) == sum(len(s.turns) for s in conversation.sessions)
    first = conversation.sessions[0].turns
    assert turns[0].text == f"{first[0].speaker}: {first[0].text}" and turns[0].turns == ("D1:1",)
    assert exchanges[0].turns == ("D1:1", "D1:2")
    lines = [f"{t.speaker}: {t.text}" for t in first[:2]]
    assert exchanges[0].text == f"{{{{user}}}}: {lines[0]}\n{{{{char}}}}: {lines[1]}"
    assert exchanges[0].whole == "\n".join(lines)
    photo = next(t for t in turns if "[photo: " in t.text)
    assert photo.text.endswith("]")
    # recall@k: the share of the evidence turns in the first k units; hit@k: any of them
    assert locomo.score([0, 1], exchanges, {"D1:2", "D1:3"}, 1) == (0.5, True)
    assert locomo.score([0, 1], exchanges, {"D1:2", "D1:3"}, 2) == (1.0, True)
    assert locomo.score([5], exchanges, {"D1:2"}, 5) == (0.0, False)
    assert locomo.session_time("1:56 pm on 8 May, 2023").isoformat() == "2023-05-08T13:56:00+00:00"
