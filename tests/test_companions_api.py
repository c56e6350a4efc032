"""Several companions and personas over REST; character cards in and out; avatars."""

from __future__ import annotations

import base64
import io
import json

import pytest
from conftest import CARDS
from PIL import Image, PngImagePlugin

from companion.formats.cards import read_card


def companions(client) -> list[dict]:
    return client.get("/api/companions").get_json()["items"]


def card_fields(card: dict) -> dict:
    return {k: v for k, v in card.items() if k != "spec"}


def assert_error(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] and error["message"]
    return error


# companions ----------------------------------------------------------------------------------

def test_create_list_get_patch_activate_delete(client):
    first = companions(client)
    assert len(first) == 1 and first[0]["active"] is True
    response = client.post("/api/companions", json={"name": "Nova", "description": "{{char}} loves stars.",
                                                    "tags": ["space"], "long_term_mem": 3})
    assert response.status_code == 201
    nova = response.get_json()
    assert nova["name"] == "Nova" and nova["tags"] == ["space"] and nova["long_term_mem"] == 3
    assert nova["active"] is False and nova["avatar_url"] == f"/api/companions/{nova['id']}/avatar"
    listing = client.get("/api/companions?limit=1&offset=1").get_json()
    assert listing["total"] == 2 and [c["id"] for c in listing["items"]] == [nova["id"]]
    patched = client.patch(f"/api/companions/{nova['id']}", json={"personality": "calm", "roleplay": False}).get_json()
    assert patched["personality"] == "calm" and patched["roleplay"] is False and patched["description"]
    assert client.post(f"/api/companions/{nova['id']}/activate").get_json()["active"] is True
    assert client.get("/api/companionData").get_json()["name"] == "Nova"
    assert client.delete(f"/api/companions/{nova['id']}").status_code == 204
    assert assert_error(client.get(f"/api/companions/{nova['id']}"), 404)["code"] == "not_found"
    assert client.get("/api/companionData").get_json()["id"] == first[0]["id"]
    assert_error(client.delete(f"/api/companions/{first[0]['id']}"), 409)


@pytest.mark.parametrize("body", [
    {}, {"name": ""}, {"name": 5}, {"name": "A", "tags": "x,y", "alternate_greetings": [1]},
    {"name": "A", "extensions": []}, {"name": "A", "long_term_mem": -1}, {"name": "A", "colour": "red"},
    {"name": "A", "roleplay": "yes"},
])
def test_create_companion_bad_input(client, body):
    before = companions(client)
    assert_error(client.post("/api/companions", json=body), 400)
    assert companions(client) == before


def test_patch_bad_input_changes_nothing(client):
    companion_id = companions(client)[0]["id"]
    before = client.get(f"/api/companions/{companion_id}").get_json()
    for body in ({"name": ""}, {"tags": [3]}, {"short_term_mem": "many"}, {"nope": 1}):
        assert_error(client.patch(f"/api/companions/{companion_id}", json=body), 400)
    assert client.get(f"/api/companions/{companion_id}").get_json() == before
    assert_error(client.patch("/api/companions/999", json={"name": "x"}), 404)
    assert_error(client.get("/api/companions?limit=0"), 400)


def test_each_companion_has_its_own_chat_and_memory(client, services):
    a = companions(client)[0]["id"]
    b = client.post("/api/companions", json={"name": "Bea", "first_mes": "Hi from {{char}}"}).get_json()["id"]
    client.post("/api/addData", json={"text": "{{user}} keeps bees."})
    client.post(f"/api/companions/{b}/activate")
    assert [m["text"] for m in client.get("/api/messages").get_json()] == ["Hi from Bea"]
    assert services.memory.recall(b, "bees", 3, 0.0) == []
    client.get("/api/erase/longTermMemory")
    assert services.memory.recall(a, "bees", 3, 0.0)
    client.post(f"/api/companions/{a}/activate")
    assert client.get("/api/messages").get_json()[0]["text"].startswith("Hello")


# personas ------------------------------------------------------------------------------------

def test_personas(client):
    personas = client.get("/api/personas").get_json()
    assert personas["total"] == 1 and personas["items"][0]["active"] is True
    created = client.post("/api/personas", json={"name": "Ann", "persona": "{{user}} paints."})
    assert created.status_code == 201
    ann = created.get_json()
    assert client.post(f"/api/personas/{ann['id']}/activate").get_json()["active"] is True
    assert client.get("/api/userData").get_json()["name"] == "Ann"
    assert "Ann" in client.get("/api/messages").get_json()[0]["text"]
    assert client.patch(f"/api/personas/{ann['id']}", json={"persona": "p"}).get_json()["persona"] == "p"
    assert_error(client.post("/api/personas", json={"persona": "no name"}), 400)
    assert_error(client.patch(f"/api/personas/{ann['id']}", json={"name": ""}), 400)
    assert client.delete(f"/api/personas/{ann['id']}").status_code == 204
    assert client.get("/api/userData").get_json()["name"] == "User"
    assert_error(client.delete(f"/api/personas/{personas['items'][0]['id']}"), 409)
    assert_error(client.post("/api/personas/999/activate"), 404)


# cards in and out ------------------------------------------------------------------------------

@pytest.mark.parametrize("card_file, name", [
    ("Aqua.png", "Aqua"), ("default_Seraphina.png", "Seraphina"), ("default_FluxTheCat.png", "Flux the Cat"),
    ("Seraphina_v3.png", "Seraphina"),
])
def test_import_export_round_trip(client, card_file, name):
    data = (CARDS / card_file).read_bytes()
    original = read_card(data)
    response = client.post("/api/companions/import", data=data, content_type="image/png")
    assert response.status_code == 201, response.get_data(as_text=True)
    companion = response.get_json()
    assert companion["name"] == name
    card_json = client.get(f"/api/companions/{companion['id']}/card.json")
    assert card_json.get_json()["spec"] == "chara_card_v3"
    assert card_fields(read_card(card_json.data)) == card_fields(original)
    card_png = client.get(f"/api/companions/{companion['id']}/card.png")
    assert card_png.mimetype == "image/png"
    text = Image.open(io.BytesIO(card_png.data)).text
    assert {"ccv3", "chara"} <= set(text)
    assert json.loads(base64.b64decode(text["chara"]))["spec"] == "chara_card_v2"
    assert card_fields(read_card(card_png.data)) == card_fields(original)
    client.post(f"/api/companions/{companion['id']}/activate")          # the card works in a prompt
    reply = client.post("/api/prompt", json={"prompt": "Hello!", "max_tokens": 2})
    assert reply.status_code == 200 and reply.get_json()["text"]
    again = client.post("/api/companions/import", data=card_png.data, content_type="image/png").get_json()
    assert card_fields(read_card(client.get(f"/api/companions/{again['id']}/card.json").data)) == \
        card_fields(original)


def test_import_multipart_and_json_card(client):
    data = (CARDS / "Aqua.png").read_bytes()
    response = client.post("/api/companions/import", data={"file": (io.BytesIO(data), "whatever.txt")},
                           content_type="multipart/form-data")
    assert response.status_code == 201 and response.get_json()["name"] == "Aqua"
    v3 = {"spec": "chara_card_v3", "spec_version": "3.0",
          "data": {"name": "Jay", "description": "d", "nickname": "J", "extensions": {"x": {"y": [1]}},
                   "group_only_greetings": ["hey all"], "mystery": 42}}
    jay = client.post("/api/companions/import", data=json.dumps(v3), content_type="application/json").get_json()
    exported = client.get(f"/api/companions/{jay['id']}/card.json").get_json()["data"]
    assert exported["nickname"] == "J" and exported["extensions"] == {"x": {"y": [1]}}
    assert exported["mystery"] == 42 and exported["group_only_greetings"] == ["hey all"]


def bomb_png() -> bytes:
    out = io.BytesIO()
    Image.new("1", (12000, 12000)).save(out, format="PNG")
    return out.getvalue()


def png_with_text(text: dict) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    out = io.BytesIO()
    Image.new("RGB", (4, 4)).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


@pytest.mark.parametrize("data, status", [
    (b"", 400), (b"plain text", 400), (png_with_text({}), 400),
    (png_with_text({"chara": "@@@"}), 400), (b'{"spec": "chara_card_v2", "data": ', 400),
    (png_with_text({"chara": base64.b64encode(b'{"description": "nameless"}').decode()}), 400),
    (png_with_text({"chara": base64.b64encode(b'{"name": "X", "tags": 5}').decode()}), 400),
    ((CARDS / "Aqua.png").read_bytes()[:5000], 400), (bomb_png(), 400), (b"\0" * (30 * 1024 * 1024), 413),
])
def test_import_bad_cards(client, data, status):
    before = companions(client)
    response = client.post("/api/companions/import", data=data, content_type="application/octet-stream")
    assert_error(response, status)
    assert companions(client) == before


def test_avatar_and_thumbnail(client):
    data = (CARDS / "default_FluxTheCat.png").read_bytes()
    flux = client.post("/api/companions/import", data=data).get_json()
    full = Image.open(io.BytesIO(client.get(flux["avatar_url"]).data))
    thumb = Image.open(io.BytesIO(client.get(flux["avatar_url"] + "?size=thumb").data))
    assert full.size == (512, 768) and max(thumb.size) == 256
    assert not Image.open(io.BytesIO(client.get(flux["avatar_url"]).data)).text   # metadata dropped
    assert_error(client.get(flux["avatar_url"] + "?size=huge"), 400)
    out = io.BytesIO()
    Image.new("RGB", (50, 40), (9, 9, 9)).save(out, format="WEBP")
    assert client.put(flux["avatar_url"], data=out.getvalue()).status_code == 200
    assert Image.open(io.BytesIO(client.get(flux["avatar_url"]).data)).size == (50, 40)
    assert_error(client.put(flux["avatar_url"], data=b"not an image"), 400)
    # as the web page sends it: multipart, field 'file'
    out = io.BytesIO()
    Image.new("RGB", (30, 20), (1, 2, 3)).save(out, format="PNG")
    sent = client.put(flux["avatar_url"], data={"file": (io.BytesIO(out.getvalue()), "a.png")})
    assert sent.status_code == 200, sent.data
    assert Image.open(io.BytesIO(client.get(flux["avatar_url"]).data)).size == (30, 20)
    assert_error(client.put(flux["avatar_url"], data={"other": (io.BytesIO(b"x"), "a.png")}), 400)
