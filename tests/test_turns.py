"""One generation at a time, and honest answers while the model is loading or broken."""

from __future__ import annotations

from pathlib import Path

from companion.app import create_app
from companion.config import ModelSettings
from companion.llm import LlamaGenerator
from companion.services import build_services


def test_busy_model_answers_429_and_stores_nothing(client, services):
    before = client.get("/api/messages").get_json()
    held = services.chat.start_raw("a completion that holds the model")   # stores nothing
    try:
        response = client.post("/api/prompt", json={"prompt": "hello"})
        assert response.status_code == 429 and response.headers["Retry-After"]
        assert response.mimetype == "text/plain" and response.get_data(as_text=True)
        assert client.get("/api/regenerate_message").status_code == 429
    finally:
        held.close()
    assert client.get("/api/messages").get_json() == before


def test_broken_model_leaves_everything_else_working(settings, embedder, tmp_path):
    generator = LlamaGenerator(Path(tmp_path / "missing.gguf"), ModelSettings())
    generator.load()
    services = build_services(settings, generator=generator, embedder=embedder)
    client = create_app(settings, services).test_client()
    status = client.get("/api/status").get_json()
    assert status["model"]["state"] == "failed" and "not found" in status["model"]["error"]
    response = client.post("/api/prompt", json={"prompt": "hello"})
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert "failed to load" in response.get_data(as_text=True)
    assert len(client.get("/api/messages").get_json()) == 1
    assert client.post("/api/change/companionName", json={"companion_name": "Kai"}).status_code == 200
    assert client.post("/api/addData", json={"text": "still remembers"}).status_code == 200
    services.close()


def test_loading_model_answers_503(settings, embedder):
    generator = LlamaGenerator(None, ModelSettings())   # never started: still "loading"
    services = build_services(settings, generator=generator, embedder=embedder)
    client = create_app(settings, services).test_client()
    response = client.post("/api/prompt", json={"prompt": "hello"})
    assert response.status_code == 503 and "loading" in response.get_data(as_text=True)
    assert client.get("/api/status").get_json()["model"]["state"] == "loading"
    services.close()
