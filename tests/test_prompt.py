"""The prompt builder: pure functions, tested directly."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from companion.chat.prompt import (
    GroupMember,
    PromptInput,
    Recalled,
    Turn,
    build_messages,
    describe_age,
    fit_history,
    memories_text,
    note_text,
    resolve_placeholders,
    window_start,
    with_text_before_newest,
)
from companion.chat.turn_input import said_in
from companion.model.generation import render_transcript


def test_placeholders_any_case():
    text = "{{char}} {{CHAR}} {{ User }} <BOT> <user> {{user}}"
    assert resolve_placeholders(text, "Mira", "Ann") == "Mira Mira Ann Mira Ann Ann"
    assert resolve_placeholders("", "a", "b") == ""


def test_layout_is_stable_then_volatile_then_newest():
    now = datetime(2026, 1, 10, tzinfo=timezone.utc)
    p = PromptInput(char="Mira", user="Ann", persona="{{char}} is a botanist.", personality="calm",
                    scenario="a greenhouse", user_persona="{{user}} paints.", roleplay=True,
                    example_dialogue="<START>\n{{user}}: hi\n{{char}}: hello\n<START>\n{{char}}: bye",
                    history=[Turn(True, "Hello {{user}}"), Turn(False, "Hi!")],
                    memories=[Recalled("{{user}}: I like ferns", (now - timedelta(days=3)).isoformat())],
                    newest="What do I like?", now=now)
    messages = build_messages(p)
    assert [m["role"] for m in messages] == ["system", "assistant", "user", "system", "user"]
    system = messages[0]["content"]
    for part in ("Mira is a botanist.", "calm", "a greenhouse", "Ann paints.", "asterisks",
                 "Ann: hi\nMira: hello", "Mira: bye"):
        assert part in system
    assert "<START>" not in system and "{{" not in system
    assert messages[1]["content"] == "Hello Ann"
    assert "3 days ago" in messages[3]["content"] and "Ann: I like ferns" in messages[3]["content"]
    assert messages[-1]["content"] == "What do I like?"


def test_the_volatile_part_tells_the_time_and_a_long_pause():
    now = datetime(2026, 11, 27, 15, 4, tzinfo=timezone(timedelta(hours=2)))
    p = PromptInput(char="A", user="B", newest="hello there", now=now,
                    last_message_at=(now - timedelta(minutes=20)).isoformat())
    messages = build_messages(p)
    assert [m["role"] for m in messages] == ["system", "system", "user"]
    assert messages[1]["content"] == "Current date and time: Friday 27 November 2026, 15:04"   # the person's local time
    p.last_message_at = "2026-11-24T09:00:00+00:00"
    assert build_messages(p)[1]["content"].endswith("Time since the last message: 3 days.")


def test_the_time_stays_out_of_the_cached_prefix():
    history = [Turn(True, "Hello B"), Turn(False, "Hi!"), Turn(True, "How are you?")]
    first = PromptInput(char="A", user="B", persona="p", history=history, newest="x",
                        now=datetime(2026, 11, 27, 15, 4, tzinfo=timezone.utc))
    later = PromptInput(char="A", user="B", persona="p", history=history, newest="y",
                        now=datetime(2026, 11, 27, 16, 4, tzinfo=timezone.utc))
    a, b = build_messages(first), build_messages(later)
    assert a[:-2] == b[:-2] and a[-2] != b[-2]       # everything before the volatile part is the same


def test_a_time_a_note_in_the_window_told_lately_is_not_told_again():
    zone = timezone(timedelta(hours=2))
    told = note_text(PromptInput(char="A", user="B", now=datetime(2026, 11, 27, 15, 4, tzinfo=zone)))
    assert told == "Current date and time: Friday 27 November 2026, 15:04"
    history = [Turn(True, "Hello B"), Turn(False, "Hi!", note=told), Turn(True, "How are you?")]

    def note_at(hour: int, minute: int, day: int = 27, **kw) -> str:
        return note_text(PromptInput(char="A", user="B", history=history, time_refresh_minutes=15,
                                     now=datetime(2026, 11, day, hour, minute, tzinfo=zone), **kw))

    assert note_at(15, 18) == ""                                        # 14 minutes on: the window tells it
    p = PromptInput(char="A", user="B", history=history, time_refresh_minutes=15, newest="x",
                    now=datetime(2026, 11, 27, 15, 18, tzinfo=zone))
    assert [m["role"] for m in build_messages(p)] == ["system", "assistant", "system", "user", "assistant", "user"]
    assert note_at(15, 19) == "Current date and time: Friday 27 November 2026, 15:19"    # 15 minutes: again
    assert note_at(15, 0).startswith("Current date and time")          # a clock set back
    assert note_at(15, 10, day=28).startswith("Current date and time: Saturday")   # another day
    assert "Ferns" in note_at(15, 10, memories=[Recalled("Ferns", "2026-11-20T10:00:00+00:00")])
    assert "Current date" not in note_at(15, 10, memories=[Recalled("Ferns", "2026-11-20T10:00:00+00:00")])
    history[1].note = "Lore only."                                      # no note in the window tells it
    assert note_at(15, 10).startswith("Current date and time")
    history[1].note = told
    assert note_text(PromptInput(char="A", user="B", history=history, now=datetime(2026, 11, 27, 15, 10, tzinfo=zone))
                     ).startswith("Current date and time")             # 0 minutes (the default): every turn


def test_system_part_does_not_change_with_history():
    p = PromptInput(char="A", user="B", persona="p", newest="x")
    first = build_messages(p)[0]
    p.history = [Turn(False, "one"), Turn(True, "two")]
    p.newest = "y"
    assert build_messages(p)[0] == first


@pytest.mark.parametrize("n, window, start", [
    (0, 10, 0), (10, 10, 0), (11, 10, 5), (15, 10, 5), (16, 10, 10), (20, 10, 10), (21, 10, 15),
    (5, 0, 5), (3, 1, 2),
])
def test_window_start_moves_in_blocks(n, window, start):
    assert window_start(n, window) == start
    if window:
        assert n - start <= window


def test_window_prefix_stays_put_for_several_turns():
    starts = {window_start(n, 10) for n in range(11, 16)}
    assert starts == {5}


def test_fit_history_drops_oldest_blocks_until_it_fits():
    history = [Turn(i % 2 == 1, f"message {i}") for i in range(10)]
    p = PromptInput(char="A", user="B", newest="hello")

    def count(messages):
        return sum(len(m["content"].split()) for m in messages) + 5 * len(messages)

    messages, start = fit_history(p, history, 10, count, budget=10_000)
    assert start == 0 and len(messages) == 13     # system, 10 turns, the time, the newest
    limit = count(messages) - 20
    messages, start = fit_history(p, history, 10, count, budget=limit)
    assert start == 5 and count(messages) <= limit


def test_fit_history_keeps_its_start_under_budget_pressure():
    """A budget that holds fewer messages than half the window: the start drops half of what
    fits at once and stays there (kept_from, the chat's stored start) for the next turns, where
    it used to slide one message every turn."""
    def count(messages):
        return sum(len(m["content"].split()) for m in messages)

    history: list[Turn] = []
    kept, starts = 0, []
    for n in range(30):
        history += [Turn(False, f"question {n} " + "word " * 8), Turn(True, f"answer {n} " + "word " * 8)]
        p = PromptInput(char="A", user="B", newest="hello", now=datetime(2026, 1, 1, tzinfo=timezone.utc))
        messages, start = fit_history(p, history, 40, count, budget=120, kept_from=kept)
        assert count(messages) <= 120 and start >= kept
        kept = start
        starts.append(start)
    moves = sum(1 for a, b in zip(starts, starts[1:]) if a != b)
    assert moves <= 10 and starts[-1] > 40     # it moves every few turns, not every turn
    p = PromptInput(char="A", user="B", newest="hello")
    assert fit_history(p, history, 40, count, budget=10_000, kept_from=kept)[1] == kept   # it never moves back


def test_fit_history_raises_when_nothing_fits():
    p = PromptInput(char="A", user="B", newest="word " * 100)
    with pytest.raises(ValueError):
        fit_history(p, [], 10, lambda m: 10_000, budget=100)


def test_transcript_rendering():
    text = render_transcript([{"role": "system", "content": "S"}, {"role": "user", "content": "hi"},
                              {"role": "assistant", "content": "hello"}], "Mira", "Ann")
    assert text == "S\n\nAnn: hi\nMira: hello\nMira:"


@pytest.mark.parametrize("delta, words", [
    (timedelta(seconds=5), "just now"), (timedelta(minutes=5), "5 minutes ago"),
    (timedelta(hours=1), "1 hour ago"), (timedelta(days=3), "3 days ago"), (timedelta(days=400), "1 year ago"),
])
def test_describe_age(delta, words):
    now = datetime(2026, 6, 1, tzinfo=timezone.utc)
    assert describe_age((now - delta).isoformat(), now) == words
    assert describe_age("not a date", now) == "some time ago"


def test_constant_lore_goes_before_or_after_the_character():
    from companion.chat.prompt import PromptInput, system_text

    text = system_text(PromptInput(char="Mira", user="Ada", persona="Mira is a sailor.",
                                   lore_before=["The sea is cold."], lore_after=["Ships sail at dawn."]))
    assert text.index("The sea is cold.") < text.index("Mira is a sailor.") < text.index("Ships sail at dawn.")


def test_each_turn_is_named_after_its_speaker():
    p = PromptInput(char="Mira", user="Ann", newest="And you?",
                    history=[Turn(True, "Hi {{user}}!", "Mira"), Turn(False, "Hello.", "Ann"),
                             Turn(True, "I am Kai, {{char}}'s friend.", "Kai"), Turn(False, "Earlier me.", "Annie")])
    history = build_messages(p)[1:5]
    assert history[0] == {"role": "assistant", "content": "Hi Ann!"}              # the companion: as before
    assert history[1] == {"role": "user", "content": "Hello."}
    assert history[2] == {"role": "assistant", "content": "Kai: I am Kai, Mira's friend.", "name": "Kai"}
    assert history[3] == {"role": "user", "content": "Annie: Earlier me.", "name": "Annie"}
    transcript = render_transcript(build_messages(p), "Mira", "Ann")
    assert "\nMira: Hi Ann!\nAnn: Hello.\nKai: I am Kai, Mira's friend.\nAnnie: Earlier me.\n" in transcript


def test_memories_that_disagree_are_told_with_their_dates_and_which_holds():
    now = datetime(2026, 11, 20, 9, 0, tzinfo=timezone(timedelta(hours=1)))
    told = memories_text([Recalled("I'm vegetarian now.", "2026-11-06T13:32:10+00:00"),
                          Recalled("I'm pescatarian.", "2026-09-01T23:30:00+00:00")], now)
    assert told == ("{{char}} remembers from earlier conversations (where two disagree, the newer one is true now):\n"
                    "- (1 week ago, 6 November 2026) I'm vegetarian now.\n"
                    "- (2 months ago, 2 September 2026) I'm pescatarian.")   # the day in the local timezone


def test_a_clients_prompt_gets_the_memories_before_its_newest_message():
    now = datetime(2026, 1, 10, tzinfo=timezone.utc)
    told = memories_text([Recalled("{{user}}: I keep bees.\n{{char}}: Lovely!", "2026-01-07T10:00:00+00:00")], now)
    assert told == ("{{char}} remembers from earlier conversations:\n"
                    "- (2 days ago, 7 January 2026) {{user}}: I keep bees.\n{{char}}: Lovely!")
    messages = [{"role": "system", "content": "You are Mira."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bees?"},
                {"role": "system", "content": "Be brief."}]
    memories = {"role": "system", "content": "MEM"}
    # just before the newest user message: the resent prefix stays cached
    assert with_text_before_newest(messages, "MEM") == [*messages[:3], memories, *messages[3:]]
    assert len(messages) == 5                                                   # the client's list is not changed
    assert with_text_before_newest(messages[1:2], "MEM") == [memories, messages[1]]


def test_a_memory_already_in_a_clients_messages():
    messages = [{"role": "user", "content": "I keep  BEES."}, {"role": "assistant", "content": "Mira: Lovely!"}]
    exchange = "{{user}}: I keep bees.\n{{char}}: Lovely!"
    assert said_in(exchange, messages, "Mira", "Ann")
    assert not said_in(exchange, messages[:1], "Mira", "Ann")                   # the reply is not there
    assert not said_in("{{user}}: I keep bees.\n{{char}}: Honey!", messages, "Mira", "Ann")
    assert said_in("{{user}}: I keep bees.", messages, "Mira", "Ann")           # a message without a reply
    assert said_in("{{char}}: lovely", messages, "Mira", "Ann")                 # another memory: its whole text
    assert not said_in("Ann keeps bees.", messages, "Mira", "Ann") and not said_in("", messages, "Mira", "Ann")


def test_the_next_turns_prompt_is_this_one_with_the_reply_and_the_new_note_appended():
    """A turn's note (memories, lore, the time) is kept with the message it went before and shown
    there again: the next prompt starts with the whole of this one, its reply after it."""
    day = datetime(2026, 3, 2, 18, 0, tzinfo=timezone.utc)
    history = [Turn(True, "Hello {{user}}", "Mira")]
    first = PromptInput(char="Mira", user="Ann", persona="{{char}} is a botanist.", history=list(history),
                        newest="Do you remember my ferns?", now=day, lore_triggered=["Ferns like shade."],
                        memories=[Recalled("{{user}}: I grow ferns", (day - timedelta(days=2)).isoformat())])
    a = build_messages(first)
    note = note_text(first)
    assert "{{char}} remembers" in note and "Ferns like shade." in note and "Current date and time" in note
    assert a[-2] == {"role": "system", "content": resolve_placeholders(note, "Mira", "Ann")}
    history += [Turn(False, "Do you remember my ferns?", "Ann", note=note), Turn(True, "Of course!", "Mira")]
    second = PromptInput(char="Mira", user="Ann", persona="{{char}} is a botanist.", history=history,
                         newest="And my cat?", now=day + timedelta(minutes=3))
    b = build_messages(second)
    assert b[:len(a)] == a                                                   # a pure append
    assert b[len(a)] == {"role": "assistant", "content": "Of course!"}
    assert [m["role"] for m in b[len(a) + 1:]] == ["system", "user"]
    assert "remembers" not in b[-2]["content"] and "18:03" in b[-2]["content"]


def test_a_swipe_reuses_the_note_of_the_message_it_answers():
    kept = "{{char}} remembers from earlier conversations:\n- (2 days ago) {{user}} grows ferns\n\nCurrent date and time: then"
    p = PromptInput(char="Mira", user="Ann", newest="Ferns?", note=kept, memories=[Recalled("other", "")],
                    lore_triggered=["other lore"], post_history_instructions="Stay brief, {{char}}.")
    assert note_text(p) == kept
    volatile = build_messages(p)[-2]["content"]
    assert volatile == resolve_placeholders(kept, "Mira", "Ann") + "\n\nStay brief, Mira."
    p.note = None
    assert "Stay brief" not in note_text(p)       # post-history instructions follow the newest note only


def test_a_note_kept_with_a_reply_is_told_for_the_companion_who_said_it():
    """In a group chat the note goes before the reply it was built for, and its {{char}} stays that
    speaker's name whoever speaks next."""
    history = [Turn(False, "Hi all", "Ann"), Turn(True, "Hello!", "Kai", note="Write only {{char}}'s next message.")]
    p = PromptInput(char="Mira", user="Ann", history=history, group=[GroupMember("Mira"), GroupMember("Kai")])
    messages = build_messages(p)
    assert messages[2] == {"role": "system", "content": "Write only Kai's next message."}
    assert messages[3]["content"] == "Kai: Hello!"
    assert messages[-1]["content"].endswith("Write only Mira's next message in this group chat.")
