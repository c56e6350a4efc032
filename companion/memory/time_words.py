"""The time words of a question ("last weekend", "on Monday", "in March") as a date window.

Pure functions, standard library only. A window is [start, end) in the timezone of `now`, with days
starting at local midnight (a day across a DST change lasts 23 or 25 hours). A window never starts
after `now` (people ask what happened: a phrase naming only the future gives none) nor before 1970.
When several phrases match, the one whose core words come first wins, and at the same place the
longer one ("March 3rd" over "March"); "last", "on", "in"... belong to the phrase, not its place.

Decisions: "last night" is yesterday 18:00 to today 06:00; "a couple of" means 2-3 back, "a few"
2-4, "several" 3-7; "N weeks ago" is the Monday-to-Monday week N back, "N months/years ago" that
calendar month/year; "the past/last N days" and "the past week" are rolling, up to tomorrow 00:00;
"on the 3rd" is not taken when a noun follows ("on the 3rd floor"); a bare "May" is never the month
(it needs "in", "last", "of", ... or a day or year) and a bare "march" only when capitalised;
plural or habitual weekdays ("on Mondays", "every Monday", "Sunday nights") and "next ..." give none.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Callable

_DAY = timedelta(days=1)
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december")
_NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
            "eleven", "twelve")
_FUZZY = {"couple": (2, 3), "few": (2, 4), "several": (3, 7)}

_MONTH = "|".join(_MONTHS)
_MONTH_OR_ABBR = _MONTH + r"|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec"
_COUNT = (r"(?P<n>\d{1,3}|an?|" + "|".join(_NUMBERS[1:])
          + r"|(?:a\s+)?couple(?:\s+of)?|(?:a\s+)?few|several)")
_ORD = r"(?:st|nd|rd|th)?"
_YEAR = r"(?:,?\s+(?P<year>\d{4})\b)?"
_ORDINAL_NOUNS = (r"floor|time|times|place|day|week|month|year|grade|try|attempt|round|page|"
                  r"chapter|level|step|one|row|line|lap|person|date|draft|episode|season")


@dataclass(frozen=True)
class TimeWindow:
    """A span of time a question names: [start, end), aware datetimes in the person's timezone."""

    start: datetime
    end: datetime
    phrase: str  # the words it came from, as written in the question, e.g. "last weekend"

    def as_json(self) -> dict:
        """{"start": iso8601, "end": iso8601, "phrase": str}."""
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "phrase": self.phrase}


def _month(year: int, month: int, k: int = 0) -> date:
    """The first day of the month k months after year-month."""
    i = year * 12 + month - 1 + k
    return date(i // 12, i % 12 + 1, 1)


def _month_number(word: str) -> int:
    return next(i for i, name in enumerate(_MONTHS, 1) if name[:3] == word[:3].lower())


def _monday(today: date) -> date:
    return today - timedelta(days=today.weekday())


def _saturday(today: date, done: bool) -> date:
    """The Saturday of the latest weekend that has started (done: that is over)."""
    saturday = today - timedelta(days=(today.weekday() - 5) % 7)
    return saturday - 7 * _DAY if done and today.weekday() >= 5 else saturday


def _count(word: str) -> tuple[int, int]:
    """How many back a count word means, as an inclusive (fewest, most) range."""
    words = word.lower().split()
    fuzzy = next((_FUZZY[w] for w in words if w in _FUZZY), None)
    if fuzzy:
        return fuzzy
    w = words[0]
    n = int(w) if w.isdigit() else 1 if w in ("a", "an") else _NUMBERS.index(w)
    return n, n


def _recent(today: date, month: int, day: int) -> date:
    """The most recent month/day on or before today."""
    for year in range(today.year, today.year - 9, -1):
        try:
            d = date(year, month, day)
        except ValueError:
            continue
        if d <= today:
            return d
    raise ValueError(f"no such date {month}/{day}")


def _day_of(m: re.Match, today: date) -> tuple[date, date]:
    """A day named by the groups day, mon (name) and the optional year."""
    month, day = _month_number(m["mon"]), int(m["day"])
    d = date(int(m["year"]), month, day) if m["year"] else _recent(today, month, day)
    return d, d + _DAY


def _ago(m: re.Match, today: date) -> tuple[date, date]:
    lo, hi = _count(m["n"])
    unit = m["unit"].lower()
    if unit == "day":
        return today - hi * _DAY, today - (lo - 1) * _DAY
    if unit == "week":
        monday = _monday(today)
        return monday - 7 * hi * _DAY, monday - 7 * (lo - 1) * _DAY
    if unit == "weekend":
        saturday = _saturday(today, done=True)
        return saturday - 7 * (hi - 1) * _DAY, saturday - (7 * (lo - 1) - 2) * _DAY
    if unit == "month":
        return _month(today.year, today.month, -hi), _month(today.year, today.month, 1 - lo)
    return date(today.year - hi, 1, 1), date(today.year - lo + 1, 1, 1)


def _rolling(m: re.Match, today: date) -> tuple[date, date]:
    unit = (m["unit"] or m["unit1"]).lower()
    n = _count(m["n"])[1] if m["n"] else 1
    if unit in ("day", "week"):
        return today - n * (7 if unit == "week" else 1) * _DAY, today + _DAY
    first = _month(today.year, today.month, -n * (1 if unit == "month" else 12))
    day = min(today.day, calendar.monthrange(first.year, first.month)[1])
    return first.replace(day=day), today + _DAY


def _this_last(m: re.Match, today: date) -> tuple[date, date]:
    back = int(m["mod"].lower() == "last")
    unit = m["unit"].lower()
    if unit == "week":
        monday = _monday(today) - 7 * back * _DAY
        return monday, monday + 7 * _DAY
    if unit == "month":
        return _month(today.year, today.month, -back), _month(today.year, today.month, 1 - back)
    return date(today.year - back, 1, 1), date(today.year - back + 1, 1, 1)


def _weekend(m: re.Match, today: date) -> tuple[date, date]:
    saturday = _saturday(today, done=m["mod"].lower() in ("last", "past"))
    return saturday, saturday + 2 * _DAY


def _weekday(m: re.Match, today: date) -> tuple[date, date] | None:
    mod = (m["mod"] or "").lower()
    if m["plural"] or m["habit"] or mod in ("next", "every", "each"):
        return None  # habitual or future
    wd = _WEEKDAYS.index(m["core"].lower())
    if mod == "this":
        d = _monday(today) + wd * _DAY  # may be in the future: then dropped
    else:
        d = today - ((today.weekday() - wd) % 7 or 7) * _DAY
    return d, d + _DAY


def _month_only(m: re.Match, today: date) -> tuple[date, date] | None:
    mod, word = (m["mod"] or "").lower(), m["core"]
    if mod in ("next", "every", "each"):
        return None
    if not mod and (word.lower() == "may" or word == "march"):
        return None  # "may I ask", "we march on"
    month = _month_number(word)
    year = today.year if month <= today.month else today.year - 1
    if mod == "last" and month == today.month:
        year -= 1
    if mod == "this":
        year = today.year  # may be in the future: then dropped
    return _month(year, month), _month(year, month, 1)


def _month_year(m: re.Match, today: date) -> tuple[date, date]:
    year, month = int(m["year"]), _month_number(m["mon"])
    return _month(year, month), _month(year, month, 1)


def _nth(m: re.Match, today: date) -> tuple[date, date]:
    """'on the 3rd': this month's if not in the future, else the latest month that has one."""
    for k in range(0, -13, -1):
        first = _month(today.year, today.month, k)
        try:
            d = first.replace(day=int(m["day"]))
        except ValueError:
            continue
        if d <= today:
            return d, d + _DAY
    raise ValueError("no such day of the month")


def _year(m: re.Match, today: date) -> tuple[date, date]:
    year = int(m["core"])  # one before 1970 or after this year is dropped by time_window
    return date(year, 1, 1), date(year + 1, 1, 1)


def _holiday(m: re.Match, today: date) -> tuple[date, date]:
    words = m["core"].lower()
    month, day = ((1, 1) if words.endswith("day") and words.startswith("new")
                  else (12, 31) if words.startswith("new")
                  else (12, 24) if words.endswith("eve") else (12, 25))
    d = _recent(today, month, day)
    return d, d + _DAY


def _fixed(offset: int) -> Callable[[re.Match, date], tuple[date, date]]:
    return lambda m, today: (today - offset * _DAY, today - (offset - 1) * _DAY)


def _last_night(m: re.Match, today: date) -> tuple[datetime, datetime]:
    return (datetime.combine(today - _DAY, time(18)), datetime.combine(today, time(6)))


def _iso(m: re.Match, today: date) -> tuple[date, date]:
    d = date(int(m["y"]), int(m["m"]), int(m["d"]))
    return d, d + _DAY


# (pattern, handler): a handler gets the match and today's local date and returns (start, end) as
# local dates (their midnights) or naive local datetimes, or None when the words name no window.
# Order matters only for ties (same position, same length): the earlier rule wins.
_RULES: list[tuple[re.Pattern, Callable]] = [(re.compile(p, re.IGNORECASE), h) for p, h in [
    (r"\b(?:the\s+)?day\s+before\s+yesterday\b", _fixed(2)),
    (r"\byesterday\b", _fixed(1)),
    (r"\blast\s+night\b", _last_night),
    (r"\b(?:today|tonight|this\s+(?:morning|afternoon|evening))\b", _fixed(0)),
    (rf"\b{_COUNT}\s+(?P<unit>day|weekend|week|month|year)s?\s+ago\b", _ago),
    (rf"\b(?:(?:in\s+)?the\s+)?(?:(?:last|past)\s+{_COUNT}\s+(?P<unit>day|week|month|year)s?"
     r"|past\s+(?P<unit1>day|week|month|year))\b", _rolling),
    (r"\b(?P<mod>this|last)\s+(?P<unit>week|month|year)\b", _this_last),
    (r"\b(?P<mod>this|last|past|at\s+the|over\s+the|on\s+the)\s+weekend\b", _weekend),
    (rf"\b(?:(?P<mod>last|this|next|every|each|on|past)\s+)?(?P<core>{'|'.join(_WEEKDAYS)})"
     r"(?P<plural>s)?\b(?:\s+(?:morning|afternoon|evening|night)(?P<habit>s)?\b)?", _weekday),
    (rf"\b(?:(?P<mod>last|this|next|every|each|in|during|of|early|late)\s+)?(?P<core>{_MONTH})\b",
     _month_only),
    (rf"\b(?:(?:in|during)\s+)?(?P<core>(?P<mon>{_MONTH_OR_ABBR})\.?,?\s+(?P<year>\d{{4}}))\b",
     _month_year),
    (rf"\b(?:on\s+)?(?:the\s+)?(?P<core>(?P<day>\d{{1,2}}){_ORD}\s+(?:of\s+)?"
     rf"(?P<mon>{_MONTH_OR_ABBR})\b\.?{_YEAR})", _day_of),
    (rf"\b(?:on\s+)?(?P<core>(?P<mon>{_MONTH_OR_ABBR})\.?\s+(?:the\s+)?(?P<day>\d{{1,2}}){_ORD}\b"
     rf"{_YEAR})", _day_of),
    (r"\b(?P<core>(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2}))\b", _iso),
    (rf"\bon\s+the\s+(?P<core>(?P<day>\d{{1,2}})(?:st|nd|rd|th))\b(?!\s+(?:{_ORDINAL_NOUNS})\b)",
     _nth),
    (r"\b(?:in|during)\s+(?P<core>\d{4})\b", _year),
    (r"\b(?P<core>christmas\s+eve|christmas(?:\s+day)?|new\s+year(?:['’]?s)?\s+(?:eve|day))\b",
     _holiday),
]]


def _local(value: date, tz) -> datetime:
    """A local date (its midnight) or a naive local datetime, as an aware datetime in tz."""
    if not isinstance(value, datetime):
        value = datetime.combine(value, time(0))
    # Through UTC and back: a wall time that does not exist (a DST gap) becomes a real one.
    return value.replace(tzinfo=tz).astimezone(timezone.utc).astimezone(tz)


def time_window(text: str, now: datetime) -> TimeWindow | None:
    """The window the text's time words name, relative to now (an aware datetime in the person's
    local timezone); None when it names none."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    tz, today = now.tzinfo, now.date()
    best: tuple[int, int, TimeWindow] | None = None
    for pattern, handler in _RULES:
        for m in pattern.finditer(text):
            try:
                span = handler(m, today)
            except (ValueError, OverflowError):  # "February 30", "999 years ago"
                continue
            if span is None:
                continue
            start, end = _local(span[0], tz), _local(span[1], tz)
            if not start < end or start > now or start.year < 1970:
                continue
            at = m.start("core") if "core" in pattern.groupindex else m.start()
            key = (at, at - m.end())
            if best is None or key < best[:2]:
                best = (*key, TimeWindow(start, end, m.group(0)))
    return best[2] if best else None
