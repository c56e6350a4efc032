"""Pulling models by name (#17): references, the hub's layout served on loopback, progress, resume,
checksums, `companion pull`, and Ollama's /api/pull and /api/delete. Nothing leaves this machine."""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner
from conftest import test_settings

from companion.app import create_app
from companion.cli import cli
from companion.config import load_settings
from companion.errors import BadGateway, BadRequest, Conflict, NotFound
from companion.memory.embedder import Embedder
from companion.model import pull as pulling
from companion.model.local import bundled_model
from companion.model.pull import Reference, choose_file, delete_model, parse_reference, pull
from companion.services import build_services

REPO = "tester/Tiny-GGUF"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def fake_gguf(size: int, seed: int) -> bytes:
    """GGUF magic and bytes of no meaning: enough for everything but loading."""
    block = hashlib.sha256(str(seed).encode()).digest()
    return (b"GGUF" + block * (size // len(block) + 1))[:size]


class Hub:
    """A loopback server in the Hugging Face hub's layout: the repo listing (/api/models/REPO[/revision/REV],
    siblings with lfs sha256 and size when ?blobs=true), /REPO/resolve/REV/FILE answering 302 to the bytes
    with X-Repo-Commit, X-Linked-Etag and X-Linked-Size as the hub does for LFS files, and the bytes with
    Range support. It records every request, and can cut a download short or list a wrong sha256."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = dict(files)
        self.requests: list[tuple[str, str, dict]] = []
        self.cut_after: dict[str, int] = {}      # file -> bytes sent by its first GET before the connection drops
        self.wrong_sha: set[str] = set()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_HEAD(self) -> None:
                hub.answer(self, body=False)

            def do_GET(self) -> None:
                hub.answer(self, body=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def sha(self, name: str) -> str:
        real = hashlib.sha256(self.files[name]).hexdigest()
        return "0" * 64 if name in self.wrong_sha else real

    def listing(self, blobs: bool) -> dict:
        siblings = []
        for name, data in self.files.items():
            entry: dict = {"rfilename": name}
            if blobs:
                entry.update(size=len(data), blobId="b" * 40)
                if name.endswith(".gguf"):
                    entry["lfs"] = {"sha256": self.sha(name), "size": len(data), "pointerSize": 134}
            siblings.append(entry)
        return {"id": REPO, "modelId": REPO, "sha": COMMIT, "private": False, "gated": False, "siblings": siblings}

    def answer(self, handler: BaseHTTPRequestHandler, body: bool) -> None:
        url = urlsplit(handler.path)
        self.requests.append((handler.command, url.path, dict(handler.headers)))
        listing = re.fullmatch(rf"/api/models/{REPO}(?:/revision/[^/]+)?", url.path)
        resolve = re.fullmatch(rf"/{REPO}/resolve/([^/]+)/(.+)", url.path)
        if listing:
            self.send(handler, 200, json.dumps(self.listing("blobs" in parse_qs(url.query))).encode(),
                      {"Content-Type": "application/json"}, body)
        elif url.path.startswith("/api/models/"):
            self.send(handler, 401, b'{"error":"Repository not found"}', {"Content-Type": "application/json"}, body)
        elif resolve and resolve.group(2) in self.files:
            name = resolve.group(2)
            self.send(handler, 302, b"", {"Location": f"/cdn/{name}", "X-Repo-Commit": COMMIT,
                                          "X-Linked-Etag": f'"{self.sha(name)}"',
                                          "X-Linked-Size": str(len(self.files[name])), "ETag": '"git-oid"'}, body)
        elif url.path.startswith(("/cdn/", "/files/")) and url.path.split("/", 2)[2] in self.files:
            self.send_file(handler, url.path.split("/", 2)[2], body)
        else:
            self.send(handler, 404, b"not found", {}, body)

    def send(self, handler, status: int, data: bytes, headers: dict, body: bool) -> None:
        handler.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(data))}.items():
            handler.send_header(key, value)
        handler.end_headers()
        if body:
            handler.wfile.write(data)

    def send_file(self, handler, name: str, body: bool) -> None:
        data = self.files[name]
        start = 0
        wanted = re.fullmatch(r"bytes=(\d+)-", handler.headers.get("Range", ""))
        if wanted:
            start = int(wanted.group(1))
            if start >= len(data):
                self.send(handler, 416, b"", {"Content-Range": f"bytes */{len(data)}"}, body)
                return
        part = data[start:]
        handler.send_response(206 if wanted else 200)
        handler.send_header("Content-Length", str(len(part)))
        handler.send_header("Accept-Ranges", "bytes")
        if wanted:
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        handler.end_headers()
        if not body:
            return
        cut = self.cut_after.pop(name, None)
        if cut is not None:      # promise everything, send a part, drop the connection
            handler.wfile.write(part[:cut])
            handler.wfile.flush()
            handler.close_connection = True
            return
        handler.wfile.write(part)

    def ranges(self) -> list[str]:
        return [headers["Range"] for method, path, headers in self.requests
                if method == "GET" and "Range" in headers and path.startswith(("/cdn/", "/files/"))]

    def body_gets(self) -> int:
        return sum(1 for method, path, _ in self.requests if method == "GET" and path.startswith(("/cdn/", "/files/")))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


FILES = {"Tiny-Q4_K_M.gguf": fake_gguf(3_000_000, 1), "Tiny-Q8_0.gguf": fake_gguf(5_000_000, 2),
         "Tiny-IQ4_XS.gguf": fake_gguf(2_500_000, 3), "mmproj-Tiny-f16.gguf": fake_gguf(10_000, 4),
         "README.md": b"# Tiny\n"}


@pytest.fixture
def hub():
    server = Hub(FILES)
    yield server
    server.close()


@pytest.fixture
def models_dir(tmp_path) -> Path:
    return tmp_path / "data" / "models"


def sha_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# references ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, file, expected", [
    ("hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M", None,
     Reference(repo="bartowski/Llama-3.2-1B-Instruct-GGUF", quant="Q4_K_M")),
    ("huggingface.co/bartowski/Llama-3.2-1B-Instruct-GGUF", None, Reference(repo="bartowski/Llama-3.2-1B-Instruct-GGUF")),
    ("https://huggingface.co/Qwen/Qwen2.5-1.5B-Instruct-GGUF:latest", None, Reference(repo="Qwen/Qwen2.5-1.5B-Instruct-GGUF")),
    ("hf.co/a/b:iq4_xs", None, Reference(repo="a/b", quant="iq4_xs")),
    ("a/b", "model-Q8_0.gguf", Reference(repo="a/b", file="model-Q8_0.gguf")),
    ("a/b/sub/model-Q8_0.gguf", None, Reference(repo="a/b", file="sub/model-Q8_0.gguf")),
    ("https://example.com/m/tiny.gguf?download=1", None, Reference(url="https://example.com/m/tiny.gguf?download=1")),
    ("https://huggingface.co/a/b/resolve/v1.0/m.Q4_0.gguf", None, Reference(repo="a/b", revision="v1.0", file="m.Q4_0.gguf")),
])
def test_references(text, file, expected):
    assert parse_reference(text, file) == expected


@pytest.mark.parametrize("text, file", [
    ("", None), ("llama3.2:1b", None), ("hf.co/onlyowner", None), ("a/b:Q4 K", None), ("a/b", "notes.txt"),
    ("a/b/../../etc/x.gguf", None), ("a/b/m.gguf", "n.gguf"), ("a/b:Q4_K_M", "m.gguf"),
    ("https://example.com/page.html", None),
])
def test_bad_references(text, file):
    with pytest.raises(BadRequest):
        parse_reference(text, file)


def test_choosing_a_file():
    files = [{"rfilename": name, "size": len(data)} for name, data in FILES.items() if name.endswith(".gguf")
             and "mmproj" not in name]
    assert choose_file(files, Reference(repo=REPO))["rfilename"] == "Tiny-Q4_K_M.gguf"      # Q4_K_M by default
    assert choose_file(files, Reference(repo=REPO, quant="q8_0"))["rfilename"] == "Tiny-Q8_0.gguf"
    assert choose_file(files, Reference(repo=REPO, quant="IQ4_XS"))["rfilename"] == "Tiny-IQ4_XS.gguf"
    others = [f for f in files if "Q4_K_M" not in f["rfilename"]]
    assert choose_file(others, Reference(repo=REPO))["rfilename"] == "Tiny-IQ4_XS.gguf"     # else the smallest
    with pytest.raises(NotFound, match="no Q2_K file.*Tiny-Q8_0.gguf"):
        choose_file(files, Reference(repo=REPO, quant="Q2_K"))
    split = [{"rfilename": f"Big-Q4_K_M-0000{i}-of-00002.gguf", "size": 9} for i in (1, 2)]
    with pytest.raises(BadRequest, match="split"):
        choose_file(split, Reference(repo=REPO))


def test_hf_endpoint_comes_from_the_settings_and_hf_endpoint_at_start():
    assert load_settings(env={}).model.hf_endpoint == "https://huggingface.co"
    assert load_settings(env={"HF_ENDPOINT": "http://mirror.lan"}).model.hf_endpoint == "http://mirror.lan"
    both = {"HF_ENDPOINT": "http://mirror.lan", "COMPANION_MODEL_HF_ENDPOINT": "http://other.lan"}
    assert load_settings(env=both).model.hf_endpoint == "http://other.lan"


# downloading --------------------------------------------------------------------------------------

def test_pull_reports_progress_in_order_and_checks_the_file(hub, models_dir, monkeypatch):
    import huggingface_hub.constants

    assert huggingface_hub.constants.HF_HUB_OFFLINE      # the hub library's offline mode does not stop us
    monkeypatch.setattr(pulling, "PROGRESS_EVERY", 0)
    monkeypatch.setattr(pulling, "CHUNK", 256 * 1024)
    steps: list[dict] = []
    path = pull(f"hf.co/{REPO}:q8_0", models_dir, endpoint=hub.url, progress=steps.append)
    assert path == models_dir / "Tiny-Q8_0.gguf" and sha_of(path) == hub.sha("Tiny-Q8_0.gguf")
    assert not list(models_dir.glob("*.partial"))
    sha = hub.sha("Tiny-Q8_0.gguf")
    assert steps[0] == {"status": "pulling manifest"}
    pulling_steps = steps[1:-2]
    assert len(pulling_steps) > 3
    assert all(s["status"] == f"pulling {sha[:12]}" and s["digest"] == f"sha256:{sha}" and s["total"] == 5_000_000
               for s in pulling_steps)
    completed = [s["completed"] for s in pulling_steps]
    assert completed == sorted(completed) and completed[-1] == 5_000_000
    assert steps[-2:] == [{"status": "verifying sha256 digest"}, {"status": "success"}]
    # the listing with blobs, then the resolve URL pinned to the listed commit, redirected to the bytes
    paths = [(m, p) for m, p, _ in hub.requests]
    assert paths[0] == ("GET", f"/api/models/{REPO}/revision/main")
    assert ("GET", f"/{REPO}/resolve/{COMMIT}/Tiny-Q8_0.gguf") in paths and ("GET", "/cdn/Tiny-Q8_0.gguf") in paths


def test_an_interrupted_download_resumes_with_a_range_request(hub, models_dir):
    hub.cut_after["Tiny-Q4_K_M.gguf"] = 1_000_000
    path = pull(f"hf.co/{REPO}", models_dir, endpoint=hub.url)
    assert sha_of(path) == hashlib.sha256(FILES["Tiny-Q4_K_M.gguf"]).hexdigest()
    assert len(hub.ranges()) == 1 and int(hub.ranges()[0][len("bytes="):-1]) > 0


def test_a_partial_file_is_continued(hub, models_dir):
    models_dir.mkdir(parents=True)
    (models_dir / "Tiny-Q4_K_M.gguf.partial").write_bytes(FILES["Tiny-Q4_K_M.gguf"][:12345])
    path = pull(f"{REPO}", models_dir, file="Tiny-Q4_K_M.gguf", endpoint=hub.url)
    assert hub.ranges() == ["bytes=12345-"] and path.read_bytes() == FILES["Tiny-Q4_K_M.gguf"]


def test_a_wrong_checksum_is_refused_and_leaves_no_file(hub, models_dir):
    hub.wrong_sha.add("Tiny-Q8_0.gguf")
    with pytest.raises(BadGateway, match="sha256.*deleted"):
        pull(f"hf.co/{REPO}:Q8_0", models_dir, endpoint=hub.url)
    assert list(models_dir.iterdir()) == []
    # a .partial of other bytes is found out the same way (and deleted)
    (models_dir / "Tiny-IQ4_XS.gguf.partial").write_bytes(b"GGUF" + b"x" * 1000)
    with pytest.raises(BadGateway, match="sha256"):
        pull(f"hf.co/{REPO}:IQ4_XS", models_dir, endpoint=hub.url)
    assert list(models_dir.iterdir()) == []


def test_unknown_repo_and_unknown_quant(hub, models_dir):
    with pytest.raises(NotFound, match="no model repo tester/Nothing"):
        pull("hf.co/tester/Nothing:Q4_K_M", models_dir, endpoint=hub.url)
    with pytest.raises(NotFound) as caught:
        pull(f"hf.co/{REPO}:Q3_K_S", models_dir, endpoint=hub.url)
    assert "Tiny-Q4_K_M.gguf" in caught.value.message and "README" not in caught.value.message
    with pytest.raises(BadGateway, match="cannot reach"):
        pull(f"hf.co/{REPO}", models_dir, endpoint="http://127.0.0.1:9")


def test_a_plain_url_and_a_second_pull_of_the_same_file(hub, models_dir):
    path = pull(f"{hub.url}/files/Tiny-IQ4_XS.gguf", models_dir)
    assert path.read_bytes() == FILES["Tiny-IQ4_XS.gguf"]
    gets = hub.body_gets()
    steps: list[dict] = []
    assert pull(f"hf.co/{REPO}:IQ4_XS", models_dir, endpoint=hub.url, progress=steps.append) == path
    assert hub.body_gets() == gets and steps[-1] == {"status": "success"}    # checked, not fetched again
    hub.files["Tiny-IQ4_XS.gguf"] = fake_gguf(2_500_000, 99)                # the hub's file changed
    with pytest.raises(Conflict, match="another file"):
        pull(f"hf.co/{REPO}:IQ4_XS", models_dir, endpoint=hub.url)


def test_a_second_pull_of_a_file_being_pulled_is_refused(hub, models_dir):
    source = pulling.resolve(parse_reference(f"hf.co/{REPO}"), hub.url)
    first = pulling.download(source, models_dir)
    next(first)
    with pytest.raises(Conflict, match="being pulled"):
        next(pulling.download(source, models_dir))
    first.close()                                       # stopped: what arrived stays for the next pull
    assert (models_dir / "Tiny-Q4_K_M.gguf.partial").exists()


def test_delete_model(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    for name in ("a-Q4_K_M.gguf", "b.gguf", "c.gguf.partial"):
        (folder / name).write_bytes(b"GGUF")
    bundled = bundled_model()
    with pytest.raises(BadRequest, match="bundled"):
        delete_model(folder, bundled.name, None, bundled)
    with pytest.raises(BadRequest, match="serving"):
        delete_model(folder, "b.gguf", str(folder / "b.gguf"), bundled)
    with pytest.raises(BadRequest, match="loading"):
        delete_model(folder, "b", None, bundled, loading=[str(folder / "b.gguf")])
    with pytest.raises(NotFound, match="a-Q4_K_M.gguf"):
        delete_model(folder, "nothing", None, bundled)
    assert delete_model(folder, "a-q4_k_m:latest", None, bundled) == folder / "a-Q4_K_M.gguf"
    assert delete_model(folder, "c.gguf", None, bundled).name == "c.gguf.partial"
    assert sorted(p.name for p in folder.iterdir()) == ["b.gguf"]


# the command line ---------------------------------------------------------------------------------

def test_companion_pull(hub, tmp_path, monkeypatch):
    monkeypatch.delenv("COMPANION_CONFIG", raising=False)
    data = tmp_path / "data"
    result = CliRunner().invoke(cli, ["pull", f"hf.co/{REPO}:Q8_0", "--data-dir", str(data), "--endpoint", hub.url])
    assert result.exit_code == 0, result.output
    assert (data / "models" / "Tiny-Q8_0.gguf").read_bytes() == FILES["Tiny-Q8_0.gguf"]
    assert "pulled" in result.output and "success" in result.output
    monkeypatch.setenv("COMPANION_MODEL_HF_ENDPOINT", hub.url)          # the endpoint from the settings
    result = CliRunner().invoke(cli, ["pull", REPO, "Tiny-IQ4_XS.gguf", "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(cli, ["pull", f"hf.co/{REPO}:Q5_K_M", "--data-dir", str(data)])
    assert result.exit_code == 1 and "no Q5_K_M file" in result.output and "Tiny-Q4_K_M.gguf" in result.output


# Ollama's /api/pull and /api/delete ---------------------------------------------------------------

class ServingBundled:
    """The bundled model as the one serving, never loaded: for the routes that only look at files."""
    path = str(bundled_model())
    state = "ready"
    error = None
    n_ctx = 2048
    n_ctx_reason = "a stand-in"
    template = template_note = "transcript"

    def start(self) -> None: ...


def fast_client(tmp_path, **sections):
    settings = test_settings(tmp_path / "data", model={"hf_endpoint": sections.pop("endpoint", "http://127.0.0.1:9"),
                                                       **sections.pop("model", {})}, **sections)
    services = build_services(settings, generator=ServingBundled(), embedder=Embedder(None))
    return create_app(settings, services).test_client(), services


@pytest.fixture
def api(hub, tmp_path):
    client, services = fast_client(tmp_path, endpoint=hub.url)
    yield client
    services.close()


def ndjson_lines(response) -> list[dict]:
    assert response.mimetype == "application/x-ndjson", response.get_data(as_text=True)
    return [json.loads(line) for line in response.get_data(as_text=True).splitlines() if line]


def test_api_pull_streams_progress_then_lists_the_model(api, hub, tmp_path):
    lines = ndjson_lines(api.post("/api/pull", json={"model": f"hf.co/{REPO}:Q8_0"}))
    assert lines[0] == {"status": "pulling manifest"} and lines[-1] == {"status": "success"}
    assert lines[-3]["completed"] == lines[-3]["total"] == 5_000_000
    assert (tmp_path / "data" / "models" / "Tiny-Q8_0.gguf").is_file()
    whole = api.post("/api/pull", json={"name": f"{REPO}/Tiny-IQ4_XS.gguf", "stream": False, "insecure": True})
    assert whole.status_code == 200 and whole.get_json() == {"status": "success"}
    names = [m["name"] for m in api.get("/api/tags").get_json()["models"]]
    assert "tiny-q8_0:latest" in names and "tiny-iq4_xs:latest" in names
    files = [m["name"] for m in api.get("/api/models").get_json()["items"]]
    assert "Tiny-Q8_0.gguf" in files and "Tiny-IQ4_XS.gguf" in files
    assert api.delete("/api/delete", json={"model": "tiny-q8_0:latest"}).status_code == 200
    assert not (tmp_path / "data" / "models" / "Tiny-Q8_0.gguf").exists()
    assert api.delete("/api/delete", json={"model": "tiny-q8_0:latest"}).status_code == 404
    refused = api.delete("/api/delete", json={"model": Path(bundled_model()).stem.lower() + ":latest"})
    assert refused.status_code == 400 and "bundled" in refused.get_json()["error"]


def test_api_pull_errors(api, hub, tmp_path):
    unknown = api.post("/api/pull", json={"model": f"hf.co/{REPO}:Q2_K"})
    assert unknown.status_code == 404 and "Tiny-Q4_K_M.gguf" in unknown.get_json()["error"]
    assert api.post("/api/pull", json={"model": "hf.co/tester/Nothing"}).status_code == 404
    assert api.post("/api/pull", json={}).status_code == 400
    assert api.post("/api/pull", json={"model": "llama3.2:1b"}).get_json()["error"]
    hub.wrong_sha.add("Tiny-Q8_0.gguf")                 # found out while streaming: an error line, no file
    lines = ndjson_lines(api.post("/api/pull", json={"model": f"hf.co/{REPO}:Q8_0"}))
    assert "sha256" in lines[-1]["error"] and not any((tmp_path / "data" / "models").iterdir())
    assert api.post("/api/pull", json={"model": f"hf.co/{REPO}:Q8_0", "stream": False}).status_code == 502


def test_a_client_that_goes_away_stops_the_pull_and_keeps_the_partial_file(api, hub, tmp_path, monkeypatch):
    monkeypatch.setattr(pulling, "PROGRESS_EVERY", 0)
    monkeypatch.setattr(pulling, "CHUNK", 64 * 1024)
    response = api.post("/api/pull", json={"model": f"hf.co/{REPO}:Q8_0"}, buffered=False)
    body = iter(response.response)
    assert json.loads(next(body))["status"] == "pulling manifest"
    assert json.loads(next(body))["completed"] > 0
    response.close()
    partial = tmp_path / "data" / "models" / "Tiny-Q8_0.gguf.partial"
    assert 0 < partial.stat().st_size < 5_000_000
    lines = ndjson_lines(api.post("/api/pull", json={"model": f"hf.co/{REPO}:Q8_0"}))    # and resumes
    assert lines[-1] == {"status": "success"} and hub.ranges()


def test_pulling_is_refused_when_not_allowed(hub, tmp_path):
    client, services = fast_client(tmp_path, endpoint=hub.url, model={"allow_pull": False})
    try:
        refused = client.post("/api/pull", json={"model": f"hf.co/{REPO}"})
        assert refused.status_code == 403 and "allow_pull" in refused.get_json()["error"]
        assert client.delete("/api/delete", json={"model": "x"}).status_code == 403
        assert hub.requests == []
    finally:
        services.close()


def test_pulling_from_another_machine_needs_the_api_key(hub, tmp_path):
    client, services = fast_client(tmp_path, endpoint=hub.url)
    try:
        remote = {"REMOTE_ADDR": "192.168.1.20"}
        refused = client.post("/api/pull", json={"model": f"hf.co/{REPO}"}, environ_base=remote)
        assert refused.status_code == 403 and "api_key" in refused.get_json()["error"]
    finally:
        services.close()
    client, services = fast_client(tmp_path / "keyed", endpoint=hub.url, server={"api_key": "k"})
    try:
        assert client.post("/api/pull", json={"model": f"hf.co/{REPO}"}, environ_base=remote).status_code == 401
        allowed = client.post("/api/pull", json={"model": f"hf.co/{REPO}", "stream": False}, environ_base=remote,
                              headers={"Authorization": "Bearer k"})
        assert allowed.status_code == 200, allowed.get_json()
    finally:
        services.close()


# the real model: pulled, listed, loaded --------------------------------------------------------------

def test_a_pulled_model_loads_through_the_config_api(client, services, settings, tmp_path):
    hub = Hub({"SmolLM2-Pulled-Q4_1.gguf": Path(bundled_model()).read_bytes()})
    try:
        settings.model.hf_endpoint = hub.url
        lines = ndjson_lines(client.post("/api/pull", json={"model": f"hf.co/{REPO}:Q4_1"}))
        assert lines[-1] == {"status": "success"}, lines[-1]
    finally:
        hub.close()
    pulled = Path(settings.data_dir) / "models" / "SmolLM2-Pulled-Q4_1.gguf"
    assert "smollm2-pulled-q4_1:latest" in [m["name"] for m in client.get("/api/tags").get_json()["models"]]
    listed = {m["name"]: m for m in client.get("/api/models").get_json()["items"]}
    assert listed[pulled.name]["context_length"] == 8192 and not listed[pulled.name]["active"]
    assert client.put("/api/config", json={"model": {"path": str(pulled)}}).status_code == 202
    deadline = time.monotonic() + 60
    while client.get("/api/config").get_json()["pending_model"] is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert Path(services.generator.path) == pulled and services.generator.state == "ready"
    assert client.post("/api/generate", json={"prompt": "Hi", "stream": False,
                                              "options": {"num_predict": 4}}).status_code == 200
    serving = client.delete("/api/delete", json={"model": pulled.name})
    assert serving.status_code == 400 and "serving" in serving.get_json()["error"]
    assert os.path.exists(pulled)
