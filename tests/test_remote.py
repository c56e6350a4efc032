"""Beyond one machine, on loopback: generation on another companion's /v1, memory in a Chroma server."""

from __future__ import annotations

import json
import time

import pytest
import requests
from conftest import test_settings

from bench.daemon import Daemon, chroma_server, free_port, is_ready
from companion.app import create_app
from companion.memory.recall import LongTermMemory
from companion.model.local import bundled_model
from companion.model.remote import RemoteGenerator
from companion.services import build_services
from companion.store import Store


@pytest.fixture(scope="module")
def gpu_box(tmp_path_factory):
    """Another companion daemon standing in for the desktop GPU."""
    folder = tmp_path_factory.mktemp("gpu")
    config = folder / "config.toml"
    config.write_text("[generation]\ntemperature = 0.0\nmax_tokens = 24\n")
    daemon = Daemon(folder / "data", config, folder / "daemon.log")
    daemon.wait_until(is_ready)
    yield daemon
    daemon.stop()


@pytest.mark.serve
def test_generation_on_a_remote_openai_compatible_server(tmp_path, gpu_box, embedder):
    settings = test_settings(tmp_path / "home", model={"backend": "openai", "base_url": gpu_box.url + "/v1"})
    services = build_services(settings, embedder=embedder)
    assert isinstance(services.generator, RemoteGenerator)
    services.generator.load()
    assert services.generator.state == "ready" and services.generator.name.endswith(".gguf")
    client = create_app(settings, services).test_client()
    client.post("/api/addData", json={"text": "{{user}} grows tomatoes."})
    reply = client.post("/api/prompt", json={"prompt": "What do I grow?", "max_tokens": 12})
    assert reply.status_code == 200 and reply.get_json()["text"].strip()
    assert "tomatoes" in reply.get_json()["memories"][0]["text"]       # memory stayed at home
    stream = client.post("/api/prompt", json={"prompt": "Tell me more.", "stream": True}, buffered=False)
    body = b"".join(stream.response).decode()
    assert "event: token" in body and "event: done" in body
    # the remote box stored nothing of this conversation: the plain model path is stateless
    remote_messages = requests.get(gpu_box.url + "/api/messages", timeout=10).json()
    assert all("tomatoes" not in m["text"] for m in remote_messages)
    assert client.get("/api/status").get_json()["model"]["path"] == gpu_box.url + "/v1"
    services.close()


def test_unreachable_remote_fails_honestly(tmp_path, embedder):
    settings = test_settings(tmp_path / "home", model={"backend": "openai",
                                                       "base_url": f"http://127.0.0.1:{free_port()}/v1"})
    services = build_services(settings, embedder=embedder)
    services.generator.load()
    client = create_app(settings, services).test_client()
    assert client.get("/api/status").get_json()["model"]["state"] == "failed"
    assert client.post("/api/prompt", json={"prompt": "hi"}).status_code == 503
    services.close()


@pytest.mark.serve
def test_memory_index_in_a_chroma_server(tmp_path, embedder):
    with chroma_server(tmp_path / "srv") as port:
        settings = test_settings(tmp_path / "home", memory={"chroma_url": f"http://127.0.0.1:{port}"})
        memory = LongTermMemory(Store(tmp_path / "home" / "c.db"), embedder, tmp_path / "home" / "chroma",
                                settings.memory)
        companion = memory.store.active_companion_id()
        memory.add(companion, "{{user}} speaks Finnish.", "custom")
        memory.store.add_memory(companion, "{{user}} was born in Turku.", "custom")   # not indexed yet
        assert memory.reconcile() == (1, 0)
        assert "Finnish" in memory.recall(companion, "Which language do I speak?", 1, 0.0)[0].text
        assert not (tmp_path / "home" / "chroma").exists()           # nothing embedded locally


class FakeRemote:
    """A loopback HTTP server that lists a model, then answers chat completions badly."""

    def __init__(self, behaviour: str) -> None:
        import http.server
        import threading

        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                body = b'{"object": "list", "data": [{"id": "fake"}]}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                outer.requests.append((self.path, json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))))
                if outer.behaviour == "slow":
                    time.sleep(3)
                self.send_response(500 if outer.behaviour == "error" else 200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                if outer.behaviour == "garbage":
                    self.wfile.write(b"<html>this is not a stream</html>\n")
                else:
                    self.wfile.write(b'data: {"choices": [{"delta": {"content": "late"}}]}\n\ndata: [DONE]\n\n')

        self.behaviour = behaviour
        self.requests: list[tuple[str, dict]] = []     # (path, body) of each POST
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()    # refused from now on, not left unanswered


@pytest.mark.parametrize("behaviour, status", [("garbage", 502), ("error", 502), ("slow", 504)])
def test_a_bad_remote_is_a_clear_gateway_error(tmp_path, embedder, behaviour, status):
    remote = FakeRemote(behaviour)
    try:
        settings = test_settings(tmp_path / "home", model={"backend": "openai", "base_url": remote.url,
                                                           "remote_timeout": 1.0})
        services = build_services(settings, embedder=embedder)
        services.generator.load()
        assert services.generator.state == "ready"
        client = create_app(settings, services).test_client()
        before = client.get("/api/status").get_json()["counts"]
        response = client.post("/api/prompt", json={"prompt": "hello"})
        assert response.status_code == status, response.get_data(as_text=True)
        assert "remote model" in response.get_data(as_text=True)
        after = client.get("/api/status").get_json()["counts"]
        assert after["memories"] == before["memories"]           # no reply, no memory: no half turn
        messages = client.get("/api/messages").get_json()
        assert messages[-1]["ai"] == "false"                    # what the user sent is kept, to regenerate
        services.close()
    finally:
        remote.close()


def test_the_remote_backend_gets_messages_and_takes_model_changes_at_run_time(tmp_path, embedder):
    remote = FakeRemote("ok")
    try:
        settings = test_settings(tmp_path / "home", model={"backend": "openai", "base_url": remote.url})
        services = build_services(settings, embedder=embedder)
        services.generator.load()
        client = create_app(settings, services).test_client()
        reply = client.post("/api/prompt", json={"prompt": "Hello there"})
        assert reply.status_code == 200 and reply.get_json()["text"] == "late"
        path, body = remote.requests[-1]
        assert path == "/v1/chat/completions" and body["messages"][-1]["content"].endswith("Hello there")
        user = services.store.get_user(services.store.active_user_id())["name"]
        assert f"\n{user}:" in body["stop"]          # the transcript's stop travels with the messages

        refused = client.put("/api/config", json={"model": {"path": str(bundled_model())}})
        assert refused.status_code == 400 and "local backend" in refused.get_json()["error"]["message"]
        assert client.put("/api/config", json={"model": {"n_ctx": 4096}}).status_code == 202
        deadline = time.monotonic() + 30
        while client.get("/api/config").get_json()["pending_model"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert isinstance(services.generator, RemoteGenerator) and services.generator.base_url == remote.url
        assert services.models.saved()["model"] == {"n_ctx": 4096}

        remote.close()        # a change that cannot load is reported and not kept
        assert client.put("/api/config", json={"model": {"n_ctx": 3072}}).status_code in (200, 202)  # 200: failed already
        while client.get("/api/config").get_json()["pending_model"] and time.monotonic() < deadline + 30:
            time.sleep(0.05)
        config = client.get("/api/config").get_json()
        assert "failed to load" in config["last_error"] and config["model"]["n_ctx"] == 4096
        assert services.models.saved()["model"] == {"n_ctx": 4096}
        services.close()
    finally:
        remote.close()
