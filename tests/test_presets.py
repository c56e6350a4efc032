"""Generation presets: CRUD, built-in ones, a companion using one, SillyTavern's preset JSON in and out."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from test_companions_api import assert_error
from test_turns import recorded_requests

from companion.characters.presets import PresetFileError, preset_settings, read_sillytavern, to_sillytavern
from companion.store import Store

ST_PRESET = Path(__file__).parent / "data" / "sillytavern-textgen-preset.json"


def presets(client) -> list[dict]:
    return client.get("/api/presets").get_json()["items"]


def builtin(client, name: str) -> dict:
    return next(p for p in presets(client) if p["name"] == name)


# SillyTavern's format, read and written (no model needed) ---------------------------------------

def test_a_sillytavern_preset_maps_its_samplers_and_keeps_the_rest():
    preset = read_sillytavern(ST_PRESET.read_bytes())
    assert preset.settings == {"temperature": 0.35, "top_p": 0.9, "top_k": 25, "min_p": 0.08, "repeat_penalty": 1.15,
                               "max_tokens": 48, "seed": 4242, "stop": ["\n###", "<|im_end|>"]}
    assert preset.kept["max_length"] == 4096          # ST's context size, not the response length
    assert preset.kept["sampler_order"] == [6, 0, 1, 3, 4, 2, 5] and "temp" not in preset.kept
    assert len(preset.kept) == 63 - 8
    out = to_sillytavern({"id": 1, "name": "x", "builtin": False, "created_at": "", "updated_at": "",
                          "settings": preset.settings, "extra": preset.kept})
    assert out == {**json.loads(ST_PRESET.read_text()),
                   "custom_stopping_strings": json.dumps(["\n###", "<|im_end|>"])}   # the same file back


@pytest.mark.parametrize("data, message", [
    (b"not json", "not JSON"), (b"[1, 2]", "JSON object"), (b"\xff\xfe", "not JSON"),
    (b'{"custom_stopping_strings": "[broken"}', "custom_stopping_strings"),
    (b'{"stopping_strings": 5}', "stopping_strings"),
])
def test_a_broken_sillytavern_preset_is_refused(data, message):
    with pytest.raises(PresetFileError, match=message):
        read_sillytavern(data)


def test_stop_strings_come_as_a_list_or_a_json_string_of_one():
    both = read_sillytavern(b'{"stopping_strings": ["A:"], "custom_stopping_strings": "[\\"B:\\", \\"A:\\"]"}')
    assert both.settings == {"stop": ["A:", "B:"]} and both.kept == {}
    assert read_sillytavern(b'{"custom_stopping_strings": ""}').settings == {}


def test_builtin_presets_are_seeded_and_looked_up_by_id(tmp_path):
    store = Store(tmp_path / "c.db")
    rows, total = store.list_presets(10, 0)
    assert total == 3 and [r["name"] for r in rows] == ["precise", "balanced", "creative"]
    assert all(r["builtin"] for r in rows)
    assert preset_settings(store, rows[2]["id"])["temperature"] > preset_settings(store, rows[0]["id"])["temperature"]
    assert preset_settings(store, None) == {} and preset_settings(store, 999) == {}
    store.close()


# the REST API ------------------------------------------------------------------------------------

def test_create_list_get_patch_delete(client):
    assert [p["name"] for p in presets(client)] == ["precise", "balanced", "creative"]
    response = client.post("/api/presets", json={"name": "Slow and sure", "settings": {"temperature": 0.2, "stop": "##"}})
    assert response.status_code == 201
    made = response.get_json()
    assert made["settings"] == {"temperature": 0.2, "stop": ["##"]} and made["builtin"] is False
    assert client.get("/api/presets").get_json()["total"] == 4
    patched = client.patch(f"/api/presets/{made['id']}", json={"name": "Sure", "settings": {"top_k": 5, "stop": None}})
    assert patched.get_json()["name"] == "Sure" and patched.get_json()["settings"] == {"temperature": 0.2, "top_k": 5}
    assert client.get(f"/api/presets/{made['id']}").get_json()["settings"]["top_k"] == 5
    assert client.delete(f"/api/presets/{made['id']}").status_code == 204
    assert_error(client.get(f"/api/presets/{made['id']}"), 404)


@pytest.mark.parametrize("body", [
    {"name": "Hot", "settings": {"temperature": "hot"}}, {"name": "Hot", "settings": {"temperature": 9}},
    {"name": "Hot", "settings": {"warmth": 1}}, {"name": "Hot", "settings": {"top_k": None}},
    {"name": "", "settings": {}}, {"settings": {}}, {"name": "Hot", "settings": []}, {"name": "Hot", "colour": 1},
    {"name": "Hot", "copy_of": "x"},
])
def test_bad_presets_are_refused_and_nothing_changes(client, body):
    before = presets(client)
    error = assert_error(client.post("/api/presets", json=body), 400)
    if body.get("settings", {}) == {"temperature": "hot"}:
        assert "temperature" in error["message"]
    assert presets(client) == before


def test_builtin_presets_are_used_and_copied_but_never_changed(client):
    precise = builtin(client, "precise")
    assert_error(client.patch(f"/api/presets/{precise['id']}", json={"settings": {"temperature": 1.5}}), 409)
    assert_error(client.delete(f"/api/presets/{precise['id']}"), 409)
    assert builtin(client, "precise") == precise
    copy = client.post("/api/presets", json={"name": "My precise", "copy_of": precise["id"],
                                             "settings": {"top_k": 10}}).get_json()
    assert copy["settings"] == {**precise["settings"], "top_k": 10} and copy["builtin"] is False
    assert_error(client.post("/api/presets", json={"name": "x", "copy_of": 999}), 404)


def test_a_companion_uses_a_preset_and_its_own_settings_win(client):
    creative = builtin(client, "creative")
    companion_id = client.get("/api/companions").get_json()["items"][0]["id"]
    changed = client.patch(f"/api/companions/{companion_id}", json={"preset_id": creative["id"]}).get_json()
    assert changed["preset_id"] == creative["id"]
    client.patch(f"/api/companions/{companion_id}/generation", json={"top_k": 3})
    generation = client.get(f"/api/companions/{companion_id}/generation").get_json()
    assert generation["preset_id"] == creative["id"] and generation["preset"] == creative["settings"]
    assert generation["effective"]["temperature"] == creative["settings"]["temperature"]
    assert generation["effective"]["top_k"] == 3                                     # its own over the preset's
    assert builtin(client, "creative")["companion_ids"] == [companion_id]
    assert_error(client.patch(f"/api/companions/{companion_id}", json={"preset_id": 999}), 404)
    assert_error(client.patch(f"/api/companions/{companion_id}", json={"preset_id": "creative"}), 400)
    assert client.get(f"/api/companions/{companion_id}").get_json()["preset_id"] == creative["id"]
    assert client.patch(f"/api/companions/{companion_id}", json={"preset_id": None}).get_json()["preset_id"] is None


def test_deleting_a_preset_in_use_leaves_its_companions_without_one(client):
    mine = client.post("/api/presets", json={"name": "Mine", "settings": {"temperature": 0.4}}).get_json()
    nova = client.post("/api/companions", json={"name": "Nova", "preset_id": mine["id"]}).get_json()
    assert nova["preset_id"] == mine["id"]
    assert client.delete(f"/api/presets/{mine['id']}").status_code == 204
    assert client.get(f"/api/companions/{nova['id']}").get_json()["preset_id"] is None


def test_importing_a_sillytavern_preset_changes_what_the_model_is_called_with(client, services):
    response = client.post("/api/presets/import", data={"file": (io.BytesIO(ST_PRESET.read_bytes()), "Careful.json")},
                           content_type="multipart/form-data")
    assert response.status_code == 201, response.get_data(as_text=True)
    imported = response.get_json()
    assert imported["name"] == "Careful" and "max_length" in imported["ignored"] and "temp" not in imported["ignored"]
    assert imported["settings"]["max_tokens"] == 48 and imported["settings"]["repeat_penalty"] == 1.15
    companion_id = services.companions.active_companion_id()
    client.patch(f"/api/companions/{companion_id}", json={"preset_id": imported["id"]})
    with recorded_requests(services.turns) as requests:
        assert client.post("/api/prompt", json={"prompt": "Hello there"}).status_code == 200
        assert client.post("/api/prompt", json={"prompt": "And again", "temperature": 0.0}).status_code == 200
    params = requests[0].params
    assert (params.temperature, params.top_p, params.top_k, params.min_p, params.repeat_penalty, params.max_tokens,
            params.seed) == (0.35, 0.9, 25, 0.08, 1.15, 48, 4242)
    assert {"\n###", "<|im_end|>"} <= set(params.stop)
    assert requests[1].params.temperature == 0.0 and requests[1].params.top_k == 25     # the request's own win
    exported = client.get(f"/api/presets/{imported['id']}/export")
    assert "attachment" in exported.headers["Content-Disposition"]
    assert exported.get_json()["max_length"] == 4096 and exported.get_json()["temp"] == 0.35


def test_a_raw_preset_import_takes_its_name_from_the_query(client):
    raw = client.post("/api/presets/import?name=Raw%20one", data=b'{"temp": 0.5, "genamt": 100, "tfs": 1}')
    assert raw.status_code == 201 and raw.get_json()["name"] == "Raw one" and raw.get_json()["ignored"] == ["tfs"]
    before = presets(client)
    assert "temperature" in assert_error(client.post("/api/presets/import", data=b'{"temp": "hot"}'), 400)["message"]
    assert_error(client.post("/api/presets/import", data=b'{"genamt": 0}'), 400)
    assert_error(client.post("/api/presets/import", data=b"[]"), 400)
    assert presets(client) == before
