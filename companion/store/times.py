"""Moments as the store keeps them: UTC, ISO 8601 to the second, so that they sort as text."""

from __future__ import annotations

from datetime import datetime, timezone


def now_iso() -> str:
    """The current time, UTC, ISO 8601 to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def utc_iso(moment: str | datetime | None) -> str:
    """A moment as stored: UTC, ISO 8601 to the second (so that stored times sort as text);
    now when None. A naive time is taken as UTC."""
    if moment is None:
        return now_iso()
    when = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).isoformat(timespec="seconds")
