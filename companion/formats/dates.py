"""Dates as chat files and clients write them, turned into the stored form (UTC ISO 8601)."""

from __future__ import annotations

import re
from datetime import datetime, timezone

ST_HUMAN = re.compile(  # SillyTavern's send_date: "November 27, 2026 3:04pm"
    r"^\s*([A-Za-z]+)\s+(\d{1,2}),\s*(\d{4})\s+(\d{1,2}):(\d{2})\s*([ap]m)\s*$", re.IGNORECASE)
ST_FILE = re.compile(  # SillyTavern's create_date and file names: "2026-11-27@15h04m05s", "... @15h 04m 05s 123ms"
    r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})\s*@\s*(\d{1,2})h\s*(\d{1,2})m\s*(\d{1,2})s(?:\s*\d+ms)?\s*$")
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
          "october", "november", "december")


def parse_date(value: object) -> str | None:
    """A message's or memory's date as stored (UTC, ISO 8601 to the second), or None when the
    value is empty or not a date: ISO 8601 (a time without a zone is UTC), seconds or
    milliseconds since 1970, and SillyTavern's "November 27, 2026 3:04pm" and
    "2026-11-27@15h04m05s" (taken as UTC: they carry no zone)."""
    if value is None or isinstance(value, bool) or value == "":
        return None
    when = None
    if isinstance(value, (int, float)) or (isinstance(value, str) and re.fullmatch(r"\s*\d{9,14}(\.\d+)?\s*", value)):
        number = float(value)
        when = datetime.fromtimestamp(number / 1000 if number > 1e11 else number, timezone.utc)
    elif isinstance(value, str):
        text = value.strip()
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            when = _sillytavern(text)
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).isoformat(timespec="seconds")


def _sillytavern(text: str) -> datetime | None:
    try:
        match = ST_HUMAN.match(text)
        if match and match.group(1).lower() in MONTHS:
            month, day, year, hour, minute, half = match.groups()
            hour = int(hour) % 12 + (12 if half.lower() == "pm" else 0)
            return datetime(int(year), MONTHS.index(month.lower()) + 1, int(day), hour, int(minute))
        match = ST_FILE.match(text)
        if match:
            year, month, day, hour, minute, second = map(int, match.groups())
            return datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None
    return None
