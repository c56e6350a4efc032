"""A `companion serve` subprocess for the end-to-end tests (e2e, backup, crash, remote)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

COMPANION = Path(sys.executable).parent / "companion"


# --- a daemon as a subprocess (the pattern of test_e2e.py; test_crash.py uses it too) ----------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPANION_")}
    env["HF_HUB_OFFLINE"] = "1"
    return env


class Daemon:
    """One `companion serve` process on a free port."""

    def __init__(self, data_dir: Path, config: Path, log: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log.open("ab")
        self.process = subprocess.Popen(
            [str(COMPANION), "serve", "--config", str(config), "--data-dir", str(data_dir),
             "--port", str(self.port)], env=clean_env(), stdout=self.log, stderr=subprocess.STDOUT)

    def tail(self, lines: int = 40) -> str:
        """The end of the daemon's output, for assertion messages."""
        if not self.log.closed:
            self.log.flush()
        text = Path(self.log.name).read_text(errors="replace").splitlines()
        return "\n".join(line for line in text if "GET /api/status" not in line)[-lines * 200:]

    def status(self) -> dict:
        return requests.get(self.url + "/api/status", timeout=30).json()

    def wait_until(self, ready, timeout: float = 240) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "the daemon exited early:\n" + self.tail()
            try:
                status = self.status()
                if ready(status):
                    return status
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        raise AssertionError("the daemon did not get there in time:\n" + self.tail())

    def stop(self) -> int:
        """SIGTERM: the daemon closes its stores and exits 0."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        finally:
            self.log.close()

    def kill(self) -> None:
        """SIGKILL: no clean-up at all, as in a crash or a power cut."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=60)
        self.log.close()


def is_ready(status: dict) -> bool:
    return status["model"]["state"] == "ready" and status["embedder"]["state"] == "ready"


def all_indexed(status: dict) -> bool:
    return status["counts"]["indexed_memories"] == status["counts"]["memories"]
