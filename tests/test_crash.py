"""Crash safety: SIGKILL the daemon mid-reply and mid-import, restart, and nothing acknowledged is lost.

One data dir, three daemons in a row:
1. killed with SIGKILL while it streams a reply;
2. checks the user's message survived, then is killed while it embeds a 10,000-message import;
3. checks the import is all there (or not at all), the memory index catches up with the
   memories table, and after it stops the database passes SQLite's integrity check.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
import requests

from bench.daemon import Daemon, all_indexed, is_ready

pytestmark = pytest.mark.serve   # `companion serve` subprocesses

PROMPT = "Write a very long story about a lighthouse keeper and the sea."
IMPORTED = 10_000


@pytest.fixture
def config(tmp_path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text("[generation]\ntemperature = 0.0\nmax_tokens = 16\nseed = 1\ntop_k = 1\n")
    return path


def wait_for_log(path: Path, offset: int, needle: str, timeout: float) -> bool:
    """Wait until the daemon's log file, past offset, holds needle."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            with path.open("rb") as fh:
                fh.seek(offset)
                if needle.encode() in fh.read():
                    return True
        time.sleep(0.05)
    return False


def test_sigkill_mid_stream_and_mid_import(tmp_path, config):
    data = tmp_path / "data"
    log = tmp_path / "daemon.log"

    # 1. SIGKILL while a reply streams ---------------------------------------------------------
    daemon = Daemon(data, config, log)
    try:
        daemon.wait_until(is_ready)
        response = requests.post(daemon.url + "/api/prompt", stream=True, timeout=120,
                                 json={"prompt": PROMPT, "stream": True, "max_tokens": 400})
        assert response.status_code == 200, response.text
        tokens = 0
        for line in response.iter_lines(decode_unicode=True):
            if line.startswith("event: token"):
                tokens += 1
                if tokens == 3:
                    break
        assert tokens == 3
        daemon.kill()
        response.close()
    finally:
        daemon.kill()

    # 2. the prompt survived; SIGKILL while a big import embeds --------------------------------
    daemon = Daemon(data, config, log)
    try:
        status = daemon.wait_until(is_ready)
        messages = requests.get(daemon.url + "/api/messages", timeout=30).json()
        # the greeting, then the user's message (committed before generation started); the
        # reply in progress died with the process
        assert [(m["ai"], m["text"]) for m in messages[1:]] == [("false", PROMPT)]
        assert messages[0]["ai"] == "true"
        base_messages, base_memories = status["counts"]["messages"], status["counts"]["memories"]
        assert base_messages == len(messages)
        daemon.wait_until(all_indexed, timeout=120)

        # short texts: embedding is the slow part (about 45 memories a second on 2 idle cores)
        items = [{"ai": n % 2 == 1, "text": f"{'ok' if n % 2 else 'hi'} {n}"} for n in range(IMPORTED)]
        daemon_log = data / "logs" / "companion.log"
        offset = daemon_log.stat().st_size if daemon_log.exists() else 0
        outcome: dict = {}

        def send() -> None:
            try:
                outcome["response"] = requests.post(daemon.url + "/api/import/messagesJson",
                                                    json={"messages": items}, timeout=600)
            except requests.RequestException as exc:
                outcome["error"] = exc

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        # the import commits every message and memory row in one transaction, then embeds in
        # batches, logging each: kill it after the first batch
        embedding = wait_for_log(daemon_log, offset, "imported messages: indexed", timeout=180)
        daemon.kill()
        sender.join(timeout=60)
        assert "response" not in outcome, "the import finished before the kill: nothing was tested"
    finally:
        daemon.kill()

    # 3. all or nothing, the index catches up, the database is sound ---------------------------
    daemon = Daemon(data, config, log)
    try:
        status = daemon.wait_until(is_ready)
        counts = status["counts"]
        assert counts["messages"] in (base_messages, base_messages + IMPORTED)
        if embedding:  # the transaction had committed before the first batch was embedded
            assert counts["messages"] == base_messages + IMPORTED
        if counts["messages"] == base_messages + IMPORTED:
            assert counts["memories"] == base_memories + IMPORTED // 2  # one per user/reply pair
            stored = requests.get(daemon.url + "/api/messagesJson", timeout=60).json()["messages"]
            assert stored[-IMPORTED:] == items
        else:
            assert counts["memories"] == base_memories
        assert counts["indexed_memories"] <= counts["memories"]
        status = daemon.wait_until(all_indexed, timeout=600)  # generous: the machine may be busy
        assert status["counts"]["indexed_memories"] == counts["memories"]
        assert status["counts"]["messages"] == counts["messages"]
    finally:
        assert daemon.stop() == 0, daemon.tail()

    with sqlite3.connect(f"file:{data / 'companion.db'}?mode=ro", uri=True) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("select count(*) from messages").fetchone()[0] == counts["messages"]
