"""Finding companions (search, tags, sort, paging) and personas with avatars, named in chat exports."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image
from test_companions_api import assert_error

from companion.config import MAX_FILTER_TAGS, MAX_SEARCH_LENGTH
from companion.store import Store


def png(size: tuple[int, int], colour: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def names(client, query: str = "") -> list[str]:
    return [c["name"] for c in client.get(f"/api/companions{query}").get_json()["items"]]


# finding companions ------------------------------------------------------------------------------

def test_the_store_finds_companions_by_words_in_any_case_and_by_all_tags(tmp_path):
    store = Store(tmp_path / "c.db")
    store.create_companion({"name": "Ærwen", "persona": "A sailor.", "card": {"tags": ["Sea", "fantasy"],
                                                                             "nickname": "Wen"}})
    store.create_companion({"name": "Bob", "persona": "", "card": {"tags": ["sea"], "creator_notes": "Loves ÆGIR"}})
    found = lambda q="", tags=(): [r["name"] for r in store.find_companions(q, list(tags), "name", "asc", 10, 0)[0]]  # noqa: E731
    assert found("ærw") == ["Ærwen"] and found("wen") == ["Ærwen"] and found("SAILOR") == ["Ærwen"]
    assert found("ægir") == ["Bob"]                                          # creator notes, any case (not ASCII)
    assert found(tags=["SEA"]) == ["Bob", "Ærwen"] and found(tags=["sea", "Fantasy"]) == ["Ærwen"]
    assert found("x%_") == [] and found(tags=["sea", "nope"]) == []
    store.close()


def test_search_by_name_and_tag_with_paging_and_sorting(client, services):
    made = {}
    for name, tags, notes in [("Nova", ["space", "Calm"], ""), ("Orion", ["space"], "a hunter"),
                              ("Pebble", ["garden"], "space rocks"), ("nova two", [], "")]:
        made[name] = client.post("/api/companions", json={"name": name, "tags": tags, "creator_notes": notes}).get_json()
    chat_id = client.get(f"/api/chats?companion_id={made['Orion']['id']}").get_json()["items"][0]["id"]
    assert client.post("/api/chats", json={"companion_id": made["Orion"]["id"]}).status_code == 201
    client.post(f"/api/chats/{chat_id}/activate")
    client.post("/api/import/messagesJson", json={"messages": [{"ai": False, "text": "hi", "date": "2026-01-02T10:00:00Z"}]})

    page = client.get("/api/companions?q=NOVA&sort=name").get_json()
    assert page["total"] == 2 and [c["name"] for c in page["items"]] == ["Nova", "nova two"]
    assert names(client, "?q=space&sort=name") == ["Pebble"]                   # creator notes
    assert names(client, "?tags=space&sort=name") == ["Nova", "Orion"]
    assert names(client, "?tags=SPACE,calm") == ["Nova"]
    paged = client.get("/api/companions?tags=space&sort=name&order=desc&limit=1&offset=1").get_json()
    assert paged["total"] == 2 and [c["name"] for c in paged["items"]] == ["Nova"]
    orion = next(c for c in client.get("/api/companions?q=orion").get_json()["items"])
    assert orion["chat_count"] == 2 and orion["last_chat_at"] == "2026-01-02T10:00:00+00:00"
    assert orion["tags"] == ["space"]
    assert names(client, "?sort=last_chat&order=desc")[0] == "Orion"            # never-chatted ones after it
    assert names(client, "?sort=created")[1:] == ["Nova", "Orion", "Pebble", "nova two"]
    assert names(client, "?sort=created&order=desc")[0] == "nova two"
    services.store.db.execute("update companions set updated_at = '2020-01-01T00:00:00+00:00'")
    client.patch(f"/api/companions/{made['Nova']['id']}", json={"tags": ["space", "calm", "new"]})
    assert names(client, "?tags=new") == ["Nova"] and names(client, "?sort=modified&order=desc")[0] == "Nova"


@pytest.mark.parametrize("query, reason", [
    ("?sort=age", "sort must be one of"), ("?order=up", "order"),
    ("?q=" + "x" * (MAX_SEARCH_LENGTH + 1), "too long"),
    ("?tags=" + ",".join(f"t{n}" for n in range(10_000)), f"at most {MAX_FILTER_TAGS} tags"),
    ("?tags=" + "t" * 101, "at most 100 characters"), ("?limit=0", "limit"),
])
def test_bad_companion_queries_are_refused_with_the_reason(client, query, reason):
    assert reason in assert_error(client.get(f"/api/companions{query}"), 400)["message"]


# persona avatars ---------------------------------------------------------------------------------

def test_persona_avatar_upload_thumbnail_and_delete(client, services):
    persona = client.get("/api/personas").get_json()["items"][0]
    assert persona["avatar_url"] is None
    url = f"/api/personas/{persona['id']}/avatar"
    default = client.get(url)
    assert default.status_code == 200 and default.mimetype == "image/png"
    sent = client.put(url, data=png((600, 300)))
    assert sent.status_code == 200 and sent.get_json()["avatar_url"] == url
    assert Image.open(io.BytesIO(client.get(url).data)).size == (600, 300)
    assert Image.open(io.BytesIO(client.get(url + "?size=thumb").data)).size == (256, 128)
    first = services.store.get_user(persona["id"])["avatar"]
    multipart = client.put(url, data={"file": (io.BytesIO(png((40, 40), "blue")), "me.png")})
    assert multipart.status_code == 200
    files = sorted(p.name for p in services.companions.avatars.folder.iterdir())
    assert first not in " ".join(files) and len([f for f in files if not f.endswith(".thumb.png")]) == 1
    assert_error(client.put(url, data=b"not an image"), 400)
    assert_error(client.get(url + "?size=huge"), 400)
    assert Image.open(io.BytesIO(client.get(url).data)).size == (40, 40)      # the bad upload changed nothing
    assert client.delete(url).get_json()["avatar_url"] is None
    assert not any(services.companions.avatars.folder.iterdir())
    assert_error(client.put("/api/personas/999/avatar", data=png((10, 10))), 404)


def test_deleting_a_persona_removes_its_avatar(client, services):
    bo = client.post("/api/personas", json={"name": "Bo"}).get_json()
    client.put(f"/api/personas/{bo['id']}/avatar", data=png((20, 20)))
    assert any(services.companions.avatars.folder.iterdir())
    assert client.delete(f"/api/personas/{bo['id']}").status_code == 204
    assert not any(services.companions.avatars.folder.iterdir())


def test_the_sillytavern_export_names_the_persona_who_said_each_message(client):
    chat_id = client.get("/api/chats").get_json()["items"][0]["id"]
    ann = client.post("/api/personas", json={"name": "Ann"}).get_json()
    bo = client.post("/api/personas", json={"name": "Bo"}).get_json()
    for persona, text in ((ann, "Hi, I am Ann."), (bo, "And I am Bo.")):
        client.post(f"/api/personas/{persona['id']}/activate")
        client.post("/api/import/messagesJson", json={"messages": [{"ai": False, "text": text}]})
    lines = [json.loads(line) for line in
             client.get(f"/api/chats/{chat_id}/export?format=jsonl").get_data(as_text=True).splitlines()]
    said = [(entry["name"], entry["mes"]) for entry in lines[1:] if entry["is_user"]]
    assert said == [("Ann", "Hi, I am Ann."), ("Bo", "And I am Bo.")]
    assert lines[1]["name"] == "Assistant" and lines[0]["user_name"] == "Bo"
    transcript = client.get(f"/api/chats/{chat_id}/export?format=txt").get_data(as_text=True)
    assert "Ann: Hi, I am Ann." in transcript and "Bo: And I am Bo." in transcript
