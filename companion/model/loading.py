"""Heavy models load once, in a background thread, with an honest state for /api/status."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

log = logging.getLogger(__name__)


class BackgroundLoaded:
    """Something loaded from `path` by `_open()`: state is loading, ready or failed (with error)."""

    kind = "model"

    def __init__(self, path: Path | str | None) -> None:
        self.path = str(path) if path else ""
        self.name = Path(self.path).name if self.path else ""
        self.state = "loading"
        self.error: str | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    def _open(self) -> None:
        """Load the thing; raise with a clear message when it cannot be."""
        raise NotImplementedError

    def start(self) -> None:
        """Begin loading in a background thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.load, name=f"{self.kind}-loader", daemon=True)
            self._thread.start()

    def load(self) -> None:
        """Load in this thread; failures end up in state and error, never raised."""
        try:
            self._open()
            self.state = "ready"
            log.info("%s ready: %s", self.kind, self.path)
        except Exception as exc:
            self.state = "failed"
            self.error = f"{type(exc).__name__}: {exc}"
            log.error("%s failed to load: %s", self.kind, self.error)
        finally:
            self._ready.set()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait for loading to end; True when ready."""
        self._ready.wait(timeout)
        return self.state == "ready"
