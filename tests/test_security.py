"""Access rules: API key, Host allow-list, cross-site refusal, CORS; serve refuses an open bind."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from conftest import test_settings

from companion.api.security import host_allowed, host_name
from companion.app import create_app
from companion.cli import cli
from companion.config import ServerSettings

KEY = "s3cret-key"


@pytest.fixture
def secure_client(tmp_path, generator, embedder):
    from companion.services import build_services

    settings = test_settings(tmp_path / "data", server={"api_key": KEY, "allowed_hosts": ["companion.lan"],
                                                         "cors_origins": ["http://frontend.lan:8000"]})
    services = build_services(settings, generator=generator, embedder=embedder)
    yield create_app(settings, services).test_client()
    services.close()


def auth(key: str = KEY) -> dict:
    return {"Authorization": f"Bearer {key}"}


def test_api_key_required_everywhere_but_the_page(secure_client):
    for path in ("/api/messages", "/api/status", "/api/companions", "/v1/models", "/props"):
        response = secure_client.get(path)
        assert response.status_code == 401, path
    # llama.cpp's routes generate and tell outside /api/ and /v1/: they need the key too
    for path, body in (("/completion", {"prompt": "Hi", "n_predict": 2}), ("/tokenize", {"content": "Hi"}),
                       ("/detokenize", {"tokens": [1]}), ("/api/chat", {"model": "x", "messages": []})):
        assert secure_client.post(path, json=body).status_code == 401, path
    assert secure_client.post("/completion", json={"prompt": "Hi", "n_predict": 1, "temperature": 0},
                              headers=auth()).status_code == 200
    assert secure_client.get("/health").status_code == 200     # a liveness probe, as llama-server's
    assert secure_client.get("/api/messages", headers=auth("wrong")).status_code == 401
    assert secure_client.get("/api/messages", headers=auth()).status_code == 200
    assert secure_client.get("/api/messages", headers={"X-API-Key": KEY}).status_code == 200
    # the compat API answers in plain text, the others in the JSON error shape
    assert secure_client.get("/api/messages").mimetype == "text/plain"
    assert secure_client.get("/api/status").get_json()["error"]["code"] == "unauthorized"
    assert secure_client.get("/").status_code == 200          # the page itself asks for the key


def test_host_allow_list(secure_client):
    for host in ("localhost:3000", "127.0.0.1:3000", "[::1]:3000", "192.168.1.7:3000", "companion.lan"):
        assert secure_client.get("/api/status", headers={**auth(), "Host": host}).status_code == 200, host
    evil = secure_client.get("/api/status", headers={**auth(), "Host": "evil.example.com"})
    assert evil.status_code == 421 and evil.get_json()["error"]["code"] == "misdirected_request"


@pytest.mark.parametrize("method, path, body", [
    ("POST", "/api/addData", {"text": "x"}), ("GET", "/api/clearMessages", None),
    ("GET", "/api/erase/longTermMemory", None), ("GET", "/api/regenerate_message", None),
    ("POST", "/api/change/companionName", {"companion_name": "Pwned"}),
])
def test_cross_site_requests_that_change_data_are_refused(client, method, path, body):
    before = (client.get("/api/messages").get_json(), client.get("/api/companionData").get_json(),
              client.get("/api/status").get_json()["counts"])
    for headers in ({"Origin": "https://evil.example.com"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Origin": "null"}):
        response = client.open(path, method=method, json=body, headers=headers)
        assert response.status_code == 403, (path, headers)
    after = (client.get("/api/messages").get_json(), client.get("/api/companionData").get_json(),
             client.get("/api/status").get_json()["counts"])
    assert after == before


def test_same_origin_and_plain_clients_work(client):
    assert client.post("/api/change/userName", json={"user_name": "Ann"},
                       headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}).status_code == 200
    assert client.post("/api/change/userName", json={"user_name": "Bo"}).status_code == 200
    # reading cross-site is the browser's business (no CORS headers), not refused here
    response = client.get("/api/messages", headers={"Origin": "https://evil.example.com"})
    assert response.status_code == 200 and "Access-Control-Allow-Origin" not in response.headers


def test_cors_only_for_listed_origins(secure_client):
    origin = {"Origin": "http://frontend.lan:8000"}
    preflight = secure_client.options("/api/prompt", headers={**origin, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "http://frontend.lan:8000"
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    assert "X-Companion-Memory" in preflight.headers["Access-Control-Allow-Headers"]     # a browser frontend may opt in
    assert "X-Companion-Memories" in preflight.headers["Access-Control-Expose-Headers"]  # and read what was recalled
    allowed = secure_client.post("/api/change/userName", json={"user_name": "Cy"}, headers={**origin, **auth()})
    assert allowed.status_code == 200 and allowed.headers["Access-Control-Allow-Origin"] == origin["Origin"]
    other = secure_client.options("/api/prompt", headers={"Origin": "http://other.lan"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_serve_refuses_an_open_bind_without_a_key(tmp_path):
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path)])
    assert result.exit_code != 0 and "without an API key" in result.output


@pytest.mark.parametrize("header, name", [("localhost:3000", "localhost"), ("[::1]:80", "::1"),
                                          ("Example.COM", "example.com"), ("10.0.0.2", "10.0.0.2")])
def test_host_name(header, name):
    assert host_name(header) == name


def test_bind_host_is_allowed():
    assert host_allowed("mypi.local:3000", ServerSettings(host="mypi.local"))
    assert not host_allowed("mypi.local:3000", ServerSettings(host="0.0.0.0"))


def test_errors_carry_a_request_id_that_the_log_repeats(client, caplog):
    response = client.get("/api/nothing")
    request_id = response.headers["X-Request-ID"]
    assert response.get_json()["error"]["request_id"] == request_id and len(request_id) == 12
    plain = client.post("/api/addData", json={})
    assert plain.get_data(as_text=True).endswith(f"[request {plain.headers['X-Request-ID']}]")
    assert any(plain.headers["X-Request-ID"] in r.getMessage() for r in caplog.records)


def test_prompts_are_not_logged(client, caplog):
    import logging

    caplog.set_level(logging.INFO)
    client.post("/api/prompt", json={"prompt": "my secret diary entry", "max_tokens": 2})
    assert not any("secret diary" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 5000 + b"1" + b"}" * 5000,
                                  b'{"prompt": "x", "stop": ' + b"[" * 40 + b"]" * 40 + b"}"])
def test_deep_json_is_a_400(client, body):
    for path in ("/api/prompt", "/api/companions"):
        response = client.post(path, data=body, content_type="application/json")
        assert response.status_code == 400, (path, response.status_code)
