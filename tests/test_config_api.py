"""Models, run-time configuration and per-companion generation settings."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from companion.services import build_services


def wait_for_swap(client, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        config = client.get("/api/config").get_json()
        if config["pending_model"] is None:
            return config
        time.sleep(0.1)
    raise AssertionError("the new model did not take over")


def test_models_lists_the_bundled_model(client):
    body = client.get("/api/models").get_json()
    assert body["total"] == len(body["items"]) >= 1
    bundled = body["items"][0]
    assert bundled["name"] == "SmolLM2-135M-Instruct.Q4_1.gguf" and bundled["active"] is True
    assert bundled["size"] > 1_000_000 and "<|im_start|>" in bundled["chat_template"]
    assert bundled["context_length"] == 8192


def test_config_shape(client):
    config = client.get("/api/config").get_json()
    assert config["model"]["state"] == "ready" and config["model"]["path"].endswith(".gguf")
    for key in ("n_ctx", "n_threads", "n_batch", "n_gpu_layers", "flash_attn", "use_mmap", "chat_template"):
        assert key in config["model"]
    assert config["generation"]["max_tokens"] > 0 and config["pending_model"] is None


@pytest.mark.parametrize("body", [
    {"model": {"path": "/nowhere/model.gguf"}}, {"model": {"n_ctx": "big"}}, {"model": {"n_ctx": 10}},
    {"model": {"flash_attn": "yes"}}, {"model": {"color": "red"}}, {"model": {"chat_template": "klingon"}},
    {"generation": {"temperature": "hot"}}, {"generation": {"warmth": 1}}, {"other": 1}, {"model": []},
])
def test_bad_config_changes(client, body):
    before = client.get("/api/config").get_json()
    response = client.put("/api/config", json=body)
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "bad_request"
    assert client.get("/api/config").get_json() == before


def test_not_a_gguf_file_is_refused(client, tmp_path):
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"not really a model")
    response = client.put("/api/config", json={"model": {"path": str(fake)}})
    assert response.status_code == 400 and "GGUF" in response.get_json()["error"]["message"]


def test_generation_defaults_change_and_are_kept(client, settings, generator, embedder):
    response = client.put("/api/config", json={"generation": {"temperature": 0.3, "max_tokens": 20}})
    assert response.status_code == 200 and response.get_json()["generation"]["temperature"] == 0.3
    again = build_services(settings, generator=generator, embedder=embedder)
    assert again.settings.generation.temperature == 0.3 and again.settings.generation.max_tokens == 20
    again.close()


def test_model_reloads_in_the_background_then_takes_over(client, services):
    old = services.generator
    response = client.put("/api/config", json={"model": {"n_ctx": 1024, "chat_template": "chatml"}})
    assert response.status_code == 202 and response.get_json()["pending_model"]["state"] in ("loading", "ready")
    config = wait_for_swap(client)
    assert config["model"]["n_ctx"] == 1024 and config["model"]["template"] == "chatml"
    assert services.generator is not old and services.generator.n_ctx == 1024
    assert client.post("/api/prompt", json={"prompt": "Hello after the swap"}).status_code == 200
    assert client.get("/api/status").get_json()["model"]["n_ctx"] == 1024


def test_companion_generation_settings(client):
    companion_id = client.get("/api/companionData").get_json()["id"]
    url = f"/api/companions/{companion_id}/generation"
    body = client.get(url).get_json()
    assert body["companion"] == {} and body["effective"] == body["defaults"]
    body = client.patch(url, json={"max_tokens": 1, "temperature": 0.0}).get_json()
    assert body["companion"] == {"max_tokens": 1, "temperature": 0.0} and body["effective"]["max_tokens"] == 1
    reply = client.post("/api/prompt", json={"prompt": "Tell me everything."}).get_json()
    assert len(reply["text"].split()) <= 2
    body = client.patch(url, json={"max_tokens": None}).get_json()
    assert body["companion"] == {"temperature": 0.0}
    assert client.patch(url, json={"top_p": 7}).status_code == 400
    assert client.patch(url, json={"warmth": 1}).status_code == 400
    assert client.get("/api/companions/9999/generation").status_code == 404


def test_null_restores_a_generation_default(client):
    assert client.put("/api/config", json={"generation": {"temperature": 1.3}}).status_code == 200
    changed = client.put("/api/config", json={"generation": {"temperature": None}})
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["generation"]["temperature"] == 0.7


def test_the_model_serving_is_listed_and_active_wherever_it_lies(tmp_path, services, client):
    elsewhere = tmp_path / "elsewhere" / "my-model.gguf"
    elsewhere.parent.mkdir()
    bundled = Path(services.generator.path)
    try:
        os.link(bundled, elsewhere)           # the same bytes under another path, outside models/
    except OSError:
        shutil.copyfile(bundled, elsewhere)
    real = services.turns.generator

    class Elsewhere:
        path = str(elsewhere)

        def __getattr__(self, name):
            return getattr(real, name)

    services.turns.generator = Elsewhere()
    try:
        items = client.get("/api/models").get_json()["items"]
    finally:
        services.turns.generator = real
    assert items[0]["path"] == str(elsewhere.resolve()) and items[0]["active"] is True
    assert [item["active"] for item in items[1:]] == [False] * (len(items) - 1)     # the bundled one too
