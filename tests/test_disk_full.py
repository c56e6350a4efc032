"""A full disk (#28): the data dir on a small tmpfs, filled while serving. Turns, memory adds,
card imports, KV state saves and pulls fail with a 507 in each dialect's error shape (never a
hang, a crash or a 500), nothing acknowledged is lost, and once space is freed the same requests
work again without a restart, the memory index catching up with what it missed.

Mounting needs root: the tests skip with the reason where it is not allowed."""

from __future__ import annotations

import errno
import io
import json
import os
import sqlite3
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import test_settings
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from test_pull import FILES, REPO, hub  # noqa: F401, F811 - the loopback hub fixture

from companion.app import create_app
from companion.errors import StorageFull, storage_full
from companion.memory.recall import LongTermMemory
from companion.model import pull as pulling
from companion.services import build_services
from companion.store import Store

ANSWER_WITHIN = 120        # seconds: a request that takes longer counts as a hang


def mount_tmpfs(folder: Path, size: str) -> None:
    """A tmpfs of this size at folder; skip the test where mounting is not allowed."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")


@pytest.fixture
def small_disk(tmp_path):
    folder = tmp_path / "disk"
    mount_tmpfs(folder, "96m")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> Path:
    """Fill the filesystem to its last byte with one file; returns it."""
    filler = folder / "filler"
    with open(filler, "ab", buffering=0) as fh:
        for size in (1 << 20, 1 << 12, 1):
            block = b"\0" * size
            try:
                while True:
                    fh.write(block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    return filler


def card_png(name: str) -> bytes:
    import base64
    card = {"spec": "chara_card_v2", "spec_version": "2.0",
            "data": {"name": name, "description": f"{name} likes tea.", "first_mes": f"Hi, I'm {name}.",
                     "personality": "", "scenario": "", "mes_example": ""}}
    info = PngInfo()
    info.add_text("chara", base64.b64encode(json.dumps(card).encode()).decode())
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 100, 50)).save(out, "PNG", pnginfo=info)
    return out.getvalue()


def answered(call, *args, **kwargs):
    """The call's result, or a failure when it takes longer than ANSWER_WITHIN (a hang)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(call, *args, **kwargs).result(timeout=ANSWER_WITHIN)


def is_full_error(response, shape: str) -> bool:
    """A 507 (or 503) in the dialect's error shape."""
    if response.status_code not in (503, 507):
        return False
    if shape == "compat":
        return response.mimetype == "text/plain" and "full" in response.get_data(as_text=True)
    error = response.get_json()["error"]
    if shape == "ollama":
        return isinstance(error, str) and "full" in error
    if shape == "openai":
        return error["type"] and "full" in error["message"] and "param" in error
    return error["code"] == "insufficient_storage" and "full" in error["message"]


@pytest.fixture
def full_disk_app(small_disk, hub, generator, embedder):  # noqa: F811
    data = small_disk / "data"
    settings = test_settings(data, model={"allow_pull": True, "hf_endpoint": hub.url},
                             generation={"max_tokens": 8})
    services = build_services(settings, generator=generator, embedder=embedder)
    app = create_app(settings, services)
    yield app, services, small_disk
    services.close()


REQUESTS = [    # (name, dialect shape, method, path, JSON body)
    ("turn (AI Companion)", "compat", "post", "/api/prompt", {"prompt": "My cat is called Tom."}),
    ("turn (OpenAI)", "openai", "post", "/v1/chat/completions",
     {"model": "companion", "messages": [{"role": "user", "content": "I live in Oslo."}]}),
    ("turn (Ollama)", "ollama", "post", "/api/chat",
     {"model": "companion/1", "stream": False, "messages": [{"role": "user", "content": "I play the cello."}]}),
    ("memory add (ours)", "ours", "post", "/api/memories", {"text": "The user's sister is called Ada."}),
    ("memory add (AI Companion)", "compat", "post", "/api/addData", {"text": "The user bakes bread on Sundays."}),
    ("pull (Ollama)", "ollama", "post", "/api/pull", {"model": f"hf.co/{REPO}:Q8_0", "stream": False}),
]


def send(client, method: str, path: str, body: dict | None = None, **kwargs):
    return answered(getattr(client, method), path, json=body, **kwargs)


def card_import(client, name: str):
    return answered(client.post, "/api/import/characterCard",
                    data={"file": (io.BytesIO(card_png(name)), "card.png")}, content_type="multipart/form-data")


def test_a_full_disk_refuses_writes_with_507_and_recovers_without_a_restart(full_disk_app):
    app, services, disk = full_disk_app
    client = app.test_client()
    first = send(client, "post", "/api/prompt", {"prompt": "Hello there."})   # the files exist, a state to save
    assert first.status_code == 200, first.data
    assert services.memory.flush(60)
    states = services.turns.states

    filler = fill(disk)
    acknowledged_messages: list[int] = [first.get_json()["id"]]
    acknowledged_memories: list[int] = []
    refused: dict[str, int] = {}
    for name, shape, method, path, body in REQUESTS:
        response = send(client, method, path, body)
        assert response.status_code != 500, (name, response.data)
        if response.status_code in (200, 201):   # SQLite may still have room in its write-ahead log
            if path == "/api/prompt":
                acknowledged_messages.append(response.get_json()["id"])
            if path == "/api/memories":
                acknowledged_memories.append(response.get_json()["id"])
            continue
        assert is_full_error(response, shape), (name, response.status_code, response.data)
        refused[name] = response.status_code
    imported = card_import(client, "Zoe")
    assert is_full_error(imported, "compat"), (imported.status_code, imported.data)
    assert "pull (Ollama)" in refused                        # 3 MB do not fit in no space
    assert not list((disk / "data" / "models").glob("*.gguf")) if (disk / "data" / "models").exists() else True
    assert any(name.startswith(("turn", "memory")) for name in refused), refused
    streamed = send(client, "post", "/api/prompt", {"prompt": "Are you there?", "stream": True})
    assert streamed.status_code in (200, 507), streamed.data
    if streamed.status_code == 200:
        assert b"event: done" in streamed.data or b"event: error" in streamed.data, streamed.data
    assert not states.save_now()                             # the KV state: not saved, the thread lives on
    stray = [p for p in (disk / "data").rglob("*.partial*") if not p.name.endswith(".gguf.partial")]
    assert not stray                                         # no half-written file (a pull's stays to resume)
    status = send(client, "get", "/api/status")
    assert status.status_code == 200                         # reading works on a full disk

    filler.unlink()                                          # space again: no restart
    for name, shape, method, path, body in REQUESTS:
        response = send(client, method, path, body)
        assert response.status_code in (200, 201), (name, response.status_code, response.data)
        if path == "/api/prompt":
            acknowledged_messages.append(response.get_json()["id"])
        if path == "/api/memories":
            acknowledged_memories.append(response.get_json()["id"])
    imported = card_import(client, "Zoe")
    assert imported.status_code == 200, imported.data
    assert (disk / "data" / "models" / "Tiny-Q8_0.gguf").read_bytes() == FILES["Tiny-Q8_0.gguf"]
    assert states.save_now() and list((disk / "data").rglob("*.kv"))

    store = services.store
    for message_id in acknowledged_messages:                 # nothing acknowledged was lost
        assert store.get_message(message_id) is not None, message_id
    for memory_id in acknowledged_memories:
        assert store.get_memory(memory_id) is not None, memory_id
    assert services.memory.flush(60)
    rows = set(store.memory_ids())
    assert rows and rows <= services.memory.indexed_ids()    # the index caught up with what it missed
    assert send(client, "get", "/api/status").status_code == 200


def test_storage_full_recognises_what_a_full_disk_raises():
    assert storage_full(OSError(errno.ENOSPC, "No space left on device")) is not None
    assert storage_full(OSError(errno.EDQUOT, "Disk quota exceeded")) is not None
    assert storage_full(sqlite3.OperationalError("database or disk is full")) is not None
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("a wrapper's words") from inner
    except RuntimeError as wrapped:
        assert isinstance(storage_full(wrapped), StorageFull)
    assert storage_full(OSError(errno.EACCES, "Permission denied")) is None
    assert storage_full(ValueError("no")) is None
    assert StorageFull("x").status == 507


def test_a_commit_that_fails_on_a_full_disk_leaves_the_store_usable(small_disk):
    store = Store(small_disk / "c.db")
    try:
        companion_id = store.active_companion_id()
        chat_id = store.create_chat(companion_id)
        filler = fill(small_disk)
        with pytest.raises(StorageFull):
            for n in range(2000):         # past what the write-ahead log holds already
                store.add_message(chat_id, False, f"message {n} " + "x" * 2000)
        filler.unlink()
        kept = store.add_message(chat_id, False, "after the disk had room again")   # no 'within a transaction'
        assert store.get_message(kept["id"])["text"] == "after the disk had room again"
    finally:
        store.close()


def test_a_download_that_fills_the_disk_is_a_507_and_keeps_the_partial(small_disk, hub):  # noqa: F811
    models = small_disk / "models"
    big = fill(small_disk)
    os.truncate(big, big.stat().st_size - 1_000_000)       # 1 MB free; the file is 5 MB, its size not listed
    source = pulling.Source(f"{hub.url}/cdn/Tiny-Q8_0.gguf", "Tiny-Q8_0.gguf", None, None)
    with pytest.raises(StorageFull):
        for _ in pulling.download(source, models):
            pass
    assert (models / "Tiny-Q8_0.gguf.partial").exists() and not (models / "Tiny-Q8_0.gguf").exists()
    big.unlink()
    for _ in pulling.download(source, models):              # resumes once there is room
        pass
    assert (models / "Tiny-Q8_0.gguf").read_bytes() == FILES["Tiny-Q8_0.gguf"]


def test_memories_stored_while_the_index_had_no_room_are_indexed_once_it_has(tmp_path, embedder, caplog):
    """The index on a disk of its own that fills up (SQLite still has room): the rows are kept,
    the index misses them, and the next memory indexed after space is freed brings them in
    (no restart, no reconcile)."""
    disk = tmp_path / "index-disk"
    mount_tmpfs(disk, "64m")
    store = Store(tmp_path / "c.db")
    memory = LongTermMemory(store, embedder, disk / "chroma")
    try:
        companion_id = store.active_companion_id()
        memory.add(companion_id, "The user drinks green tea every morning.", "custom")   # the index's files exist
        filler = fill(disk)
        kept = [memory.add(companion_id, f"Fact {n}: the user's neighbour number {n} keeps bees " + "x" * 3000,
                           "custom")["id"] for n in range(40)]
        assert set(kept) <= set(store.memory_ids())           # every row kept
        assert "not indexed" in caplog.text                   # the index had no room
        filler.unlink()             # (read Chroma only after: its reads hang on a full disk, see the report)
        memory.add(companion_id, "The user's sister lives in Bergen.", "custom")
        assert set(store.memory_ids()) <= memory.indexed_ids()   # caught up
    finally:
        memory.close()
        store.close()
        subprocess.run(["umount", "-l", str(disk)], check=False)
