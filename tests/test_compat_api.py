"""The AI Companion API through Flask's test client: real SQLite, Chroma, embedder and model."""

from __future__ import annotations

import base64
import io
import json

import pytest
from conftest import CARDS
from PIL import Image, PngImagePlugin


def snapshot(client) -> dict:
    """Everything the compat API can read, to check that bad input changed nothing."""
    return {
        "messages": client.get("/api/messages").get_json(),
        "companion": client.get("/api/companionData").get_json(),
        "user": client.get("/api/userData").get_json(),
        "character": client.get("/api/characterJson").get_json(),
        "status_counts": client.get("/api/status").get_json()["counts"],
    }


def png_bytes(size=(8, 8), text: dict | None = None) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    out = io.BytesIO()
    Image.new("RGB", size, (200, 100, 50)).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def assert_text(response, status: int, body: str | None = None) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    if body is not None:
        assert response.get_data(as_text=True) == body


def assert_bad(client, method: str, path: str, status: int = 400, **kwargs) -> str:
    """A bad request: 4xx, a plain-text reason, and no change to any data."""
    before = snapshot(client)
    response = client.open(path, method=method, **kwargs)
    assert 400 <= response.status_code < 500, (path, response.status_code, response.data)
    assert response.status_code == status, (path, response.status_code, response.data)
    reason = response.get_data(as_text=True)
    assert reason.strip(), "a bad request needs a reason"
    assert snapshot(client) == before
    return reason


# --- messages and turns ----------------------------------------------------------------------

def test_fresh_chat_opens_with_the_first_message(client):
    messages = client.get("/api/messages").get_json()
    assert len(messages) == 1
    first = messages[0]
    assert first["ai"] == "true" and isinstance(first["id"], int) and first["date"]
    assert "Assistant" in first["text"] and "{{char}}" not in first["text"]


def test_prompt_returns_the_stored_reply(client):
    response = client.post("/api/prompt", json={"prompt": "Hello! What is your name?"})
    assert response.status_code == 200
    reply = response.get_json()
    assert list(reply)[:4] == ["id", "ai", "text", "date"]
    assert set(reply) == {"id", "ai", "text", "date", "memories", "memory_window", "lore"}
    assert reply["memories"] == [] and reply["lore"] == []
    assert reply["ai"] is True and reply["text"].strip()
    messages = client.get("/api/messages").get_json()
    assert [m["ai"] for m in messages] == ["true", "false", "true"]
    assert messages[1]["text"] == "Hello! What is your name?"
    assert messages[-1] == {"id": reply["id"], "ai": "true", "text": reply["text"], "date": reply["date"]}
    assert reply["text"] == reply["text"].strip()
    counts = client.get("/api/status").get_json()["counts"]
    assert counts["memories"] == 1 and counts["indexed_memories"] == 1


@pytest.mark.parametrize("body", [
    {}, {"prompt": ""}, {"prompt": "   "}, {"prompt": 5}, {"prompt": None}, {"text": "hi"}, [],
])
def test_prompt_bad_input(client, body):
    assert_bad(client, "POST", "/api/prompt", json=body)


def test_prompt_broken_json(client):
    reason = assert_bad(client, "POST", "/api/prompt", data="{not json", content_type="application/json")
    assert "JSON" in reason


def test_prompt_too_long_for_context(client):
    reason = assert_bad(client, "POST", "/api/prompt", json={"prompt": "word " * 5000})
    assert "too long" in reason


def test_regenerate_replaces_the_last_reply(client, services):
    first = client.post("/api/prompt", json={"prompt": "Tell me about cats."}).get_json()
    for n, method in enumerate(("GET", "POST"), start=2):
        response = client.open("/api/regenerate_message", method=method, json={"temperature": 1.0, "seed": n})
        assert response.status_code == 200
        again = response.get_json()
        assert {"id", "ai", "text", "date"} <= set(again) and again["ai"] is True
        messages = client.get("/api/messages").get_json()
        # the new reply takes the old one's place (kept as an earlier swipe of the same message)
        assert len(messages) == 3 and messages[-1]["id"] == again["id"] == first["id"]
        assert messages[-1]["text"] == again["text"]
        assert len(services.store.get_message(first["id"])["swipes"]) == n
    # the replaced exchange's memory went with it: still one memory, indexed
    counts = client.get("/api/status").get_json()["counts"]
    assert counts["memories"] == 1 and counts["indexed_memories"] == 1


def test_regenerate_without_a_user_message(client):
    assert_bad(client, "GET", "/api/regenerate_message")


def test_edit_message(client):
    reply = client.post("/api/prompt", json={"prompt": "I like green tea."}).get_json()
    assert_text(client.post("/api/editMessage", json={"id": reply["id"], "new_text": "Edited {{user}}"}),
                200, "Removed message")
    messages = client.get("/api/messages").get_json()
    assert messages[-1]["text"] == "Edited User"
    assert client.get("/api/messagesJson").get_json()["messages"][-1]["text"] == "Edited {{user}}"


@pytest.mark.parametrize("body", [
    {"id": 99999, "new_text": "x"}, {"new_text": "x"}, {"id": 1}, {"id": "one", "new_text": "x"},
    {"id": 1, "new_text": ""}, {"id": 1, "new_text": 3}, {"id": -1, "new_text": "x"}, {"id": True, "new_text": "x"},
])
def test_edit_message_bad_input(client, body):
    status = 404 if body.get("id") == 99999 else 400
    assert_bad(client, "POST", "/api/editMessage", status=status, json=body)


def test_remove_message(client):
    reply = client.post("/api/prompt", json={"prompt": "Remember that I play the violin."}).get_json()
    assert_text(client.post("/api/removeMessage", json={"id": reply["id"]}), 200, "Removed message")
    assert reply["id"] not in [m["id"] for m in client.get("/api/messages").get_json()]
    assert client.get("/api/status").get_json()["counts"]["memories"] == 0


@pytest.mark.parametrize("body", [{}, {"id": "x"}, {"id": 424242}, {"id": None}])
def test_remove_message_bad_input(client, body):
    assert_bad(client, "POST", "/api/removeMessage", status=404 if body.get("id") == 424242 else 400, json=body)


def test_clear_messages_keeps_long_term_memory(client):
    client.post("/api/prompt", json={"prompt": "My dog is called Bruno."})
    assert_text(client.get("/api/clearMessages"), 200, "Chat log cleared")
    messages = client.get("/api/messages").get_json()
    assert len(messages) == 1 and messages[0]["ai"] == "true"
    assert client.get("/api/status").get_json()["counts"]["memories"] == 1


# --- companion and user ----------------------------------------------------------------------

def test_companion_data_shape(client):
    data = client.get("/api/companionData").get_json()
    assert list(data) == ["id", "name", "persona", "example_dialogue", "first_message", "long_term_mem",
                          "short_term_mem", "roleplay", "dialogue_tuning", "avatar_path"]
    assert data["roleplay"] in (0, 1) and data["avatar_path"] == "/assets/avatar.png"
    assert isinstance(data["long_term_mem"], int) and isinstance(data["short_term_mem"], int)


@pytest.mark.parametrize("path, body, sentence, key, expected", [
    ("/api/change/firstMessage", {"first_message": "Hi {{user}}!"}, "Changed first message",
     "first_message", "Hi {{user}}!"),
    ("/api/change/companionName", {"companion_name": "Mira"}, "Changed companion name", "name", "Mira"),
    ("/api/change/companionPersona", {"companion_persona": "{{char}} is a botanist."},
     "Changed companion persona", "persona", "{{char}} is a botanist."),
    ("/api/change/companionExampleDialogue", {"example_dialogue": "{{user}}: hi\n{{char}}: hello"},
     "Changed companion example dialogue", "example_dialogue", "{{user}}: hi\n{{char}}: hello"),
    ("/api/change/longTermMemory", {"limit": 5}, "Changed long term memory limit for ai", "long_term_mem", 5),
    ("/api/change/longTermMemory", {"limit": "3"}, "Changed long term memory limit for ai", "long_term_mem", 3),
    ("/api/change/shortTermMemory", {"limit": 20}, "Changed short term memory limit for ai", "short_term_mem", 20),
    ("/api/change/roleplay", {"enable": False}, "Disabled roleplay", "roleplay", 0),
    ("/api/change/roleplay", {"enable": True}, "Enabled roleplay", "roleplay", 1),
    ("/api/change/dialogue_tuning", {"enable": True}, "Enabled dialogue tuning", "dialogue_tuning", 1),
    ("/api/change/dialogue_tuning", {"enable": False}, "Disabled dialogue tuning", "dialogue_tuning", 0),
])
def test_change_companion_fields(client, path, body, sentence, key, expected):
    assert_text(client.post(path, json=body), 200, sentence)
    assert client.get("/api/companionData").get_json()[key] == expected


def test_first_message_change_replaces_the_greeting(client):
    client.post("/api/change/firstMessage", json={"first_message": "Welcome back, {{user}}."})
    assert client.get("/api/messages").get_json()[0]["text"] == "Welcome back, User."


@pytest.mark.parametrize("path, body", [
    ("/api/change/firstMessage", {}),
    ("/api/change/firstMessage", {"first_message": 1}),
    ("/api/change/companionName", {"companion_name": ""}),
    ("/api/change/companionName", {"companion_name": "x" * 500}),
    ("/api/change/companionName", {"name": "wrong key"}),
    ("/api/change/companionPersona", {"companion_persona": None}),
    ("/api/change/companionExampleDialogue", {"example_dialogue": ["a"]}),
    ("/api/change/longTermMemory", {"limit": -1}),
    ("/api/change/longTermMemory", {"limit": 1.5}),
    ("/api/change/longTermMemory", {"limit": "many"}),
    ("/api/change/longTermMemory", {}),
    ("/api/change/shortTermMemory", {"limit": -5}),
    ("/api/change/shortTermMemory", {"limit": 10**9}),
    ("/api/change/roleplay", {"enable": "yes"}),
    ("/api/change/roleplay", {}),
    ("/api/change/dialogue_tuning", {"enable": 2}),
    ("/api/change/userName", {"user_name": ""}),
    ("/api/change/userName", {}),
    ("/api/change/userPersona", {"user_persona": 3}),
    ("/api/change/userData", {"id": 0, "name": "Ann"}),
    ("/api/change/userData", {"id": 0, "persona": "p"}),
])
def test_change_bad_input(client, path, body):
    assert_bad(client, "POST", path, json=body)


def test_change_companion_data(client):
    body = {"id": 0, "name": "Nova", "persona": "{{char}} loves stars.", "example_dialogue": "",
            "first_message": "Hello {{user}}", "long_term_mem": 4, "short_term_mem": 12, "roleplay": False}
    assert_text(client.post("/api/change/companionData", json=body), 200,
                "Data of your AI companion has been changed")
    data = client.get("/api/companionData").get_json()
    assert (data["name"], data["persona"], data["long_term_mem"], data["short_term_mem"], data["roleplay"]) == \
        ("Nova", "{{char}} loves stars.", 4, 12, 0)
    # what GET returns can be sent back as it is (roleplay as 1/0)
    data["roleplay"] = 1
    assert client.post("/api/change/companionData", json=data).status_code == 200


@pytest.mark.parametrize("missing", ["name", "persona", "example_dialogue", "first_message",
                                     "long_term_mem", "short_term_mem", "roleplay"])
def test_change_companion_data_missing_field(client, missing):
    body = {"id": 0, "name": "Nova", "persona": "p", "example_dialogue": "", "first_message": "",
            "long_term_mem": 4, "short_term_mem": 12, "roleplay": True}
    del body[missing]
    assert_bad(client, "POST", "/api/change/companionData", json=body)


def test_user_changes(client):
    assert_text(client.post("/api/change/userName", json={"user_name": "Ann"}), 200, "Changed user name")
    assert_text(client.post("/api/change/userPersona", json={"user_persona": "{{user}} paints."}), 200,
                "Changed user persona")
    assert client.get("/api/userData").get_json()["persona"] == "{{user}} paints."
    assert_text(client.post("/api/change/userData", json={"id": 0, "name": "Bea", "persona": "A pilot."}),
                200, "Data of user has been changed")
    user = client.get("/api/userData").get_json()
    assert (user["name"], user["persona"]) == ("Bea", "A pilot.") and isinstance(user["id"], int)
    assert "Bea" in client.get("/api/messages").get_json()[0]["text"]


# --- avatar ------------------------------------------------------------------------------------

def test_avatar_default_and_upload(client):
    default = client.get("/assets/avatar.png")
    assert default.status_code == 200 and default.mimetype == "image/png"
    upload = png_bytes((600, 300))
    assert_text(client.post("/api/change/companionAvatar", data=upload, content_type="image/png"),
                200, "Changed avatar of your ai companion")
    served = client.get("/assets/avatar.png")
    assert served.status_code == 200
    assert Image.open(io.BytesIO(served.data)).size == (600, 300)


@pytest.mark.parametrize("data", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\nbroken"])
def test_avatar_bad_input(client, data):
    before = client.get("/assets/avatar.png").data
    assert_bad(client, "POST", "/api/change/companionAvatar", data=data, content_type="image/png")
    assert client.get("/assets/avatar.png").data == before


# --- character cards ---------------------------------------------------------------------------

def test_import_character_json(client):
    card = {"name": "Luna", "description": "{{char}} is a night owl.", "first_mes": "Evening, {{user}}.",
            "mes_example": "<START>\n{{user}}: hi\n{{char}}: hey"}
    client.post("/api/prompt", json={"prompt": "Hi there"})
    assert_text(client.post("/api/import/characterJson", json=card), 200,
                "Data of your ai companion has been changed")
    assert client.get("/api/characterJson").get_json() == card
    data = client.get("/api/companionData").get_json()
    assert data["name"] == "Luna" and data["persona"] == card["description"]
    # the new character starts a fresh chat with its greeting
    assert [m["text"] for m in client.get("/api/messages").get_json()] == ["Evening, User."]


@pytest.mark.parametrize("body", [
    {"description": "d", "first_mes": "f", "mes_example": "m"},
    {"name": "", "description": "d", "first_mes": "f", "mes_example": "m"},
    {"name": "N", "description": 5, "first_mes": "f", "mes_example": "m"},
    {"name": "N", "description": "d", "mes_example": "m"},
])
def test_import_character_json_bad_input(client, body):
    assert_bad(client, "POST", "/api/import/characterJson", json=body)


def test_import_real_v1_card_aqua(client):
    data = (CARDS / "Aqua.png").read_bytes()
    assert_text(client.post("/api/import/characterCard", data=data, content_type="image/png"), 200,
                "Data of your ai companion has been changed")
    character = client.get("/api/characterJson").get_json()
    assert character["name"] == "Aqua" and character["description"] and character["first_mes"]
    avatar = client.get("/assets/avatar.png")
    assert avatar.status_code == 200 and Image.open(io.BytesIO(avatar.data)).format == "PNG"
    messages = client.get("/api/messages").get_json()
    assert len(messages) == 1 and "{{user}}" not in messages[0]["text"]


def test_import_card_as_a_multipart_upload(client):
    data = (CARDS / "Aqua.png").read_bytes()
    assert_text(client.post("/api/import/characterCard", data={"file": (io.BytesIO(data), "Aqua.png")}), 200,
                "Data of your ai companion has been changed")
    assert client.get("/api/characterJson").get_json()["name"] == "Aqua"


def test_import_real_v2_card_seraphina(client):
    data = (CARDS / "default_Seraphina.png").read_bytes()
    assert client.post("/api/import/characterCard", data=data, content_type="image/png").status_code == 200
    assert client.get("/api/companionData").get_json()["name"] == "Seraphina"
    reply = client.post("/api/prompt", json={"prompt": "Where am I?"})
    assert reply.status_code == 200 and reply.get_json()["text"].strip()


def test_import_card_json_v2_body(client):
    card = {"spec": "chara_card_v2", "spec_version": "2.0",
            "data": {"name": "Vee", "description": "d", "first_mes": "Hi", "mes_example": "",
                     "personality": "calm", "scenario": "a lab"}}
    assert client.post("/api/import/characterCard", data=json.dumps(card),
                       content_type="application/json").status_code == 200
    assert client.get("/api/characterJson").get_json()["name"] == "Vee"


@pytest.mark.parametrize("data", [
    b"", b"garbage", png_bytes(), png_bytes(text={"chara": "%%%not-base64%%%"}),
    png_bytes(text={"chara": base64.b64encode(b"[1, 2]").decode()}),
    png_bytes(text={"chara": base64.b64encode(b'{"description": "no name"}').decode()}),
])
def test_import_card_bad_input(client, data):
    assert_bad(client, "POST", "/api/import/characterCard", data=data, content_type="image/png")


# --- messages JSON -----------------------------------------------------------------------------

def test_import_and_export_messages(client):
    items = [{"ai": False, "text": "I was born in Lisbon."}, {"ai": True, "text": "Lisbon is lovely!"},
             {"ai": False, "text": "And I have two cats."}]
    assert_text(client.post("/api/import/messagesJson", json={"messages": items}), 200,
                "Imported messages to your ai companion memory")
    exported = client.get("/api/messagesJson").get_json()["messages"]
    assert exported[-3:] == items and exported[0]["ai"] is True
    counts = client.get("/api/status").get_json()["counts"]
    assert counts["memories"] == 2 and counts["indexed_memories"] == 2
    # what was exported imports again
    assert client.post("/api/import/messagesJson", json={"messages": exported}).status_code == 200


@pytest.mark.parametrize("body", [
    {}, {"messages": "x"}, {"messages": [{"ai": True}]}, {"messages": [{"text": "t"}]},
    {"messages": [{"ai": "yes", "text": "t"}]}, {"messages": [{"ai": True, "text": ""}]},
    {"messages": [{"ai": True, "text": "ok"}, 5]},
])
def test_import_messages_bad_input(client, body):
    assert_bad(client, "POST", "/api/import/messagesJson", json=body)


# --- long-term memory ----------------------------------------------------------------------------

def test_add_data_and_recall(client, services):
    assert_text(client.post("/api/addData", json={"text": "{{user}}'s favourite colour is teal."}), 200,
                "Added custom data to AI long term memory")
    client.post("/api/change/shortTermMemory", json={"limit": 2})
    companion_id = client.get("/api/companionData").get_json()["id"]
    recalled = services.memory.recall(companion_id, "What is my favourite colour?", 2, 0.2)
    assert recalled and "teal" in recalled[0].text
    reply = client.post("/api/prompt", json={"prompt": "What is my favourite colour?"}).get_json()
    assert reply["memories"][0]["text"] == "User's favourite colour is teal."
    assert 0 < reply["memories"][0]["score"] <= 1


@pytest.mark.parametrize("body", [{}, {"text": ""}, {"text": 12}])
def test_add_data_bad_input(client, body):
    assert_bad(client, "POST", "/api/addData", json=body)


def test_erase_long_term_memory(client):
    client.post("/api/addData", json={"text": "a fact"})
    client.post("/api/prompt", json={"prompt": "hello"})
    assert_text(client.get("/api/erase/longTermMemory"), 200, "Erased AI's long term memory")
    counts = client.get("/api/status").get_json()["counts"]
    assert counts["memories"] == 0 and counts["indexed_memories"] == 0


# --- dialogue tuning -----------------------------------------------------------------------------

def test_dialogue_tuning(client, services):
    assert_bad(client, "POST", "/api/saveTunedDialogue")
    client.post("/api/prompt", json={"prompt": "How do you greet a friend?"})
    assert_text(client.post("/api/saveTunedDialogue"), 200, "Saved messages as tuned dialogue")
    assert services.store.count("tuning_examples") == 1
    client.post("/api/change/dialogue_tuning", json={"enable": True})
    assert client.post("/api/prompt", json={"prompt": "Hi again"}).status_code == 200
    assert_text(client.get("/api/clearTuningMessages"), 200, "Tuning dialogue messages erased")
    assert services.store.count("tuning_examples") == 0


# --- the rest of the surface ---------------------------------------------------------------------

def test_status(client):
    status = client.get("/api/status").get_json()
    assert status["version"] and status["data_dir"]
    assert status["model"]["state"] == "ready" and status["model"]["n_ctx"] > 0
    assert status["model"]["path"].endswith(".gguf")
    assert status["embedder"]["state"] == "ready"
    assert {"messages", "memories"} <= set(status["counts"])


def test_unknown_route_and_method(client):
    missing = client.get("/api/nothing-here")
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "not_found"
    assert client.get("/api/prompt").status_code == 405


def test_body_too_large(app, client):
    app.config["MAX_CONTENT_LENGTH"] = 1024
    response = client.post("/api/change/companionAvatar", data=b"x" * 4096, content_type="image/png")
    assert response.status_code == 413
