"""A companion that writes first: after a silence, inside allowed local hours, a few times a day.

Each companion turns it on for itself (its `initiative` settings over [initiative]); the
scheduler looks every check_seconds. It never takes the model from a turn (it gives way and
tries at the next look), and never writes twice in a row without an answer. The clock is
injectable, so tests run it in simulated time.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from datetime import datetime, timedelta, timezone
from typing import Callable

from companion.chat.prompt import describe_age
from companion.chat.turns import TurnService
from companion.config import Settings, parse_hours
from companion.errors import CompanionError
from companion.store import Store
from companion.store.rows import CompanionRow
from companion.store.times import utc_iso

log = logging.getLogger(__name__)


def within_hours(now: datetime, hours: str) -> bool:
    """Whether a local time falls in 'START-END' (END excluded; START > END spans midnight)."""
    start, end = parse_hours(hours)
    hour = now.hour + now.minute / 60
    return start <= hour < end if start < end else hour >= start or hour < end


def parse_time(text: str) -> datetime:
    """A stored UTC ISO time as an aware datetime."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class InitiativeScheduler:
    """Looks whether a companion should write first, and has it write."""

    def __init__(self, store: Store, turns: TurnService, settings: Settings,
                 clock: Callable[[], datetime]) -> None:
        self.store = store
        self.turns = turns
        self.settings = settings     # [initiative] as it is now (the config API changes it)
        self.clock = clock           # now, aware, in the person's timezone
        self._stop = threading.Event()

    def settings_of(self, companion: CompanionRow) -> dict:
        """A companion's initiative settings: its own over [initiative]; off unless it enabled it."""
        return {"enabled": False, **dataclasses.asdict(self.settings.initiative), **(companion.get("initiative") or {})}

    def why_not(self, companion: CompanionRow, now: datetime) -> tuple[str, int | None]:
        """("", chat id) when the companion should write first now, else (the reason, chat id)."""
        settings = self.settings_of(companion)
        if not settings["enabled"]:
            return "off", None
        chat_id = self.store.active_chat_id(companion["id"])
        last = self.store.messages(chat_id, limit=1)
        if not last or not self.store.has_user_message(chat_id):
            return "the person has not written in this chat", chat_id
        if last[-1]["ai"] and last[-1]["initiated"]:
            return "waiting for an answer", chat_id
        if now - parse_time(last[-1]["created_at"]) < timedelta(hours=settings["silence_hours"]):
            return "not silent long enough", chat_id
        if not within_hours(now, settings["hours"]):
            return "outside the allowed hours", chat_id
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        if self.store.count_initiated(companion["id"], utc_iso(midnight)) >= settings["max_per_day"]:
            return "the day's messages are written", chat_id
        return "", chat_id

    def check(self) -> dict[int, str]:
        """Look at every companion once; {companion id: what happened} ('wrote N' or why not)."""
        now = self.clock()
        outcome: dict[int, str] = {}
        for companion in self.store.companions_with_initiative():
            reason, chat_id = self.why_not(companion, now)
            if reason or chat_id is None:
                outcome[companion["id"]] = reason
                continue
            last = self.store.messages(chat_id, limit=1)[-1]
            silence = describe_age(last["created_at"], now).removesuffix(" ago")
            try:
                reply = self.turns.start_initiative(chat_id, f"{{{{user}}}} has not written for {silence}.").run()
            except CompanionError as exc:     # a turn holds the model (or it is not ready): next time
                outcome[companion["id"]] = f"deferred: {exc.message}"
                continue
            outcome[companion["id"]] = f"wrote {reply.message['id']}"
            log.info("companion %s wrote first in chat %s", companion["id"], chat_id)
        return outcome

    def start(self) -> None:
        """Look every check_seconds in a background thread, until close()."""
        def run() -> None:
            while not self._stop.wait(self.settings.initiative.check_seconds):
                try:
                    self.check()
                except Exception:
                    log.exception("writing first failed")
        threading.Thread(target=run, name="initiative", daemon=True).start()

    def close(self) -> None:
        self._stop.set()
