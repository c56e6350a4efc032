"""A live daemon in a thread (for the web page and terminal chat tests); Debian's Chromium for Playwright."""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import waitress

from companion.app import create_app
from companion.services import Services, build_services

CHROMIUM = os.environ.get("COMPANION_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-extensions", "--no-first-run", "--disable-sync", "--mute-audio"]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "screenshots"


class PacedGenerator:
    """The real model, optionally slowed between pieces so that a test can stop a reply mid-way.

    Records how many generations ended because they were told to stop.
    """

    def __init__(self, inner) -> None:
        self.inner = inner
        self.pace = 0.0
        self.stopped = 0

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def generate(self, request, stop_event=None):
        pieces = self.inner.generate(request, stop_event)
        try:
            for piece in pieces:
                yield piece
                if self.pace and stop_event is not None:
                    stop_event.wait(self.pace)
        finally:
            pieces.close()
            if stop_event is not None and stop_event.is_set():
                self.stopped += 1


@dataclass
class LiveDaemon:
    url: str
    services: Services
    generator: PacedGenerator
    api_key: str = ""

    def api(self, method: str, path: str, **kwargs):
        """Call the daemon's API directly (to set up or check what the page did)."""
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        response = requests.request(method, self.url + path, headers=headers, timeout=120, **kwargs)
        assert response.status_code < 400, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content and "json" in response.headers.get("Content-Type", "") else None

    def messages(self, chat_id: int | None = None) -> list[dict]:
        chat_id = chat_id or self.active_chat()["id"]
        return self.api("GET", f"/api/chats/{chat_id}/messages?limit=200")["items"]

    def active_chat(self) -> dict:
        return next(c for c in self.api("GET", "/api/chats?limit=200")["items"] if c["active"])


def serve(settings, generator, embedder) -> tuple[LiveDaemon, callable]:
    """Start create_app(settings) on a free port in a thread; returns the daemon and a stop function."""
    paced = PacedGenerator(generator)
    services = build_services(settings, generator=paced, embedder=embedder)
    server = waitress.create_server(create_app(settings, services), host="127.0.0.1", port=0, threads=6,
                                    asyncore_use_poll=True)   # select() fails past 1024 open files
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()

    def stop() -> None:
        services.events.close()     # the live event streams end first: each holds a thread
        server.task_dispatcher.shutdown(timeout=5)
        server.close()
        thread.join(timeout=5)
        services.close()

    daemon = LiveDaemon(f"http://127.0.0.1:{server.effective_port}", services, paced, settings.server.api_key)
    return daemon, stop


def launch_browser(playwright):
    """Debian's Chromium (Playwright's own browser download does not work here)."""
    if not Path(CHROMIUM).exists():
        message = f"no Chromium at {CHROMIUM} (apt-get install chromium, or set COMPANION_TEST_CHROMIUM)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def screenshot_name(nodeid: str) -> str:
    return re.sub(r"[^\w.-]+", "_", nodeid.split("::", 1)[-1])[:120] + ".png"
