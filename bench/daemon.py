"""A `companion serve` subprocess on a free loopback port, and a `chroma run` server.

The one copy of these helpers, shared by the tests (e2e, crash, backup, remote, ...) and the
benchmarks (throughput, load). It imports nothing else of bench, so that importing it from the
tests changes nothing in their process's environment.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import requests

COMPANION = Path(sys.executable).parent / "companion"
CHROMA = Path(sys.executable).parent / "chroma"


class DaemonError(RuntimeError):
    """The daemon exited early or did not get where it was waited for in time."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env() -> dict:
    """This process's environment without COMPANION_* (a developer's own settings), offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPANION_")}
    env["HF_HUB_OFFLINE"] = "1"
    env["TRANSFORMERS_OFFLINE"] = "1"
    env["ANONYMIZED_TELEMETRY"] = "False"
    return env


class Daemon:
    """One `companion serve` on 127.0.0.1 and a free port, its output appended to a log file."""

    def __init__(self, data_dir: Path, config: Path, log: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self.log = log.open("ab")
        self.process = subprocess.Popen(
            [str(COMPANION), "serve", "--config", str(config), "--data-dir", str(data_dir),
             "--port", str(self.port)], env=clean_env(), stdout=self.log, stderr=subprocess.STDOUT)

    def tail(self, lines: int = 40) -> str:
        """The end of the daemon's output (without the status polls), for error messages."""
        if not self.log.closed:
            self.log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(line for line in text if "GET /api/status" not in line)[-lines * 200:]

    def get_json(self, path: str, timeout: float = 30) -> dict:
        return requests.get(self.url + path, timeout=timeout).json()

    def status(self) -> dict:
        return self.get_json("/api/status")

    def wait_until(self, ready: Callable[[dict], bool], timeout: float = 240) -> dict:
        """Poll /api/status until ready(status); raises DaemonError if the daemon exits or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise DaemonError(f"the daemon exited early (code {self.process.returncode}); "
                                  f"log {self.log_path}:\n{self.tail()}")
            try:
                status = self.status()
                if ready(status):
                    return status
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        raise DaemonError(f"the daemon did not get there in {timeout:.0f} s; log {self.log_path}:\n{self.tail()}")

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM: the daemon closes its stores and exits 0. SIGKILL if it has not exited in time."""
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=10)
            return self.process.returncode
        finally:
            self.log.close()

    def kill(self) -> None:
        """SIGKILL: no clean-up at all, as in a crash or a power cut."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=60)
        self.log.close()


def is_ready(status: dict) -> bool:
    """Both the model and the embedder have loaded."""
    return status["model"]["state"] == "ready" and status["embedder"]["state"] == "ready"


def all_indexed(status: dict) -> bool:
    """Every memory is in the memory index."""
    return status["counts"]["indexed_memories"] == status["counts"]["memories"]


@contextlib.contextmanager
def chroma_server(path: Path, timeout: float = 120) -> Iterator[int]:
    """`chroma run` on a free loopback port, storing in path; yields the port once it answers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([str(CHROMA), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
                              env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if server.poll() is not None:
                raise DaemonError(f"the Chroma server exited early (code {server.returncode})")
            try:
                if requests.get(url + "/api/v2/heartbeat", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() >= deadline:
                raise DaemonError(f"the Chroma server did not answer in {timeout:.0f} s")
            time.sleep(0.3)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)
