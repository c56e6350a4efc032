"""Lorebooks over REST and in the prompt; card prompt rules; greetings for new chats."""

from __future__ import annotations

import io
import json

import pytest
from conftest import CARDS


class RecordingGenerator:
    """The real generator, remembering the prompts it was given."""

    def __init__(self, real) -> None:
        self.real = real
        self.prompts: list[str] = []

    def __getattr__(self, name):
        return getattr(self.real, name)

    def generate(self, request, stop_event=None):
        self.prompts.append(self.real.render(request)[0])
        return self.real.generate(request, stop_event)


@pytest.fixture
def recorder(services) -> RecordingGenerator:
    recording = RecordingGenerator(services.turns.generator)
    services.turns.generator = recording
    return recording


def eldoria() -> bytes:
    return (CARDS / "Eldoria.json").read_bytes()


def test_import_export_sillytavern_world_info(client):
    response = client.post("/api/lorebooks/import", data={"file": (io.BytesIO(eldoria()), "Eldoria.json")},
                           content_type="multipart/form-data")
    assert response.status_code == 201
    book = response.get_json()
    assert book["format"] == "sillytavern" and book["entry_count"] == len(book["entries"]) == 4
    assert book["name"] == "Eldoria"
    exported = client.get(f"/api/lorebooks/{book['id']}/export").get_json()
    assert exported == json.loads(eldoria())
    as_card_book = client.get(f"/api/lorebooks/{book['id']}/export?format=character_book").get_json()
    assert len(as_card_book["entries"]) == 4
    assert client.get("/api/lorebooks").get_json()["total"] == 1


@pytest.mark.parametrize("data", [b"", b"{broken", b"[1, 2]", json.dumps({"name": "Aqua", "first_mes": "hi"}).encode(),
                                  json.dumps({"entries": {"0": {"key": 5, "content": "x"}}}).encode()])
def test_bad_lorebook_files(client, data):
    response = client.post("/api/lorebooks/import", data=data, content_type="application/json")
    assert response.status_code == 400 and response.get_json()["error"]["message"]
    assert client.get("/api/lorebooks").get_json()["total"] == 0


def test_entries_crud(client):
    book = client.post("/api/lorebooks", json={"name": "Dragons", "entries": []}).get_json()
    url = f"/api/lorebooks/{book['id']}/entries"
    entry = client.post(url, json={"keys": ["dragon"], "content": "Dragons hoard gold."})
    assert entry.status_code == 201 and entry.get_json()["index"] == 0
    patched = client.patch(f"{url}/0", json={"content": "Dragons hoard books.", "case_sensitive": True})
    assert patched.get_json()["content"] == "Dragons hoard books." and patched.get_json()["keys"] == ["dragon"]
    assert client.patch(f"{url}/0", json={"keys": 5}).status_code == 400
    assert client.patch(f"{url}/0", json={"colour": "red"}).status_code == 400
    assert client.patch(f"{url}/9", json={"content": "x"}).status_code == 404
    assert client.get(f"/api/lorebooks/{book['id']}").get_json()["entries"][0]["content"] == "Dragons hoard books."
    assert client.delete(f"{url}/0").status_code == 204
    assert client.get(f"/api/lorebooks/{book['id']}").get_json()["entries"] == []
    assert client.patch(f"/api/lorebooks/{book['id']}", json={"name": "Wyrms"}).get_json()["name"] == "Wyrms"
    assert client.delete(f"/api/lorebooks/{book['id']}").status_code == 204
    assert client.get(f"/api/lorebooks/{book['id']}").status_code == 404


def test_card_lorebook_key_in_the_message_puts_the_entry_in_the_prompt(client, recorder, services):
    services.settings.lore.token_budget = 2048   # the greeting's "forest" entry alone is ~350 tokens
    seraphina = client.post("/api/companions/import", data=(CARDS / "default_Seraphina.png").read_bytes()).get_json()
    assert len(seraphina["lorebook_ids"]) == 1
    client.post(f"/api/companions/{seraphina['id']}/activate")
    book = client.get(f"/api/lorebooks/{seraphina['lorebook_ids'][0]}").get_json()
    shadowfang = next(e for e in book["entries"] if "shadowfang" in e["keys"])
    reply = client.post("/api/prompt", json={"prompt": "Are the Shadowfang close?", "max_tokens": 4}).get_json()
    # the greeting (within scan_depth 2) mentions the forest and magic; the user names the Shadowfang
    reasons = [item["reason"] for item in reply["lore"]]
    assert "key: shadowfang" in reasons and "key: glade" not in reasons
    used = reply["lore"][reasons.index("key: shadowfang")]
    assert used["lorebook_id"] == book["id"] and used["entry"] == shadowfang["index"]
    assert used["content"].startswith('User: "What are Shadowfangs?"\nSeraphina:')   # placeholders resolved
    assert used["content"] in recorder.prompts[-1]
    services.settings.lore.scan_depth = 1
    quiet = client.post("/api/prompt", json={"prompt": "Hello there.", "max_tokens": 4}).get_json()
    assert quiet["lore"] == []
    services.settings.lore.token_budget = 280                   # too small for the forest entry
    reply = client.post("/api/prompt", json={"prompt": "The forest and the beasts?", "max_tokens": 4}).get_json()
    assert [item["reason"] for item in reply["lore"]] == ["key: beasts"]


def test_attach_detach_and_constant_lore(client, recorder):
    companion_id = client.get("/api/companionData").get_json()["id"]
    book = client.post("/api/lorebooks", json={"name": "World", "entries": [
        {"keys": ["lighthouse"], "content": "The lighthouse keeper is named Ode."},
        {"keys": [], "content": "It is always autumn here.", "constant": True},
    ]}).get_json()
    assert client.post(f"/api/companions/{companion_id}/lorebooks", json={"lorebook_id": book["id"]}).status_code == 200
    reply = client.post("/api/prompt", json={"prompt": "Who lives in the lighthouse?", "max_tokens": 4}).get_json()
    assert {item["reason"] for item in reply["lore"]} == {"constant", "key: lighthouse"}
    prompt = recorder.prompts[-1]
    system_part = prompt.split("<|im_end|>")[0]
    assert "always autumn" in system_part and "Ode" not in system_part and "Ode" in prompt
    assert client.delete(f"/api/companions/{companion_id}/lorebooks/{book['id']}").status_code == 204
    reply = client.post("/api/prompt", json={"prompt": "And the lighthouse?", "max_tokens": 4}).get_json()
    assert reply["lore"] == []
    assert client.post(f"/api/companions/{companion_id}/lorebooks", json={"lorebook_id": 999}).status_code == 404


def test_card_prompt_rules(client, recorder):
    body = {"name": "Rhea", "nickname": "Rhe", "description": "{{char}} is a poet.",
            "system_prompt": "{{original}} Always answer in rhyme.",
            "post_history_instructions": "Stay brief, {{user}}.", "creator_notes": "SECRET NOTE",
            "first_mes": "Hello, I am {{char}}.", "alternate_greetings": ["Greetings from {{char}}!", "Yo."]}
    rhea = client.post("/api/companions", json=body).get_json()
    client.post(f"/api/companions/{rhea['id']}/activate")
    assert client.get("/api/messages").get_json()[0]["text"] == "Hello, I am Rhe."
    client.post("/api/prompt", json={"prompt": "Hi!", "max_tokens": 4})
    prompt = recorder.prompts[-1]
    assert "You are Rhe. Continue the conversation" in prompt and "Always answer in rhyme." in prompt
    assert "Rhe is a poet." in prompt and "SECRET NOTE" not in prompt
    assert prompt.index("Stay brief, User.") > prompt.index("Hello, I am Rhe.")   # after the history
    chat = client.post("/api/chats", json={"companion_id": rhea["id"], "greeting_index": 1})
    assert chat.status_code == 201 and chat.get_json()["messages"][0]["text"] == "Greetings from Rhe!"
    assert client.get("/api/messages").get_json()[0]["text"] == "Greetings from Rhe!"
    assert client.post("/api/chats", json={"companion_id": rhea["id"], "greeting_index": 3}).status_code == 400
    assert client.post("/api/chats", json={"companion_id": 999}).status_code == 404


def test_v3_card_nickname_is_char(client, recorder):
    sera = client.post("/api/companions/import", data=(CARDS / "Seraphina_v3.png").read_bytes()).get_json()
    assert sera["nickname"] == "Sera"
    client.post(f"/api/companions/{sera['id']}/activate")
    client.post("/api/prompt", json={"prompt": "Who are you?", "max_tokens": 4})
    assert "You are Sera." in recorder.prompts[-1]


def test_a_replaced_cards_lorebook_goes_unless_something_else_uses_it(client):
    seraphina = (CARDS / "default_Seraphina.png").read_bytes()
    aqua = (CARDS / "Aqua.png").read_bytes()

    def books() -> list[dict]:
        return client.get("/api/lorebooks").get_json()["items"]

    assert client.post("/api/import/characterCard", data=seraphina, content_type="image/png").status_code == 200
    assert len(books()) == 1
    assert client.post("/api/import/characterCard", data=aqua, content_type="image/png").status_code == 200
    assert books() == []                                  # Aqua has no book: Seraphina's went with her card
    assert client.post("/api/import/characterCard", data=seraphina, content_type="image/png").status_code == 200
    book = books()[0]
    other = client.post("/api/companions", json={"name": "Kai"}).get_json()
    assert client.post(f"/api/companions/{other['id']}/lorebooks", json={"lorebook_id": book["id"]}).status_code == 200
    assert client.post("/api/import/characterCard", data=aqua, content_type="image/png").status_code == 200
    assert [b["id"] for b in books()] == [book["id"]]     # Kai still uses it: kept
