"""A companion that writes first, in simulated time: silence, allowed hours, the daily cap, a
turn in progress, never twice without an answer; and its settings refused when they are wrong."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from companion.chat.initiative import within_hours
from companion.config import ConfigError, load_settings, parse_hours

ZONE = ZoneInfo("Europe/Helsinki")


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A local time in the last week of November 2026 (the 23rd is a Monday)."""
    return datetime(2026, 11, day, hour, minute, tzinfo=ZONE)


def test_allowed_hours_and_hours_that_span_midnight():
    assert parse_hours("9-21") == (9, 21) and parse_hours(" 22 - 2 ") == (22, 2)
    assert within_hours(at(23, 9), "9-21") and not within_hours(at(23, 21), "9-21")
    assert within_hours(at(23, 23, 30), "22-2") and within_hours(at(23, 1), "22-2")
    assert not within_hours(at(23, 12), "22-2") and within_hours(at(23, 0), "0-24")
    for bad in ("25-3", "9", "9-9", "nine-21", "-1-5"):
        with pytest.raises(ValueError):
            parse_hours(bad)


@pytest.mark.parametrize("values, message", [
    ({"hours": "25-3"}, "between 0 and 24"),
    ({"max_per_day": -1}, "initiative.max_per_day must be"),
    ({"silence_hours": 0}, "initiative.silence_hours must be"),
])
def test_bad_settings_are_refused_at_start(tmp_path, values, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(env={}, overrides={"data_dir": str(tmp_path), "initiative": values})


def test_bad_settings_are_refused_by_the_apis_and_change_nothing(client):
    before = client.get("/api/config").get_json()["initiative"]
    for body, message in [({"hours": "25-3"}, "between 0 and 24"), ({"max_per_day": -1}, "max_per_day"),
                          ({"max_per_day": "many"}, "integer"), ({"enabled": True}, "each companion's own")]:
        response = client.put("/api/config", json={"initiative": body})
        assert response.status_code == 400 and message in response.get_json()["error"]["message"]
    assert client.get("/api/config").get_json()["initiative"] == before
    changed = client.put("/api/config", json={"initiative": {"hours": "8-22", "max_per_day": 3}}).get_json()
    assert changed["initiative"]["hours"] == "8-22" and changed["initiative"]["max_per_day"] == 3
    companion_id = client.get("/api/companions").get_json()["items"][0]["id"]
    refused = client.patch(f"/api/companions/{companion_id}", json={"initiative": {"hours": "9-25"}})
    assert refused.status_code == 400
    own = client.patch(f"/api/companions/{companion_id}",
                       json={"initiative": {"enabled": True, "silence_hours": 3}}).get_json()["initiative"]
    assert own == {"enabled": True, "silence_hours": 3, "hours": "8-22", "max_per_day": 3,
                   "check_seconds": 60.0}
    back = client.patch(f"/api/companions/{companion_id}", json={"initiative": {"silence_hours": None}})
    assert back.get_json()["initiative"]["silence_hours"] == 8.0


class Clock:
    """Simulated local time for the turn service and the scheduler."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_a_companion_writes_first_after_a_silence_inside_its_hours(services):
    clock = Clock(at(23, 14))
    services.turns.clock = clock
    store, scheduler = services.store, services.initiative
    companion_id = store.active_companion_id()
    chat_id = store.active_chat_id(companion_id)
    store.update_companion(companion_id, {"initiative": {"enabled": True, "silence_hours": 6, "hours": "9-21",
                                                         "max_per_day": 1}})
    planted = services.memory.add(companion_id, "{{user}}: I have a dentist appointment on Friday morning.",
                                  "manual", created_at="2026-11-20T12:00:00+00:00")
    assert scheduler.check() == {companion_id: "the person has not written in this chat"}
    services.turns.send(chat_id, "Okay, I have to go now. Talk to you later!")

    clock.now = at(23, 15)
    assert scheduler.check() == {companion_id: "not silent long enough"}
    clock.now = at(23, 22, 30)
    assert scheduler.check() == {companion_id: "outside the allowed hours"}

    clock.now = at(24, 9, 30)
    held = services.turns.start_raw("a turn holds the model")      # it defers to a turn in progress
    try:
        assert scheduler.check()[companion_id].startswith("deferred")
    finally:
        held.close()
    first_event = services.events.last_id
    outcome = scheduler.check()[companion_id]
    assert outcome.startswith("wrote ")
    message = store.get_message(int(outcome.split()[1]))
    assert message["ai"] and message["initiated"] and message["text"].strip()
    assert message["created_at"] == "2026-11-24T07:30:00+00:00"
    recalled = [m["id"] for m in store.get_context(message["id"])["memories"]]
    assert planted["id"] in recalled                # it drew on what it remembers
    told = [(e.kind, e.data) for e in services.events.after(first_event)]
    created = [data for kind, data in told if kind == "message.created"]
    assert created and created[0]["message"]["initiated"]
    assert ("generation.finished" in [kind for kind, _ in told])

    clock.now = at(24, 18)
    assert scheduler.check() == {companion_id: "waiting for an answer"}   # never twice in a row
    services.turns.send(chat_id, "It went fine, thanks!")
    clock.now = at(24, 20, 59)
    store.update_companion(companion_id, {"initiative": {"enabled": True, "silence_hours": 2, "hours": "9-21",
                                                         "max_per_day": 1}})
    assert scheduler.check() == {companion_id: "the day's messages are written"}   # the daily cap
    clock.now = at(25, 10)
    assert scheduler.check()[companion_id].startswith("wrote ")               # a new day
    store.update_companion(companion_id, {"initiative": {"enabled": False}})
    assert scheduler.check() == {}
