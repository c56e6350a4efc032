"""Chats, swipes, export and import, and search, on the real stack."""

from __future__ import annotations

import csv
import io
import json

import pytest


def new_chat(client, **body) -> dict:
    response = client.post("/api/chats", json=body)
    assert response.status_code == 201
    return response.get_json()


def test_chats_stay_separate(client):
    first = client.get("/api/chats").get_json()["items"][0]
    second = new_chat(client, title="Second")
    assert second["active"] is True and client.get("/api/chats").get_json()["total"] == 2
    client.post("/api/chats/{}/activate".format(first["id"]))
    reply = client.post("/api/prompt", json={"prompt": "In the second chat.", "chat_id": second["id"],
                                             "max_tokens": 6}).get_json()
    in_second = client.get(f"/api/chats/{second['id']}/messages").get_json()
    assert [m["text"] for m in in_second["items"]][-2:] == ["In the second chat.", reply["text"]]
    assert "In the second chat." not in [m["text"] for m in client.get("/api/messages").get_json()]
    assert client.patch(f"/api/chats/{second['id']}", json={"title": "Renamed"}).get_json()["title"] == "Renamed"
    assert client.delete(f"/api/chats/{second['id']}").status_code == 204
    assert client.get(f"/api/chats/{second['id']}").status_code == 404
    assert client.delete(f"/api/chats/{first['id']}").status_code == 409        # the last chat stays
    assert client.get("/api/status").get_json()["counts"]["memories"] == 0      # its exchange went with it


def test_swipe_round_trip(client, services):
    reply = client.post("/api/prompt", json={"prompt": "Tell me a joke.", "max_tokens": 12}).get_json()
    swiped = client.post(f"/api/messages/{reply['id']}/swipes", json={"temperature": 1.0, "seed": 7,
                                                                      "max_tokens": 12})
    assert swiped.status_code == 201
    message = swiped.get_json()
    assert message["id"] == reply["id"] and len(message["swipes"]) == 2 and message["swipe_id"] == 1
    chosen = client.put(f"/api/messages/{reply['id']}/swipe", json={"index": 0}).get_json()
    assert chosen["text"] == reply["text"] and chosen["swipe_id"] == 0
    assert client.get("/api/messages").get_json()[-1]["text"] == reply["text"]
    memory = client.get("/api/memories").get_json()["items"][0]
    assert reply["text"] in memory["text"] and client.get("/api/memories").get_json()["total"] == 1
    assert client.put(f"/api/messages/{reply['id']}/swipe", json={"index": 5}).status_code == 400
    first_id = client.get("/api/messages").get_json()[0]["id"]
    assert client.post(f"/api/messages/{first_id}/swipes").status_code == 400   # not the last reply


def test_each_export_format_parses_back(client):
    reply = client.post("/api/prompt", json={"prompt": "Hello, \"quoted\", with, commas", "max_tokens": 6}).get_json()
    chat_id = client.get("/api/chats").get_json()["items"][0]["id"]
    as_json = json.loads(client.get(f"/api/chats/{chat_id}/export?format=json").data)
    assert [m["text"] for m in as_json["messages"]][-2:] == ["Hello, \"quoted\", with, commas", reply["text"]]
    lines = client.get(f"/api/chats/{chat_id}/export?format=jsonl").get_data(as_text=True).splitlines()
    header, *entries = [json.loads(line) for line in lines]
    assert {"user_name", "character_name", "create_date", "chat_metadata"} <= set(header)
    assert entries[-1]["mes"] == reply["text"] and entries[-1]["is_user"] is False
    assert {"name", "is_user", "is_system", "send_date", "mes", "swipes", "swipe_id"} <= set(entries[-1])
    rows = list(csv.DictReader(io.StringIO(client.get(f"/api/chats/{chat_id}/export?format=csv").get_data(as_text=True))))
    assert rows[-2]["text"] == "Hello, \"quoted\", with, commas" and rows[-1]["speaker"] == "Assistant"
    txt = client.get(f"/api/chats/{chat_id}/export?format=txt").get_data(as_text=True)
    assert "User: Hello" in txt and f"Assistant: {reply['text']}" in txt
    assert client.get(f"/api/chats/{chat_id}/export?format=pdf").status_code == 400


def sillytavern_chat() -> bytes:
    lines = [{"user_name": "Ann", "character_name": "Mira", "create_date": "2024-01-01@10h00m00s",
              "chat_metadata": {}},
             {"name": "Mira", "is_user": False, "is_system": False, "send_date": "x", "mes": "Welcome!",
              "swipes": ["Welcome!"], "swipe_id": 0, "extra": {}},
             {"name": "Ann", "is_user": True, "is_system": False, "send_date": "x", "mes": "Hi, I like kayaks.",
              "extra": {}},
             {"name": "Mira", "is_user": False, "is_system": False, "send_date": "x", "mes": "Kayaks are fun!",
              "swipes": ["Boats!", "Kayaks are fun!"], "swipe_id": 1, "extra": {}}]
    return "\n".join(json.dumps(line) for line in lines).encode()


def comparable(jsonl: str) -> list[tuple]:
    entries = [json.loads(line) for line in jsonl.splitlines()][1:]
    return [(e["is_user"], e["mes"], e.get("swipes"), e.get("swipe_id")) for e in entries]


def test_sillytavern_jsonl_with_swipes_round_trip(client):
    data = sillytavern_chat()
    response = client.post("/api/chats/import", data={"file": (io.BytesIO(data), "chat.jsonl")},
                           content_type="multipart/form-data")
    assert response.status_code == 201
    chat = response.get_json()
    exported = client.get(f"/api/chats/{chat['id']}/export?format=jsonl").get_data(as_text=True)
    assert comparable(exported) == comparable(data.decode())
    assert client.get("/api/status").get_json()["counts"]["memories"] == 1
    assert "kayaks" in client.get("/api/memories?q=kayak").get_json()["items"][0]["text"].lower()
    ours = client.get(f"/api/chats/{chat['id']}/export?format=json").data
    again = client.post("/api/chats/import", data=ours, content_type="application/json").get_json()
    assert comparable(client.get(f"/api/chats/{again['id']}/export?format=jsonl").get_data(as_text=True)) == \
        comparable(data.decode())


@pytest.mark.parametrize("data", [b"", b"not json at all", b'{"user_name": "x"}\n{"no_mes": 1}',
                                  b'{"messages": [{"ai": "yes", "text": "x"}]}', b"\xff\xfe"])
def test_bad_chat_files(client, data):
    before = client.get("/api/chats").get_json()["total"]
    assert client.post("/api/chats/import", data=data, content_type="application/octet-stream").status_code == 400
    assert client.get("/api/chats").get_json()["total"] == before


def test_search_follows_edits_and_deletes(client):
    client.post("/api/import/messagesJson", json={"messages": [
        {"ai": False, "text": "My grandmother grew sunflowers."}, {"ai": True, "text": "Sunflowers are tall!"}]})
    found = client.get("/api/search?q=sunflowers").get_json()
    assert found["total"] == 2 and "[" in found["items"][0]["snippet"]
    assert {"chat_id", "companion_id", "snippet", "rank"} <= set(found["items"][0])
    message_id = next(i["id"] for i in found["items"] if i["ai"])
    client.patch(f"/api/messages/{message_id}", json={"text": "Marigolds are bright!"})
    assert client.get("/api/search?q=marigolds").get_json()["total"] == 1
    assert client.get("/api/search?q=sunflowers").get_json()["total"] == 1
    client.delete(f"/api/messages/{message_id}")
    assert client.get("/api/search?q=marigolds").get_json()["total"] == 0
    greeting = client.get("/api/search?q=talk").get_json()["items"][0]   # the stored greeting has {{user}}
    assert "{{" not in greeting["text"] and "{{" not in greeting["snippet"] and "User" in greeting["snippet"]


@pytest.mark.parametrize("path", ["/api/chats/999", "/api/chats/999/messages", "/api/chats/999/export",
                                  "/api/chats?companion_id=999"])
def test_bad_ids(client, path):
    assert client.get(path).status_code == 404


@pytest.mark.parametrize("path", ["/api/chats?limit=0", "/api/chats?limit=1000", "/api/chats?offset=-1",
                                  "/api/search?q=", "/api/search?q=x&limit=abc", "/api/chats?companion_id=x"])
def test_bad_paging(client, path):
    assert client.get(path).status_code == 400


def test_both_imports_remember_by_one_rule(client):
    """A user message and its reply: one exchange; a user message without a reply: on its own; a
    companion message answering nobody (a greeting): not remembered. messagesJson and chat files alike."""
    lines = [(True, "Welcome back!"), (False, "I adopted a dog."), (True, "Lovely!"), (False, "His name is Rex.")]
    before = client.get("/api/status").get_json()["counts"]["memories"]
    client.post("/api/import/messagesJson", json={"messages": [{"ai": ai, "text": t} for ai, t in lines]})
    after_json = client.get("/api/status").get_json()["counts"]["memories"]
    chat = {"messages": [{"ai": ai, "text": t} for ai, t in lines]}
    assert client.post("/api/chats/import", json=chat).status_code == 201
    after_file = client.get("/api/status").get_json()["counts"]["memories"]
    assert after_json - before == after_file - after_json == 2
    texts = [m["text"] for m in client.get("/api/memories").get_json()["items"]]
    assert texts.count("{{user}}: His name is Rex.") == 2 and not any("Welcome back" in t for t in texts)
