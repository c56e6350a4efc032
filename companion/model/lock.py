"""The model serves one generation at a time.

A turn waits for the model up to [server] queue_timeout, else it is told to come back (429).
Background work (summaries) takes the model only when no turn wants it, and is asked to stop
the moment one does (it stops within one token).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

from companion.errors import Busy

PREEMPT_WAIT = 30.0   # seconds a turn waits for background work to stop (it stops within one token)


class ModelLock:
    """Who holds the model now: a generation (with the event that stops it), background work, or nobody."""

    def __init__(self, queue_timeout: float) -> None:
        self.queue_timeout = queue_timeout
        self._lock = threading.Lock()
        self._running: threading.Event | None = None      # the stop event of the generation holding it
        self._background: threading.Event | None = None   # the stop event of background work holding it
        self._waiting = 0                                   # turns waiting for the model
        self._waiting_lock = threading.Lock()
        self._let_go = threading.Condition()               # notified whenever the model is let go

    def acquire(self, wait: bool = True) -> None:
        """Take the model for a generation: at once, after background work stops, or within
        queue_timeout; Busy (429) when another generation keeps it. Without wait: only when
        nothing holds or wants it (a companion writing first gives way to everything)."""
        if not wait:
            if self._waiting or not self._lock.acquire(False):
                raise Busy("the model is busy", retry_after=2)
            return
        acquired = self._lock.acquire(False)
        if not acquired:
            with self._waiting_lock:
                self._waiting += 1            # background work does not take the model before us
            try:
                background = self._background
                if background is not None:     # a summary: it stops within one step
                    background.set()
                patience = max(self.queue_timeout, PREEMPT_WAIT if background is not None else 0.0)
                acquired = patience > 0 and self._lock.acquire(timeout=patience)
            finally:
                with self._waiting_lock:
                    self._waiting -= 1
        if not acquired:
            raise Busy("another reply is being generated; try again shortly", retry_after=2)

    def release(self) -> None:
        """Give back the model taken by acquire()."""
        self._running = None
        self._release()

    def running(self, stop: threading.Event) -> None:
        """Name the event that stops the generation holding the model (abort() sets it)."""
        self._running = stop

    def abort(self) -> bool:
        """Stop the running generation after the current token; True when one was running."""
        stop = self._running
        if stop is None:
            return False
        stop.set()
        return True

    def hold_for_background(self) -> threading.Event | None:
        """Take the model for background work when no turn holds or wants it; returns the event
        that asks the work to stop (a turn sets it), or None when the model is busy."""
        if self._waiting or not self._lock.acquire(False):
            return None
        if self._waiting:               # a turn came between the check and the lock: it goes first
            self._lock.release()
            return None
        self._background = threading.Event()
        return self._background

    def release_background(self) -> None:
        """Give back the model taken by hold_for_background."""
        self._background = None
        self._release()

    def _release(self) -> None:
        self._lock.release()
        with self._let_go:
            self._let_go.notify_all()

    def stop_background(self) -> None:
        """Ask background work holding the model to stop (it stops within one step)."""
        background = self._background
        if background is not None:
            background.set()

    @property
    def background_running(self) -> bool:
        """Whether background work holds the model now."""
        return self._background is not None

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing holds the model (woken when it is let go; the model is not taken,
        so a turn that comes meanwhile never finds it held by the waiter); False after the timeout."""
        with self._let_go:
            return self._let_go.wait_for(lambda: not self._lock.locked(), timeout=timeout)

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the model for a moment (to swap it), waiting as long as it takes."""
        self._lock.acquire()
        try:
            yield
        finally:
            self._release()
