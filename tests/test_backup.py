"""Backup and restore: a round trip while `companion serve` runs, and every refusal."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import zipfile
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from PIL import Image

from bench.daemon import COMPANION, Daemon, all_indexed, chroma_server, clean_env, is_ready
from companion.cli import cli
from companion.store import Store


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(COMPANION), *map(str, args)], env=clean_env(), capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def config(tmp_path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text("[generation]\ntemperature = 0.0\nmax_tokens = 16\nseed = 1\ntop_k = 1\n")
    return path


def small_png() -> bytes:
    image = Image.new("RGB", (40, 30))
    image.putdata([(x * 6, y * 8, (x + y) * 3) for y in range(30) for x in range(40)])
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


# --- the round trip -------------------------------------------------------------------------

@pytest.mark.serve
def test_backup_while_serving_then_restore_into_a_new_data_dir(tmp_path, config):
    data1, data2 = tmp_path / "data1", tmp_path / "data2"
    backup = tmp_path / "backup.zip"
    daemon = Daemon(data1, config, tmp_path / "daemon1.log")
    try:
        daemon.wait_until(is_ready)
        reply = requests.post(daemon.url + "/api/prompt", json={"prompt": "Hi! My name is Ada."}, timeout=300)
        assert reply.status_code == 200, reply.text
        added = requests.post(daemon.url + "/api/addData", json={"text": "Ada's cat is named Pixel."}, timeout=120)
        assert added.text == "Added custom data to AI long term memory"
        changed = requests.post(daemon.url + "/api/change/companionAvatar", data=small_png(),
                                headers={"Content-Type": "image/png"}, timeout=60)
        assert changed.text == "Changed avatar of your ai companion"
        renamed = requests.post(daemon.url + "/api/change/companionName", json={"companion_name": "Mira"},
                                timeout=60)
        assert renamed.text == "Changed companion name"
        messages = requests.get(daemon.url + "/api/messages", timeout=30).json()
        companion = requests.get(daemon.url + "/api/companionData", timeout=30).json()
        avatar = requests.get(daemon.url + "/assets/avatar.png", timeout=30).content
        counts = daemon.wait_until(all_indexed, timeout=120)["counts"]
        assert counts["memories"] == 2 and len(messages) == 3 and companion["name"] == "Mira"

        made = run_cli("backup", backup, "--data-dir", data1, "--config", config)
        assert made.returncode == 0, made.stderr
        assert "1 companion, 3 messages, 2 memories and 1 avatar, plus the config file," in made.stdout
        with zipfile.ZipFile(backup) as zf:
            manifest = json.loads(zf.read("manifest.json"))
            assert zf.read("config.toml") == config.read_bytes()
            assert any(n.startswith("avatars/") for n in zf.namelist())
            assert not any(n.startswith("chroma") for n in zf.namelist())
        assert manifest["format"] == "companion-backup" and manifest["version"] == 1
        assert manifest["counts"] == {"companions": 1, "messages": 3, "memories": 2, "avatars": 1}
        assert manifest["embedder"] == daemon.status()["embedder"]["name"]

        # the daemon keeps serving; what it writes after the backup is not in the backup
        later = requests.post(daemon.url + "/api/addData", json={"text": "written after the backup"}, timeout=120)
        assert later.status_code == 200
        # no restore while a daemon holds the data dir
        refused = run_cli("restore", backup, "--data-dir", data1, "--force")
        assert refused.returncode != 0 and "stop it before restoring" in refused.stderr
        assert daemon.status()["counts"]["memories"] == 3
    finally:
        assert daemon.stop() == 0, daemon.tail()

    # no replacing existing data without --force
    refused = run_cli("restore", backup, "--data-dir", data1)
    assert refused.returncode != 0 and "--force" in refused.stderr
    assert not list(data1.glob(".restore-*"))

    restored = run_cli("restore", backup, "--data-dir", data2)
    assert restored.returncode == 0, restored.stderr
    assert "1 companion, 3 messages, 2 memories and 1 avatar from" in restored.stdout
    assert not (data2 / "chroma").exists() and not list(data2.glob(".restore-*"))
    assert sorted(p.name for p in (data2 / "avatars").iterdir()) == sorted(p.name for p in (data1 / "avatars").iterdir())
    for restored_avatar in (data2 / "avatars").iterdir():
        assert restored_avatar.read_bytes() == (data1 / "avatars" / restored_avatar.name).read_bytes()

    daemon = Daemon(data2, config, tmp_path / "daemon2.log")
    try:
        status = daemon.wait_until(is_ready)
        assert status["counts"]["messages"] == 3 and status["counts"]["memories"] == 2
        assert requests.get(daemon.url + "/api/messages", timeout=30).json() == messages
        assert requests.get(daemon.url + "/api/companionData", timeout=30).json() == companion
        assert requests.get(daemon.url + "/assets/avatar.png", timeout=30).content == avatar
        # the start-up reconcile re-indexes every restored memory
        status = daemon.wait_until(all_indexed, timeout=120)
        assert status["counts"]["indexed_memories"] == 2
        reply = requests.post(daemon.url + "/api/prompt", json={"prompt": "What is my cat called?"}, timeout=300)
        assert reply.status_code == 200, reply.text
        assert any("Pixel" in m["text"] for m in reply.json()["memories"])
    finally:
        assert daemon.stop() == 0, daemon.tail()

    # --force replaces data1's newer state (and drops its index) with the backup
    assert (data1 / "chroma").exists()
    forced = run_cli("restore", backup, "--data-dir", data1, "--force")
    assert forced.returncode == 0, forced.stderr
    assert "replacing its data" in forced.stdout
    assert not (data1 / "chroma").exists()
    assert not any(data1.glob("companion.db-*"))
    with sqlite3.connect(f"file:{data1 / 'companion.db'}?mode=ro", uri=True) as conn:
        assert conn.execute("select count(*) from memories").fetchone()[0] == 2
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# --- refusals, in process (no model needed) -------------------------------------------------

@pytest.fixture
def runner(monkeypatch) -> CliRunner:
    monkeypatch.delenv("COMPANION_CONFIG", raising=False)
    monkeypatch.delenv("COMPANION_HOME", raising=False)
    return CliRunner()


@pytest.fixture
def data_dir(tmp_path) -> Path:
    """A data dir with a database holding one message and one memory."""
    path = tmp_path / "data"
    store = Store(path / "companion.db")
    store.add_memory(store.active_companion_id(), "a memory", "custom")
    store.close()
    return path


@pytest.fixture
def good_zip(tmp_path, runner, data_dir) -> Path:
    path = tmp_path / "good.zip"
    result = runner.invoke(cli, ["backup", str(path), "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    return path


def rewrite_zip(source: Path, target: Path, extra: dict[str, bytes] = {}, drop: tuple = ()) -> Path:
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for info in zin.infolist():
            if info.filename not in drop:
                zout.writestr(info.filename, zin.read(info))
        for name, data in extra.items():
            zout.writestr(name, data)
    return target


def test_backup_refuses_to_overwrite_without_force(tmp_path, runner, data_dir):
    target = tmp_path / "b.zip"
    target.write_bytes(b"keep me")
    result = runner.invoke(cli, ["backup", str(target), "--data-dir", str(data_dir)])
    assert result.exit_code != 0 and "already exists" in result.output and "--force" in result.output
    assert target.read_bytes() == b"keep me"
    result = runner.invoke(cli, ["backup", str(target), "--data-dir", str(data_dir), "--force"])
    assert result.exit_code == 0, result.output
    assert zipfile.is_zipfile(target)
    assert not list(tmp_path.glob(".companion-backup-*"))


def test_backup_of_an_empty_data_dir_is_refused(tmp_path, runner):
    result = runner.invoke(cli, ["backup", str(tmp_path / "b.zip"), "--data-dir", str(tmp_path / "nothing")])
    assert result.exit_code != 0 and "no database" in result.output
    assert not (tmp_path / "b.zip").exists()


@pytest.mark.parametrize("evil", ["../evil", "avatars/../../evil", "/tmp/companion-evil", "C:/evil"])
def test_restore_refuses_unsafe_member_names(tmp_path, runner, good_zip, evil):
    bad = rewrite_zip(good_zip, tmp_path / "bad.zip", {evil: b"owned"})
    target = tmp_path / "restored"
    result = runner.invoke(cli, ["restore", str(bad), "--data-dir", str(target)])
    assert result.exit_code != 0 and "unsafe member names" in result.output
    assert not (tmp_path / "evil").exists() and not Path("/tmp/companion-evil").exists()
    assert not (target / "companion.db").exists()


def test_restore_refuses_a_random_file(tmp_path, runner):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(os.urandom(4096))
    result = runner.invoke(cli, ["restore", str(junk), "--data-dir", str(tmp_path / "d")])
    assert result.exit_code != 0 and "not a zip file" in result.output
    assert not (tmp_path / "d" / "companion.db").exists()


def test_restore_refuses_a_zip_that_is_not_a_backup(tmp_path, runner, good_zip):
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("notes.txt", "hello")
    result = runner.invoke(cli, ["restore", str(other), "--data-dir", str(tmp_path / "d")])
    assert result.exit_code != 0 and "not a companion backup" in result.output
    no_manifest = rewrite_zip(good_zip, tmp_path / "nm.zip", drop=("manifest.json",))
    result = runner.invoke(cli, ["restore", str(no_manifest), "--data-dir", str(tmp_path / "d")])
    assert result.exit_code != 0 and "not a companion backup" in result.output
    wrong = rewrite_zip(good_zip, tmp_path / "wrong.zip", {"manifest.json": b'{"format": "other"}'},
                        drop=("manifest.json",))
    result = runner.invoke(cli, ["restore", str(wrong), "--data-dir", str(tmp_path / "d")])
    assert result.exit_code != 0 and "not a companion backup" in result.output
    assert not (tmp_path / "d" / "companion.db").exists()


def test_restore_refuses_a_damaged_database(tmp_path, runner, good_zip, data_dir):
    with zipfile.ZipFile(good_zip) as zf:
        db = bytearray(zf.read("companion.db"))
    garbage = rewrite_zip(good_zip, tmp_path / "garbage.zip", {"companion.db": os.urandom(len(db))},
                          drop=("companion.db",))
    target = tmp_path / "d"
    result = runner.invoke(cli, ["restore", str(garbage), "--data-dir", str(target)])
    assert result.exit_code != 0 and "damaged or not SQLite" in result.output
    # a valid header with broken pages: the integrity check catches it
    page = 4096
    for offset in range(page, len(db) - page, page):
        db[offset + 8:offset + page] = b"\xff" * (page - 8)
    broken = rewrite_zip(good_zip, tmp_path / "broken.zip", {"companion.db": bytes(db)}, drop=("companion.db",))
    result = runner.invoke(cli, ["restore", str(broken), "--data-dir", str(target)])
    assert result.exit_code != 0, result.output
    assert "integrity check" in result.output or "damaged" in result.output, result.output
    assert not (target / "companion.db").exists() and not list(target.glob(".restore-*"))


def test_restore_refused_while_the_data_dir_is_locked(tmp_path, runner, good_zip):
    from companion.lockfile import DataDirLock

    target = tmp_path / "d"
    with DataDirLock(target):
        result = runner.invoke(cli, ["restore", str(good_zip), "--data-dir", str(target)])
    assert result.exit_code != 0 and "stop it before restoring" in result.output
    result = runner.invoke(cli, ["restore", str(good_zip), "--data-dir", str(target)])
    assert result.exit_code == 0, result.output
    assert "1 message, 1 memory and 0 avatars" in result.output


def test_restore_replaces_a_stale_wal(tmp_path, runner, good_zip, data_dir):
    """Old -wal/-shm files next to the old database never get replayed into the restored one."""
    store = Store(data_dir / "companion.db")
    store.db.execute("PRAGMA wal_autocheckpoint=0")
    for n in range(50):
        store.add_memory(store.active_companion_id(), f"uncheckpointed {n}", "custom")
    # leave the WAL behind as a crash would: copy the files while the connection is open
    leftovers = {s: (data_dir / f"companion.db{s}").read_bytes() for s in ("", "-wal")}
    store.close()
    for suffix, content in leftovers.items():
        (data_dir / f"companion.db{suffix}").write_bytes(content)
    assert (data_dir / "companion.db-wal").stat().st_size > 0
    result = runner.invoke(cli, ["restore", str(good_zip), "--data-dir", str(data_dir), "--force"])
    assert result.exit_code == 0, result.output
    assert not (data_dir / "companion.db-wal").exists()
    store = Store(data_dir / "companion.db")
    try:
        assert store.count("memories") == 1 and store.integrity_check() == "ok"
    finally:
        store.close()


@pytest.mark.serve
def test_restore_empties_the_index_in_a_chroma_server(tmp_path, runner, good_zip):
    """With [memory] chroma_url, stale vectors in the server would outlive a restore (reconcile
    compares ids only): the restore drops the collection so the next start indexes afresh."""
    import chromadb

    with chroma_server(tmp_path / "srv") as port:
        from companion.memory.index import collection_name

        client = chromadb.HttpClient(host="127.0.0.1", port=port)
        name = collection_name((tmp_path / "d" / "chroma").resolve(), f"http://127.0.0.1:{port}")
        stale = client.get_or_create_collection(name, embedding_function=None)
        stale.add(ids=["1"], embeddings=[[0.1, 0.2, 0.3]], documents=["a memory of another data dir"])
        config = tmp_path / "remote.toml"
        config.write_text(f'[memory]\nchroma_url = "http://127.0.0.1:{port}"\n')
        result = runner.invoke(cli, ["restore", str(good_zip), "--config", str(config),
                                     "--data-dir", str(tmp_path / "d")])
        assert result.exit_code == 0, result.output
        assert name not in [c.name for c in client.list_collections()]
    # an unreachable server: the restore still happens, with a warning to reindex
    result = runner.invoke(cli, ["restore", str(good_zip), "--config", str(config),
                                 "--data-dir", str(tmp_path / "d"), "--force"])
    assert result.exit_code == 0, result.output
    assert "warning: could not empty the memory index" in result.output and "companion reindex" in result.output
