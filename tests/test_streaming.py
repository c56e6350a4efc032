"""Streaming, abort, one generation at a time and generation overrides, on the real model."""

from __future__ import annotations

import json

import pytest

from companion.chat.streams import ReplyTrimmer


def read_events(response, limit: int | None = None) -> list[tuple[str, dict]]:
    """Parse SSE events from a streamed test response (stop after `limit` events)."""
    events, buffer = [], ""
    for chunk in response.response:
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in buffer:
            raw, buffer = buffer.split("\n\n", 1)
            lines = dict(line.split(": ", 1) for line in raw.splitlines())
            events.append((lines["event"], json.loads(lines["data"])))
            if limit is not None and len(events) >= limit:
                return events
    return events


def stream(client, body: dict | None = None, path: str = "/api/prompt", **kwargs):
    return client.post(path, json=body, buffered=False, **kwargs)


def test_stream_events_add_up_to_the_stored_reply(client):
    response = stream(client, {"prompt": "Tell me a short story about a fox.", "stream": True, "max_tokens": 30})
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    events = read_events(response)
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "done" and set(kinds[:-1]) == {"token"} and len(kinds) > 3
    done = events[-1][1]
    assert set(done) == {"message", "memories", "memory_window", "lore"}
    assert set(done["message"]) == {"id", "ai", "text", "date"}
    streamed = "".join(data["text"] for kind, data in events if kind == "token")
    assert streamed == done["message"]["text"]
    stored = client.get("/api/messages").get_json()[-1]
    assert stored["id"] == done["message"]["id"] and stored["text"] == streamed


def test_accept_header_asks_for_a_stream_and_regenerate_streams(client):
    client.post("/api/prompt", json={"prompt": "Hello"})
    response = stream(client, None, "/api/regenerate_message", headers={"Accept": "text/event-stream"})
    events = read_events(response)
    assert events[-1][0] == "done"
    assert client.get("/api/messages").get_json()[-1]["id"] == events[-1][1]["message"]["id"]
    assert len(client.get("/api/messages").get_json()) == 3


def test_abort_keeps_the_partial_reply_and_frees_the_model(client):
    response = stream(client, {"prompt": "Count slowly from one to one hundred.", "stream": True,
                               "max_tokens": 200})
    first = read_events(response, limit=3)
    assert all(kind == "token" for kind, _ in first)
    assert client.post("/api/abort").get_json() == {"aborted": True}
    rest = read_events(response)
    assert rest[-1][0] == "done"
    tokens = [data["text"] for kind, data in first + rest if kind == "token"]
    assert len(tokens) <= 3 + 2          # stopped within a token (plus a held-back piece)
    text = rest[-1][1]["message"]["text"]
    assert text == "".join(tokens) and text
    assert client.get("/api/messages").get_json()[-1]["text"] == text
    assert client.post("/api/abort").get_json() == {"aborted": False}
    assert client.post("/api/prompt", json={"prompt": "Are you there?"}).status_code == 200


def test_disconnected_client_aborts_and_keeps_the_partial_reply(client):
    before = len(client.get("/api/messages").get_json())
    response = stream(client, {"prompt": "Describe the sea in detail.", "stream": True, "max_tokens": 200})
    tokens = [data["text"] for _, data in read_events(response, limit=4)]
    response.close()
    messages = client.get("/api/messages").get_json()
    assert len(messages) == before + 2
    assert messages[-1]["ai"] == "true" and messages[-1]["text"].startswith("".join(tokens).strip()[:10])
    assert client.post("/api/prompt", json={"prompt": "Still there?"}).status_code == 200


def test_a_second_prompt_while_one_streams_gets_429(client):
    response = stream(client, {"prompt": "Write a long poem.", "stream": True, "max_tokens": 60})
    read_events(response, limit=2)
    second = client.post("/api/prompt", json={"prompt": "Me too!"})
    assert second.status_code == 429 and second.headers["Retry-After"]
    events = read_events(response)
    assert events[-1][0] == "done"
    texts = [m["text"] for m in client.get("/api/messages").get_json()]
    assert "Me too!" not in texts and texts[-2] == "Write a long poem."


def test_a_stream_that_never_starts_frees_the_model(client):
    response = stream(client, {"prompt": "Hello?", "stream": True})
    response.close()
    assert client.post("/api/prompt", json={"prompt": "Hello again"}).status_code == 200


@pytest.mark.parametrize("override", [
    {"temperature": "hot"}, {"max_tokens": -5}, {"max_tokens": 2.5}, {"top_p": 2}, {"top_k": -1},
    {"min_p": "x"}, {"repeat_penalty": 0}, {"seed": True}, {"stop": [1]}, {"stop": [""]},
    {"max_tokens": 100000},
])
def test_bad_generation_overrides(client, override):
    before = client.get("/api/messages").get_json()
    response = client.post("/api/prompt", json={"prompt": "hi", **override})
    assert response.status_code == 400 and response.get_data(as_text=True)
    assert client.get("/api/messages").get_json() == before


def test_generation_overrides_apply(client, services):
    reply = client.post("/api/prompt", json={"prompt": "Say something.", "max_tokens": 1}).get_json()
    assert services.generator.count_tokens(reply["text"]) <= 2   # one token (plus BOS)
    reply = client.post("/api/prompt", json={"prompt": "List three fruits.", "stop": ["\n", ","],
                                             "max_tokens": 40}).get_json()
    assert "," not in reply["text"] and "\n" not in reply["text"]


def test_reply_trimmer_pieces_add_up_to_the_stripped_text():
    pieces = ["  ", "\n Hello", " there", "  ", "\n", "friend", " \n ", ""]
    trimmer = ReplyTrimmer()
    out = "".join(trimmer.feed(p) for p in pieces)
    assert out == "".join(pieces).strip() == trimmer.text
