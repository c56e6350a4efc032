"""Group chats: who replies (pure), the groups API with its bad input, and group turns on the
real small model (natural, list and manual order, memory per member, streaming, abort, swipes,
export and import)."""

from __future__ import annotations

import io
import json
import random

import pytest
from PIL import Image

from companion.chat.groups import choose_speakers, mentioned

NAMES = {1: ["Ada"], 2: ["Bo", "Bobby"], 3: ["Cy"]}


def members(*muted: int) -> list[dict]:
    return [{"companion_id": c, "muted": c in muted} for c in (1, 2, 3)]


def test_natural_order_puts_the_named_first_then_draws_by_talkativeness():
    assert mentioned("well, cy and BOBBY? and Ada", NAMES) == [3, 2, 1]
    assert mentioned("Adam is not Ada's friend", NAMES) == [1]     # whole words only
    silent = {1: 0.0, 2: 0.0, 3: 0.0}
    assert choose_speakers("natural", members(), NAMES, silent, "Cy, your turn", None, random.Random(1)) == [3]
    assert choose_speakers("natural", members(), NAMES, {1: 1.0, 2: 1.0, 3: 0.0}, "Cy?", 1,
                           random.Random(1)) == [3, 2]               # the last speaker does not answer itself
    lonely = choose_speakers("natural", members(), NAMES, silent, "hello", 1, random.Random(1))
    assert len(lonely) == 1 and lonely[0] in (2, 3)                 # at least one, not the last speaker
    assert choose_speakers("natural", members(3), NAMES, silent, "Cy?", None, random.Random(1)) != [3]


def test_list_order_and_manual():
    assert choose_speakers("list", members(2), NAMES, {}, "", None, random.Random(1)) == [1, 3]
    assert choose_speakers("manual", members(), NAMES, {}, "Ada!", None, random.Random(1)) == []


# --- the API ---------------------------------------------------------------------------------


def make_companions(client, *names: str) -> list[int]:
    return [client.post("/api/companions", json={"name": n, "description": f"{n} is a friendly {n.lower()}."})
            .get_json()["id"] for n in names]


@pytest.fixture
def trio(client):
    ids = make_companions(client, "Ada", "Bo", "Cy")
    group = client.post("/api/groups", json={"name": "Friends", "members": ids}).get_json()
    return ids, group


def test_bad_groups_are_refused_and_change_nothing(client, trio):
    ids, group = trio
    cases = [({"name": "X", "members": [ids[0], 9999]}, "no companion with id 9999"),
             ({"name": "X", "members": [ids[0]]}, "at least two members"),
             ({"name": "X", "members": [ids[0], ids[0]]}, "only once"),
             ({"name": "X", "members": [{"companion_id": ids[0], "muted": True},
                                        {"companion_id": ids[1], "muted": True}]}, "not muted"),
             ({"name": "X", "members": ids, "strategy": "loudest"}, "strategy"),
             ({"name": "", "members": ids}, "name"),
             ({"name": "X", "members": [{"companion_id": ids[0], "talkativeness": 2}, ids[1]]}, "talkativeness")]
    for body, reason in cases:
        response = client.post("/api/groups", json=body)
        assert response.status_code == 400 and reason in response.get_json()["error"]["message"], body
    assert client.get("/api/groups").get_json()["total"] == 1
    outsider = make_companions(client, "Dee")[0]
    refused = client.post(f"/api/groups/{group['id']}/reply", json={"companion_id": outsider})
    assert refused.status_code == 400 and "not a member" in refused.get_json()["error"]["message"]
    assert client.patch(f"/api/groups/{group['id']}", json={"members": [ids[0]]}).status_code == 400
    assert client.get(f"/api/groups/{group['id']}").get_json()["members"] == group["members"]
    assert client.delete(f"/api/companions/{ids[0]}").status_code == 409      # a member: taken out first
    for text in ("   ", 42, "x" * 100_001):
        assert client.post(f"/api/groups/{group['id']}/turn", json={"text": text}).status_code == 400
    assert client.get(f"/api/chats/{group['active_chat_id']}/messages").get_json()["total"] == 0
    assert client.get("/api/groups/999").status_code == 404
    collage = client.get(f"/api/groups/{group['id']}/avatar")
    assert collage.mimetype == "image/png" and Image.open(io.BytesIO(collage.data)).size == (256, 256)


def test_a_group_turn_in_natural_list_and_manual_order(client, services, trio):
    ids, group = trio
    ada, bo, cy = ids
    # natural: the one named replies first; the others never speak up unasked (talkativeness 0)
    client.patch(f"/api/groups/{group['id']}", json={"members": [
        {"companion_id": c, "talkativeness": 0} for c in ids]})
    answer = client.post(f"/api/groups/{group['id']}/turn", json={"text": "Cy, what is your favourite season?"})
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert [r["message"]["companion_id"] for r in body["replies"]] == [cy]
    assert body["message"]["text"] == "Cy, what is your favourite season?" and body["replies"][0]["message"]["text"]
    # list: everyone unmuted, in order
    client.patch(f"/api/groups/{group['id']}", json={"strategy": "list", "members": [
        ada, {"companion_id": bo, "muted": True}, cy]})
    body = client.post(f"/api/groups/{group['id']}/turn", json={"text": "Good morning, everyone!"}).get_json()
    assert [r["message"]["companion_id"] for r in body["replies"]] == [ada, cy]
    # manual: nobody unless asked; then the one asked
    client.patch(f"/api/groups/{group['id']}", json={"strategy": "manual"})
    body = client.post(f"/api/groups/{group['id']}/turn", json={"text": "Hm."}).get_json()
    assert body["replies"] == []
    body = client.post(f"/api/groups/{group['id']}/reply", json={"companion_id": bo}).get_json()
    assert [r["message"]["companion_id"] for r in body["replies"]] == [bo] and body["message"] is None
    messages = client.get(f"/api/chats/{body['chat_id']}/messages").get_json()["items"]
    assert [(m["ai"], m["companion_id"]) for m in messages] == [
        (False, None), (True, cy), (False, None), (True, ada), (True, cy), (False, None), (True, bo)]
    chat = client.get(f"/api/chats/{body['chat_id']}").get_json()
    assert chat["group_id"] == group["id"] and chat["members"] == ids
    # the prompt names every speaker, and the history reads the same whoever speaks next
    hit = client.get("/api/search?q=morning").get_json()["items"][0]
    assert hit["speaker"] and hit["group_id"] == group["id"]


def test_each_member_remembers_the_group_and_recalls_it_alone(client, services, trio):
    ids, group = trio
    client.patch(f"/api/groups/{group['id']}", json={"strategy": "list"})
    client.post(f"/api/groups/{group['id']}/turn", json={"text": "My sister Oona visits me next week."})
    chat_id = client.get(f"/api/groups/{group['id']}").get_json()["active_chat_id"]
    for companion_id in ids:
        memories = client.get(f"/api/memories?companion_id={companion_id}").get_json()["items"]
        group_memories = [m for m in memories if m["chat_id"] == chat_id]
        assert len(group_memories) == 1 and "Oona" in group_memories[0]["text"]
    ada = ids[0]
    own_chat = client.get(f"/api/chats?companion_id={ada}").get_json()["items"]
    assert [c["group_id"] for c in own_chat] == [None]           # a companion's chats are its own
    reply = client.post("/api/prompt", json={"prompt": "Who visits me next week?", "chat_id": own_chat[0]["id"]})
    context = client.get(f"/api/messages/{reply.get_json()['id']}/context").get_json()
    assert any("Oona" in m["text"] for m in context["memories"])


def sse_events(response) -> list[tuple[str, dict]]:
    out = []
    for block in response.get_data(as_text=True).split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            out.append((fields["event"], json.loads(fields["data"])))
    return out


def test_a_streamed_turn_names_each_speaker_and_abort_stops_the_rest(client, services, trio):
    ids, group = trio
    client.patch(f"/api/groups/{group['id']}", json={"strategy": "list"})
    events = sse_events(client.post(f"/api/groups/{group['id']}/turn", json={"text": "Hello all!", "stream": True}))
    names = [name for name, _ in events]
    assert names[0] == "message" and names[-1] == "done"
    speakers = [data["companion_id"] for name, data in events if name == "speaker"]
    assert speakers == ids and names.count("reply") == 3
    assert all(data["companion_id"] in ids for name, data in events if name == "token")
    assert [r["message"]["companion_id"] for r in events[-1][1]["replies"]] == ids

    response = client.post(f"/api/groups/{group['id']}/turn", json={"text": "Again!", "stream": True},
                           buffered=False)
    seen = []
    for chunk in response.response:
        text = chunk.decode() if isinstance(chunk, bytes) else chunk
        seen.append(text)
        if text.startswith("event: token"):
            assert services.turns.abort()          # the first member stops, the rest never start
    response.close()
    streamed = "".join(seen)
    assert streamed.count("event: speaker") == 1 and streamed.count("event: reply") == 1
    assert "event: done" in streamed
    messages = client.get(f"/api/chats/{group['active_chat_id']}/messages").get_json()["items"]
    assert messages[-2]["text"] == "Again!" and messages[-1]["companion_id"] == ids[0]
    assert services.turns.lock.wait_idle(1)


def test_swipes_export_and_import_of_a_group_chat(client, services, trio):
    ids, group = trio
    client.patch(f"/api/groups/{group['id']}", json={"strategy": "list"})
    client.post(f"/api/groups/{group['id']}/turn", json={"text": "Tell me a fact."})
    chat_id = client.get(f"/api/groups/{group['id']}").get_json()["active_chat_id"]
    last = client.get(f"/api/chats/{chat_id}/messages").get_json()["items"][-1]
    swiped = client.post(f"/api/messages/{last['id']}/swipes", json={}).get_json()
    assert len(swiped["swipes"]) == 2 and swiped["companion_id"] == ids[2]      # the same speaker again
    exported = client.get(f"/api/chats/{chat_id}/export?format=jsonl").get_data()
    lines = [json.loads(line) for line in exported.decode().splitlines()]
    assert [line["name"] for line in lines[1:] if not line["is_user"]] == ["Ada", "Bo", "Cy"]
    imported = client.post(f"/api/groups/{group['id']}/chats/import", data=exported,
                           content_type="application/octet-stream")
    assert imported.status_code == 201, imported.get_json()
    new_id = imported.get_json()["id"]
    again = client.get(f"/api/chats/{new_id}/messages").get_json()["items"]
    assert [(m["ai"], m["companion_id"], m["text"]) for m in again] == [
        (m["ai"], m["companion_id"], m["text"]) for m in client.get(f"/api/chats/{chat_id}/messages")
        .get_json()["items"]]
    stranger = exported.replace(b'"name": "Bo"', b'"name": "Zed"')
    refused = client.post(f"/api/groups/{group['id']}/chats/import", data=stranger,
                          content_type="application/octet-stream")
    assert refused.status_code == 400 and "Zed" in refused.get_json()["error"]["message"]
    assert client.get(f"/api/groups/{group['id']}/chats").get_json()["total"] == 2
    assert client.delete(f"/api/groups/{group['id']}").status_code == 204
    assert client.get(f"/api/chats/{chat_id}").status_code == 404
    assert not [m for m in client.get(f"/api/memories?companion_id={ids[0]}").get_json()["items"]
                if m["chat_id"] == chat_id]


def test_a_groups_preset_shapes_its_members_replies(client, services, trio):
    from test_turns import recorded_requests

    ids, group = trio
    precise = next(p for p in client.get("/api/presets").get_json()["items"] if p["name"] == "precise")
    made = client.post("/api/groups", json={"name": "Precise ones", "members": ids, "preset_id": precise["id"]})
    assert made.status_code == 201 and made.get_json()["preset_id"] == precise["id"]
    assert client.patch(f"/api/groups/{group['id']}", json={"preset_id": 99999}).status_code == 400
    changed = client.patch(f"/api/groups/{group['id']}", json={"preset_id": precise["id"], "strategy": "list"})
    assert changed.get_json()["preset_id"] == precise["id"]
    with recorded_requests(services.turns) as requests:
        client.post(f"/api/groups/{group['id']}/turn", json={"text": "Hi!", "max_tokens": 8})
    assert len(requests) == 3
    assert all(r.params.temperature == precise["settings"]["temperature"] and r.params.max_tokens == 8
               for r in requests)            # the group's preset, and the request's own values over it


def test_other_clients_see_one_generation_from_the_first_reply_to_the_last(client, services, trio):
    ids, group = trio
    client.patch(f"/api/groups/{group['id']}", json={"strategy": "list"})
    since = services.events.last_id
    client.post(f"/api/groups/{group['id']}/turn", json={"text": "Hello!"})
    told = [(e.kind, e.data) for e in services.events.after(since) if e.kind.startswith("generation.")]
    assert [kind for kind, _ in told] == ["generation.started"] * 3 + ["generation.finished"]
    assert [data["companion_id"] for _, data in told[:3]] == ids     # who is writing now
    assert told[-1][1]["what"] == "group" and len(told[-1][1]["message_ids"]) == 3
    assert services.turns.generating is None
