"""One generation at a time, and honest answers while the model is loading or broken."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from companion.app import create_app
from companion.config import ModelSettings
from companion.model.local import LlamaGenerator
from companion.services import build_services


@contextmanager
def recorded_requests(turns):
    """The generation requests the turn service makes meanwhile (the real model still answers)."""
    real, requests = turns.generator, []

    class Recording:
        def __getattr__(self, name):
            return getattr(real, name)

        def generate(self, request, stop_event=None):
            requests.append(request)
            return real.generate(request, stop_event)

    turns.generator = Recording()
    try:
        yield requests
    finally:
        turns.generator = real


def test_busy_model_answers_429_and_stores_nothing(client, services):
    before = client.get("/api/messages").get_json()
    held = services.turns.start_raw("a completion that holds the model")   # stores nothing
    try:
        response = client.post("/api/prompt", json={"prompt": "hello"})
        assert response.status_code == 429 and response.headers["Retry-After"]
        assert response.mimetype == "text/plain" and response.get_data(as_text=True)
        assert client.get("/api/regenerate_message").status_code == 429
    finally:
        held.close()
    assert client.get("/api/messages").get_json() == before


def test_broken_model_leaves_everything_else_working(settings, embedder, tmp_path):
    generator = LlamaGenerator(Path(tmp_path / "missing.gguf"), ModelSettings())
    generator.load()
    services = build_services(settings, generator=generator, embedder=embedder)
    client = create_app(settings, services).test_client()
    status = client.get("/api/status").get_json()
    assert status["model"]["state"] == "failed" and "not found" in status["model"]["error"]
    response = client.post("/api/prompt", json={"prompt": "hello"})
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert "failed to load" in response.get_data(as_text=True)
    assert len(client.get("/api/messages").get_json()) == 1
    assert client.post("/api/change/companionName", json={"companion_name": "Kai"}).status_code == 200
    assert client.post("/api/addData", json={"text": "still remembers"}).status_code == 200
    services.close()


def test_loading_model_answers_503(settings, embedder):
    generator = LlamaGenerator(None, ModelSettings())   # never started: still "loading"
    services = build_services(settings, generator=generator, embedder=embedder)
    client = create_app(settings, services).test_client()
    response = client.post("/api/prompt", json={"prompt": "hello"})
    assert response.status_code == 503 and "loading" in response.get_data(as_text=True)
    assert client.get("/api/status").get_json()["model"]["state"] == "loading"
    services.close()


def test_messages_keep_their_speaker_and_the_prompt_names_an_earlier_persona(services):
    turns, store = services.turns, services.store
    chat_id = services.companions.active_chat_id()
    first = turns.send(chat_id, "My name is Ann.")
    assert first.message["companion_id"] == store.active_companion_id()
    bo = store.create_user("Bo", "")
    store.set_state("active_user_id", bo)
    with recorded_requests(turns) as requests:
        turns.send(chat_id, "Who am I now?")
    history = requests[-1].messages
    assert {"role": "user", "content": "User: My name is Ann.", "name": "User"} in history   # said as "User"
    assert history[-1] == {"role": "user", "content": "Who am I now?"}                       # said as Bo
    asked = store.messages(store.active_chat_id(store.active_companion_id()))[-2]
    assert asked["text"] == "Who am I now?" and asked["user_id"] == bo


def test_the_prompt_tells_the_time_in_the_persons_timezone(tmp_path, generator, embedder):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    import pytest as _pytest
    from conftest import test_settings

    from companion.config import ConfigError, load_settings

    with _pytest.raises(ConfigError, match="unknown timezone"):
        load_settings(env={}, overrides={"data_dir": str(tmp_path / "x"), "server": {"timezone": "Mars/Olympus"}})
    settings = test_settings(tmp_path / "data", server={"timezone": "Pacific/Kiritimati"})   # UTC+14
    services = build_services(settings, generator=generator, embedder=embedder)
    try:
        with recorded_requests(services.turns) as requests:
            services.turns.send(services.companions.active_chat_id(), "Good morning!")
    finally:
        services.close()
    volatile = requests[-1].messages[-2]
    today = datetime.now(ZoneInfo("Pacific/Kiritimati")).strftime("%A %d %B %Y")
    assert volatile["role"] == "system" and f"Current date and time: {today}" in volatile["content"]


def test_a_turns_query_vector_is_reused_for_its_exchange(services):
    embedder = services.embedder
    services.memory.add(services.companions.active_companion_id(), "{{user}} likes long walks.", "custom")
    before = embedder.reused      # with a memory to search, recall embeds the query
    services.turns.send(services.companions.active_chat_id(), "My dog is called Rex, he is nine.")
    services.memory.flush()                      # the exchange is indexed by its user line: the query
    assert embedder.reused == before + 1
    found = services.memory.recall(services.companions.active_companion_id(), "What is my dog called?", 2, 0.0)
    assert any("Rex" in m.text for m in found)


def test_the_next_turns_prompt_appends_to_this_one_and_a_swipe_reuses_its_note(services):
    """A turn's note (its memories, lore and time) is kept with the user's message: the next
    turn's prompt is this one with the reply and the new note and message after it, recall does
    not repeat a memory a note in the window shows, and a swipe reuses the note as it was."""
    turns, store = services.turns, services.store
    companion_id, chat_id = services.companions.active_companion_id(), services.companions.active_chat_id()
    services.memory.add(companion_id, "{{user}}'s sister is called Priya and lives in Porto.", "custom")
    book = services.lorebooks.create({"name": "Town"}, [{"keys": ["lighthouse"], "content": "The lighthouse is red."}])
    services.lorebooks.attach(companion_id, book["id"])
    with recorded_requests(turns) as requests:
        first = turns.send(chat_id, "Do you remember my sister Priya? She loves the lighthouse.", {"max_tokens": 6})
        second = turns.send(chat_id, "Priya says hi. Shall we walk to the lighthouse?", {"max_tokens": 6})
        swipe = turns.regenerate(chat_id, {"max_tokens": 6})
    a, b, c = (r.messages for r in requests)
    assert any("Priya and lives in Porto" in m.text for m in first.memories)
    assert b[:len(a)] == a and b[len(a)] == {"role": "assistant", "content": first.message["text"]}
    told = "\n".join(m["content"] for m in b)
    assert told.count("lives in Porto") == 1 and told.count("The lighthouse is red.") == 1   # not repeated
    assert not any("Porto" in m.text for m in second.memories)
    assert {item["entry"] for item in second.lore} == {0}     # still reported: it is in the prompt
    asked = store.messages(chat_id)[-2]
    assert store.notes([asked["id"]])[asked["id"]]["note"] in b[-2]["content"]
    assert c == b and [m.id for m in swipe.memories] == [m.id for m in second.memories]   # the same note
    services.memory.delete([m.id for m in first.memories])    # forgotten: its note is not shown again
    with recorded_requests(turns) as requests:
        turns.regenerate(chat_id, {"max_tokens": 6})
    assert "Porto" not in "\n".join(m["content"] for m in requests[-1].messages)


def test_a_memory_the_window_shows_is_not_replaced_by_a_lesser_one(services):
    """Recall picks the best memories for the new message; those a note in the window shows
    already are left out, and not replaced by the next best: the model sees the best ones, and
    a turn that stays on the subject reads no memory again."""
    turns = services.turns
    companion_id, chat_id = services.companions.active_companion_id(), services.companions.active_chat_id()
    services.store.update_companion(companion_id, {"long_term_mem": 1})
    services.memory.add(companion_id, "{{user}}'s sister is called Priya and lives in Porto.", "custom")
    services.memory.add(companion_id, "{{user}}'s cousin Ana also lives in Porto.", "custom")
    first = turns.send(chat_id, "Do you remember my sister Priya from Porto?", {"max_tokens": 6})
    second = turns.send(chat_id, "Priya from Porto says hi!", {"max_tokens": 6})
    assert [m.text for m in first.memories] == ["{{user}}'s sister is called Priya and lives in Porto.".replace(
        "{{user}}", services.store.get_user(services.store.active_user_id())["name"])]
    assert second.memories == []


def test_a_turns_note_tells_a_remembered_exchange_without_its_stock_reply(services):
    """An exchange whose reply the model gave many times ("I'm sorry for any confusion...") is
    told in the note by what the person said alone: the reply says nothing of it, and read every
    turn it costs time and teaches the model its own stock phrase."""
    store, memory = services.store, services.memory
    companion = store.active_companion_id()
    stock = "I'm sorry for any confusion, but I'll make sure to provide the correct information."
    rows = [store.add_memory(companion, f"{{{{user}}}}: {line}\n{{{{char}}}}: {stock}", "exchange")
            for line in ["My sister Inga keeps bees in the garden.", "I went to the pottery class.",
                         "It rained all day."]]
    rows.append(store.add_memory(companion, "{{user}}: Inga sold her honey at the market.\n{{char}}: How lovely!",
                                 "exchange"))
    memory.index(rows)
    chat_id = services.companions.active_chat_id()
    reply = services.turns.send(chat_id, "What does my sister Inga do?")
    recalled = {m.id for m in reply.memories}
    assert {rows[0]["id"], rows[3]["id"]} <= recalled
    said = store.messages(chat_id)[-2]
    note = store.notes([said["id"]])[said["id"]]["note"]
    assert "My sister Inga keeps bees in the garden." in note and stock not in note
    assert "Inga sold her honey at the market.\n{{char}}: How lovely!" in note
