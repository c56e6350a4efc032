"""End to end: `companion serve` as a subprocess, the real model, a restart, the data still there."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import requests

from bench.daemon import COMPANION, Daemon, clean_env, free_port, is_ready

pytestmark = pytest.mark.serve   # `companion serve` subprocesses


@pytest.fixture
def config(tmp_path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text("[generation]\ntemperature = 0.0\nmax_tokens = 24\nseed = 1\n")
    return path


def test_serve_prompt_restart_and_remember(tmp_path, config):
    data_dir = tmp_path / "data"
    log = tmp_path / "daemon.log"
    daemon = Daemon(data_dir, config, log)
    try:
        started = time.monotonic()
        status = daemon.wait_until(lambda s: True, timeout=60)
        assert time.monotonic() - started < 60
        assert status["data_dir"] == str(data_dir.resolve())
        daemon.wait_until(is_ready)
        reply = requests.post(daemon.url + "/api/prompt", json={"prompt": "Hi! My name is Ada."}, timeout=120)
        assert reply.status_code == 200, reply.text
        assert reply.json()["text"].strip()
        added = requests.post(daemon.url + "/api/addData", json={"text": "Ada's cat is named Pixel."}, timeout=60)
        assert added.text == "Added custom data to AI long term memory"
        before = requests.get(daemon.url + "/api/messages", timeout=10).json()
        # a second daemon on the same data dir refuses to start
        second = subprocess.run([str(COMPANION), "serve", "--data-dir", str(data_dir), "--port", str(free_port())],
                                env=clean_env(), capture_output=True, text=True, timeout=60)
        assert second.returncode != 0 and "another companion process" in second.stderr
    finally:
        assert daemon.stop() == 0

    daemon = Daemon(data_dir, config, log)
    try:
        status = daemon.wait_until(is_ready)
        assert requests.get(daemon.url + "/api/messages", timeout=10).json() == before
        assert status["counts"]["memories"] == 2
        status = daemon.wait_until(lambda s: s["counts"]["indexed_memories"] == 2, timeout=60)
        reply = requests.post(daemon.url + "/api/prompt", json={"prompt": "What is my cat called?"}, timeout=120)
        assert reply.status_code == 200 and reply.json()["text"].strip()
    finally:
        assert daemon.stop() == 0


def test_sigterm_mid_stream_keeps_the_partial_reply(tmp_path, config):
    data_dir = tmp_path / "data"
    config.write_text("[generation]\ntemperature = 0.0\nmax_tokens = 400\nseed = 1\n")
    daemon = Daemon(data_dir, config, tmp_path / "daemon.log")
    try:
        daemon.wait_until(is_ready)
        response = requests.post(daemon.url + "/api/prompt", stream=True, timeout=60,
                                 json={"prompt": "Write a very long story about the sea.", "stream": True})
        lines = response.iter_lines(decode_unicode=True)
        tokens = 0
        for line in lines:
            if line.startswith("event: token"):
                tokens += 1
                if tokens == 3:
                    break
    finally:
        assert daemon.stop() == 0
    daemon = Daemon(data_dir, config, tmp_path / "daemon.log")
    try:
        daemon.wait_until(is_ready)
        messages = requests.get(daemon.url + "/api/messages", timeout=10).json()
        assert [m["ai"] for m in messages] == ["true", "false", "true"]
        assert messages[-1]["text"].strip()
    finally:
        assert daemon.stop() == 0
