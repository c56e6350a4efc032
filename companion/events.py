"""Live events: what changed (messages, chats, companions, memories, generations, models),
kept in a bounded buffer with increasing ids for the clients of GET /api/events.

Nothing here is on the token path: tokens stay on the generating request's own stream; the
bus only hears that a generation started and ended, and the stored messages.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

Publish = Callable[[str, dict], object]   # what it returns (EventBus.publish: the event) is not used


def no_events(kind: str, data: dict) -> None:
    """A publisher that tells nobody (a store or service used without a bus)."""


@dataclass(frozen=True)
class Event:
    """One change: its id (increasing), its kind ("message.created") and its data."""
    id: int
    kind: str
    data: dict


class EventBus:
    """Publish events; let subscribers wait for those after an id. Thread-safe.

    Ids start from the clock in milliseconds, so the ids of a later run are above those of an
    earlier one: a client that comes back after a restart is told to resync, not given the
    wrong events."""

    def __init__(self, buffer_size: int, clock: Callable[[], float] = time.time) -> None:
        self._events: deque[Event] = deque(maxlen=buffer_size)
        self._last_id = int(clock() * 1000)
        self._changed = threading.Condition()
        self._closed = False
        self._subscribers = 0

    @property
    def last_id(self) -> int:
        """The id of the newest event (or the starting point when there is none yet)."""
        return self._last_id

    def publish(self, kind: str, data: dict) -> Event:
        """Add an event and wake the subscribers."""
        with self._changed:
            self._last_id += 1
            event = Event(self._last_id, kind, data)
            self._events.append(event)
            self._changed.notify_all()
        return event

    def after(self, last_id: int) -> list[Event] | None:
        """The events after an id, oldest first; None when some of them have left the buffer
        (or the id is not one of this run's): the client must resync."""
        with self._changed:
            if last_id > self._last_id:
                return None
            oldest = self._events[0].id if self._events else self._last_id + 1
            if last_id < oldest - 1:
                return None
            return [e for e in self._events if e.id > last_id]

    def wait_after(self, last_id: int, timeout: float) -> list[Event] | None:
        """Wait up to timeout for events after an id; [] when none came, None as in after()."""
        with self._changed:
            self._changed.wait_for(lambda: self._closed or self._last_id > last_id, timeout)
        return self.after(last_id)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """End every subscription (the daemon stops)."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def join(self, limit: int) -> bool:
        """Count a new subscriber; False when limit subscribers are already there."""
        with self._changed:
            if self._subscribers >= limit:
                return False
            self._subscribers += 1
            return True

    def leave(self) -> None:
        """A subscriber went away."""
        with self._changed:
            self._subscribers = max(0, self._subscribers - 1)

    @property
    def subscribers(self) -> int:
        return self._subscribers


class StateWatch:
    """Publishes the model's and the embedder's state when it changes (checked every interval;
    a loading model lives in its own thread, so its state is looked at, not called back)."""

    def __init__(self, publish: Publish, states: Callable[[], dict[str, dict]], interval: float = 1.0) -> None:
        self.publish = publish
        self.states = states
        self.interval = interval
        self._stop = threading.Event()
        self._seen: dict[str, dict] = {}

    def check(self) -> None:
        """Publish '<name>.state' for each state that differs from the last one seen."""
        for name, state in self.states().items():
            if self._seen.get(name) != state:
                if name in self._seen:
                    self.publish(f"{name}.state", state)
                self._seen[name] = state

    def start(self) -> None:
        def run() -> None:
            while not self._stop.wait(self.interval):
                self.check()
        self.check()
        threading.Thread(target=run, name="state-watch", daemon=True).start()

    def close(self) -> None:
        self._stop.set()
