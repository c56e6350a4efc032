"""Live events: the bus, the store's changes, and GET /api/events (replay, resync, heartbeats)."""

from __future__ import annotations

import json

import pytest
from conftest import test_settings

from companion.app import create_app
from companion.events import EventBus, StateWatch
from companion.services import build_services
from companion.store import Store


def test_the_bus_replays_after_an_id_and_asks_for_a_resync_past_its_buffer():
    bus = EventBus(3, clock=lambda: 1.0)
    start = bus.last_id
    ids = [bus.publish("x", {"n": n}).id for n in range(5)]
    assert ids == list(range(start + 1, start + 6))
    assert [e.data["n"] for e in bus.after(ids[1])] == [2, 3, 4]
    assert bus.after(ids[-1]) == []
    assert bus.after(ids[0]) is None           # event 1 left the buffer: resync
    assert bus.after(ids[-1] + 10) is None      # not an id of this run
    assert bus.wait_after(ids[-1], 0.01) == []


def test_a_later_run_numbers_its_events_above_an_earlier_one():
    earlier = EventBus(10, clock=lambda: 1000.0)
    for _ in range(50):
        earlier.publish("x", {})
    later = EventBus(10, clock=lambda: 1000.2)
    assert later.last_id > earlier.last_id
    assert later.after(earlier.last_id) is None


def test_the_store_tells_a_change_once_it_commits_and_never_a_rolled_back_one(tmp_path):
    store = Store(tmp_path / "c.db")
    heard = []
    store.on_change = lambda kind, data: heard.append((kind, data))
    chat_id = store.active_chat_id(store.active_companion_id())
    with store.transaction():
        store.add_message(chat_id, ai=False, text="hello")
        assert heard == []                       # not before the commit
    assert [k for k, _ in heard] == ["message.created"]
    assert heard[0][1]["message"]["text"] == "hello" and heard[0][1]["chat_id"] == chat_id
    heard.clear()
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.add_message(chat_id, ai=False, text="never")
            raise RuntimeError
    assert heard == []
    message = store.messages(chat_id)[-1]
    store.set_message_text(message["id"], "hello again")
    store.delete_message(message["id"])
    memory = store.add_memory(store.active_companion_id(), "a fact", "manual")
    store.delete_memories([memory["id"]])
    assert [k for k, _ in heard] == ["message.edited", "message.deleted", "memory.added", "memory.deleted"]
    store.close()


def test_the_state_watch_tells_only_changes():
    heard, state = [], {"model": {"state": "loading"}}
    watch = StateWatch(lambda kind, data: heard.append((kind, data)), lambda: {k: dict(v) for k, v in state.items()})
    watch.check()
    watch.check()
    state["model"]["state"] = "ready"
    watch.check()
    assert heard == [("model.state", {"state": "ready"})]


# --- GET /api/events -----------------------------------------------------------------------


class Subscription:
    """An open /api/events response read event by event (the test client streams it)."""

    def __init__(self, response) -> None:
        self.response = response
        self.chunks = iter(response.response)
        self.buffer = ""

    def next(self) -> tuple[str | None, str, dict | None]:
        """(id, event name or ':' for a comment, data) of the next block."""
        while "\n\n" not in self.buffer:
            chunk = next(self.chunks)
            self.buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        block, self.buffer = self.buffer.split("\n\n", 1)
        if block.startswith(":"):
            return None, ":", None
        fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
        if "event" not in fields:
            return self.next()              # the retry: line
        return fields.get("id"), fields["event"], json.loads(fields["data"])

    def until(self, name: str, limit: int = 50) -> list[tuple[str | None, str, dict | None]]:
        seen = []
        for _ in range(limit):
            seen.append(self.next())
            if seen[-1][1] == name:
                return seen
        raise AssertionError(f"no {name} event in {seen}")

    def close(self) -> None:
        self.response.close()


@pytest.fixture
def events_client(tmp_path, generator, embedder):
    settings = test_settings(tmp_path / "data", server={"event_heartbeat_seconds": 0.5, "max_event_streams": 2})
    services = build_services(settings, generator=generator, embedder=embedder)
    yield create_app(settings, services).test_client(), services
    services.close()


def subscribe(client, **headers) -> Subscription:
    response = client.get("/api/events", headers=headers, buffered=False)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    subscription = Subscription(response)
    _, name, hello = subscription.next()
    assert name == "hello" and "generating" in hello and hello["model"]["state"] == "ready"
    return subscription


def test_a_turn_is_told_as_events_without_its_tokens(events_client):
    client, services = events_client
    live = subscribe(client)
    chat_id = client.get("/api/chats").get_json()["items"][0]["id"]
    reply = client.post("/api/prompt", json={"prompt": "Hi there!", "chat_id": chat_id}).get_json()
    seen = live.until("generation.finished")
    names = [name for _, name, _ in seen]
    assert names == ["message.created", "generation.started", "message.created", "memory.added",
                     "generation.finished"], names
    user_message, started, ai_message, _, finished = [data for _, _, data in seen]
    assert started == {"what": "reply", "chat_id": chat_id, "companion_id": services.store.active_companion_id()}
    assert user_message["message"]["text"] == "Hi there!" and not user_message["message"]["ai"]
    assert ai_message["message"]["ai"] and ai_message["message"]["text"] == reply["text"]
    assert finished["message_id"] == ai_message["message"]["id"]
    ids = [int(event_id) for event_id, _, _ in seen]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(name != "token" for name in names)
    live.close()


def test_a_client_that_comes_back_gets_what_it_missed(events_client):
    client, services = events_client
    live = subscribe(client)
    companion = client.post("/api/companions", json={"name": "Ada"}).get_json()
    first_id, name, _ = live.until("companion.created")[-1]
    live.close()
    client.patch(f"/api/companions/{companion['id']}", json={"name": "Ada Lovelace"})
    client.delete(f"/api/companions/{companion['id']}")
    back = subscribe(client, **{"Last-Event-ID": first_id})
    missed = [name for _, name, _ in back.until("companion.deleted")]
    assert missed[0] == "chat.created" and "companion.changed" in missed, missed
    back.close()
    for _ in range(services.settings.server.event_buffer + 5):
        services.events.publish("test.filler", {})
    late = subscribe(client, **{"Last-Event-ID": first_id})
    assert late.next()[1] == "resync"
    late.close()


def test_an_idle_stream_gets_heartbeats(events_client):
    client, _ = events_client
    live = subscribe(client)
    assert live.next() == (None, ":", None)
    live.close()


def test_event_streams_are_limited_and_a_closed_one_frees_its_slot(events_client):
    client, _ = events_client
    first, second = subscribe(client), subscribe(client)
    refused = client.get("/api/events")
    assert refused.status_code == 503 and "max_event_streams" in refused.get_json()["error"]["message"]
    first.close()
    third = subscribe(client)
    for live in (second, third):
        live.close()
    assert client.get("/api/events", headers={"Last-Event-ID": "yesterday"}).status_code == 400


def test_events_need_the_api_key_like_the_rest(tmp_path, generator, embedder):
    settings = test_settings(tmp_path / "data", server={"api_key": "s3cret"})
    services = build_services(settings, generator=generator, embedder=embedder)
    client = create_app(settings, services).test_client()
    assert client.get("/api/events").status_code == 401
    live = subscribe(client, Authorization="Bearer s3cret")
    live.close()
    services.close()
