"""Summaries of what left the prompt's history window: the real small model writes them while
the daemon is idle, a turn interrupts them at once, and they are memories like any other."""

from __future__ import annotations

import time

import pytest
from conftest import test_settings

from companion.app import create_app
from companion.chat.prompt import PromptInput, story_text, system_text
from companion.chat.summaries import transcript
from companion.model.generation import GenerationParams, GenerationRequest
from companion.services import build_services


@pytest.fixture
def summarizing(tmp_path, generator, embedder):
    """Services that summarize soon after a turn, for a companion with a 4-message window."""
    settings = test_settings(tmp_path / "data", memory={"summary_idle_seconds": 0.2, "summary_max_tokens": 40})
    services = build_services(settings, generator=generator, embedder=embedder)
    companion = services.store.active_companion_id()
    services.store.update_companion(companion, {"short_term_mem": 4})
    yield services
    services.close()


def wait_for(condition, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def summaries_of(services) -> list[dict]:
    return [m for m in services.store.list_memories(services.store.active_companion_id(), 100, 0)
            if m["source"] == "summary"]


def test_a_block_that_leaves_the_window_is_summarized_while_idle(summarizing):
    chat_id = summarizing.companions.active_chat_id()
    summarizing.summaries.start()
    for line in ["My name is Ada and I keep bees.", "I live in a small house by the sea.",
                 "Tomorrow I will visit my sister Inga."]:
        summarizing.turns.send(chat_id, line)
    window_start = summarizing.store.get_chat(chat_id)["window_start_id"]
    assert window_start is not None     # the window has dropped a block
    found = wait_for(lambda: summaries_of(summarizing))
    summary = found[0]
    first, last = summary["first_message_id"], summary["last_message_id"]
    assert summary["chat_id"] == chat_id and first <= last < window_start and summary["text"].strip()
    assert summarizing.store.get_chat(chat_id)["summarized_through"] == last
    # it is recallable like any memory, and indexed
    wait_for(lambda: summary["id"] in summarizing.memory.indexed_ids())


def test_a_chat_deleted_while_its_summary_is_written_gets_none(summarizing, monkeypatch):
    """Deleting a chat while the model sums it up drops the summary, and the summarizer goes on
    (before, storing it failed on the deleted chat and the summarizer stopped until the next turn)."""
    chat_id = summarizing.companions.active_chat_id()
    other = summarizing.store.create_chat(summarizing.store.active_companion_id())
    for line in ["My name is Ada and I keep bees.", "I live in a small house by the sea.",
                 "Tomorrow I will visit my sister Inga."]:
        summarizing.turns.send(chat_id, line)
    assert summarizing.store.chats_to_summarize() == [chat_id]
    generator = summarizing.turns.generator
    generate = generator.generate_aside

    def deleted_meanwhile(request, stop):
        summarizing.store.delete_chat(chat_id)
        yield from generate(request, stop)

    monkeypatch.setattr(generator, "generate_aside", deleted_meanwhile)
    assert summarizing.summaries.summarize_next() == "gone"
    assert summaries_of(summarizing) == [] and summarizing.store.chats_to_summarize() == []
    assert summarizing.summaries.summarize_next() == "none"
    assert summarizing.store.get_chat(other) is not None


def test_a_turn_during_a_summary_waits_at_most_about_one_token(tmp_path, generator, embedder):
    settings = test_settings(tmp_path / "data", memory={"summary_idle_seconds": 0.0, "summary_max_tokens": 400})
    services = build_services(settings, generator=generator, embedder=embedder)
    try:
        turns, store = services.turns, services.store
        store.update_companion(store.active_companion_id(), {"short_term_mem": 2})
        chat_id = services.companions.active_chat_id()
        for line in ["I grow tomatoes and beans in my garden every summer.", "My cat is called Pixel.",
                     "I work at the library on weekdays."]:
            turns.send(chat_id, line)
        # one token's time, measured now on this machine
        started = time.perf_counter()
        pieces = list(generator.generate(GenerationRequest(
            GenerationParams(max_tokens=16, temperature=0.0, top_k=1, seed=1), prompt="Once upon a time")))
        per_token = (time.perf_counter() - started) / max(1, len(pieces))
        services.summaries.start()
        wait_for(lambda: turns.lock.background_running, timeout=60)
        time.sleep(0.3)                       # well into the summary
        asked = time.perf_counter()
        turn = turns.start_send(chat_id, "Are you there?")
        delay = time.perf_counter() - asked
        turn.run()
        assert delay <= 2 * per_token + 0.25, (delay, per_token)
        assert services.summaries.interrupted >= 1
        wait_for(lambda: services.summaries.written >= 1)     # resumed later
    finally:
        services.close()


def test_a_summary_can_be_seen_edited_and_deleted(summarizing):
    store = summarizing.store
    companion = store.active_companion_id()
    chat_id = store.active_chat_id(companion)
    ids = store.add_messages(chat_id, [(False, "I adopted a dog."), (True, "What's its name?")])
    row = store.add_memory(companion, "{{user}} adopted a dog called Rex.", "summary",
                           covers=(chat_id, ids[0], ids[1]))
    summarizing.memory.index([row])
    client = create_app(summarizing.settings, summarizing).test_client()
    listed = client.get("/api/memories").get_json()["items"]
    shown = next(m for m in listed if m["id"] == row["id"])
    assert shown["source"] == "summary" and (shown["first_message_id"], shown["last_message_id"]) == tuple(ids)
    assert shown["chat_id"] == chat_id
    edited = client.patch(f"/api/memories/{row['id']}", json={"text": "{{user}} adopted a dog called Max."})
    assert edited.status_code == 200 and edited.get_json()["source"] == "summary"
    assert "Max" in client.get("/api/memories", query_string={"q": "dog's name"}).get_json()["items"][0]["text"]
    assert client.delete(f"/api/memories/{row['id']}").status_code == 204
    assert store.get_memory(row["id"]) is None


def test_story_so_far_is_the_newest_summaries_within_the_budget():
    summaries = ["Ada keeps bees.", "Ada visited Inga.", "Ada bought a boat."]
    words = lambda text: len(text.split())  # noqa: E731
    assert story_text(summaries, words, 100) == "\n".join(summaries)
    assert story_text(summaries, words, 7) == "Ada visited Inga.\nAda bought a boat."
    assert story_text(summaries, words, 0) == ""
    text = system_text(PromptInput(char="Mira", user="Ada", story="{{user}} keeps bees."))
    assert text.endswith("The story so far:\nAda keeps bees.")


def test_story_so_far_changes_only_when_the_window_drops_a_block(summarizing):
    store, turns = summarizing.store, summarizing.turns
    companion = store.active_companion_id()
    store.update_companion(companion, {"short_term_mem": 6})     # drops blocks of 3 messages
    chat_id = store.active_chat_id(companion)
    assert summarizing.chats.change(chat_id, story_so_far=True)["story_so_far"] is True
    ids = store.add_messages(chat_id, [(False, "I keep bees."), (True, "How lovely!")])
    store.add_memory(companion, "{{user}} keeps bees.", "summary", covers=(chat_id, ids[0], ids[1]))
    turns.send(chat_id, "Hello!")                  # the window is recorded for the first time: the story is made
    assert store.get_chat(chat_id)["story"] == "{{user}} keeps bees."
    store.add_memory(companion, "{{user}} bought a boat.", "summary", covers=(chat_id, ids[1], ids[1]))
    turns.send(chat_id, "How are you?")            # the window keeps its start: the story stays (the prefix too)
    assert store.get_chat(chat_id)["story"] == "{{user}} keeps bees."
    turns.send(chat_id, "Nice weather today.")     # the window drops a block: the story takes up what is new
    assert store.get_chat(chat_id)["story"] == "{{user}} keeps bees.\n{{user}} bought a boat."


def test_a_group_chats_transcript_names_each_speaker():
    messages = [{"ai": False, "text": "Hi all", "companion_id": None},
                {"ai": True, "text": "Hello {{user}}, I am {{char}}", "companion_id": 2},
                {"ai": True, "text": "Hey", "companion_id": 3}]
    assert transcript(messages, "Ada, Bo", "Sam", {2: "Ada", 3: "Bo"}).splitlines() == [
        "Sam: Hi all", "Ada: Hello Sam, I am Ada", "Bo: Hey"]
    assert transcript(messages[:2], "Ada", "Sam").splitlines()[1] == "Ada: Hello Sam, I am Ada"


def test_a_summary_waits_for_other_background_work_only_as_long_as_it_holds_the_model(summarizing):
    """Background work holding the model (a chat's next prompt read, a KV state copied) keeps a
    summary waiting only until it lets go (before, the summary looked again 5 s later, and in a
    quick conversation never got to be written)."""
    chat_id = summarizing.companions.active_chat_id()
    for line in ["My name is Ada and I keep bees.", "I live in a small house by the sea.",
                 "Tomorrow I will visit my sister Inga."]:
        summarizing.turns.send(chat_id, line)
    lock = summarizing.turns.lock
    assert lock.wait_idle(30)
    assert lock.hold_for_background() is not None      # other background work has the model
    summarizing.summaries.start()
    time.sleep(0.6)                                     # the summary found it busy
    assert summaries_of(summarizing) == []
    let_go = time.monotonic()
    lock.release_background()
    wait_for(lambda: summaries_of(summarizing), timeout=60)
    assert time.monotonic() - let_go < 4.0

