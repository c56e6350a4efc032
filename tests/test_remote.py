"""Beyond one machine, on loopback: generation on another companion's /v1, memory in a Chroma server."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from companion.app import create_app
from companion.memory import LongTermMemory
from companion.remote import RemoteGenerator
from companion.services import build_services
from companion.store import Store

from conftest import test_settings
from test_e2e import Daemon, clean_env, free_port, is_ready


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


def test_memory_index_in_a_chroma_server(tmp_path, embedder):
    port = free_port()
    chroma = subprocess.Popen([str(Path(sys.executable).parent / "chroma"), "run", "--path", str(tmp_path / "srv"),
                               "--host", "127.0.0.1", "--port", str(port)], env=clean_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=2).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.3)
        settings = test_settings(tmp_path / "home", memory={"chroma_url": f"http://127.0.0.1:{port}"})
        memory = LongTermMemory(Store(tmp_path / "home" / "c.db"), embedder, tmp_path / "home" / "chroma",
                                settings.memory)
        companion = memory.store.active_companion_id()
        memory.add(companion, "{{user}} speaks Finnish.", "custom")
        memory.store.add_memory(companion, "{{user}} was born in Turku.", "custom")   # not indexed yet
        assert memory.reconcile() == (1, 0)
        assert "Finnish" in memory.recall(companion, "Which language do I speak?", 1, 0.0)[0].text
        assert not (tmp_path / "home" / "chroma").exists()           # nothing embedded locally
    finally:
        chroma.terminate()
        chroma.wait(timeout=30)
