"""time_window: the time words of a question as a [start, end) window, against fixed nows."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from companion.memory.time_words import TimeWindow, time_window

BERLIN = ZoneInfo("Europe/Berlin")
FRI = datetime(2026, 11, 27, 15, 0, tzinfo=BERLIN)  # Friday
SAT = datetime(2026, 11, 28, 11, 0, tzinfo=BERLIN)
SUN = datetime(2026, 11, 29, 20, 0, tzinfo=BERLIN)
MON = datetime(2026, 11, 30, 10, 0, tzinfo=BERLIN)
JAN = datetime(2027, 1, 5, 9, 0, tzinfo=BERLIN)  # Tuesday, just after the year rolled over
UTC = timezone.utc


def window(text: str, now: datetime = FRI) -> TimeWindow:
    """The window, checked for what every window must be."""
    w = time_window(text, now)
    assert w is not None, text
    assert w.start < w.end
    assert w.start <= now
    assert w.start.tzinfo is now.tzinfo and w.end.tzinfo is now.tzinfo
    assert w.phrase and w.phrase in text
    return w


def days(text: str, now: datetime = FRI) -> tuple[str, str]:
    """The window's local start and end dates as ISO strings, for windows on day boundaries."""
    w = window(text, now)
    assert w.start.time() == w.end.time() == datetime.min.time(), (w.start, w.end)
    return w.start.date().isoformat(), w.end.date().isoformat()


def hours(w: TimeWindow) -> float:
    """The real length of a window (through UTC: same-zone subtraction ignores DST)."""
    return (w.end.astimezone(UTC) - w.start.astimezone(UTC)) / timedelta(hours=1)


@pytest.mark.parametrize("text, start, end, phrase", [
    ("What did I do today?", "2026-11-27", "2026-11-28", "today"),
    ("How was this morning?", "2026-11-27", "2026-11-28", "this morning"),
    ("what did I say this afternoon", "2026-11-27", "2026-11-28", "this afternoon"),
    ("Anything planned for this evening?", "2026-11-27", "2026-11-28", "this evening"),
    ("What are we doing tonight?", "2026-11-27", "2026-11-28", "tonight"),
    ("What did I do yesterday?", "2026-11-26", "2026-11-27", "yesterday"),
    ("what about yesterday's call", "2026-11-26", "2026-11-27", "yesterday"),
    ("YESTERDAY?", "2026-11-26", "2026-11-27", "YESTERDAY"),
    ("Tell me about the day before yesterday", "2026-11-25", "2026-11-26", "the day before yesterday"),
    ("and the day before yesterday, or yesterday?", "2026-11-25", "2026-11-26",
     "the day before yesterday"),
    ("a day ago", "2026-11-26", "2026-11-27", "a day ago"),
    ("What happened 3 days ago?", "2026-11-24", "2026-11-25", "3 days ago"),
    ("three days ago", "2026-11-24", "2026-11-25", "three days ago"),
    ("ten days ago", "2026-11-17", "2026-11-18", "ten days ago"),
    ("a couple of days ago", "2026-11-24", "2026-11-26", "a couple of days ago"),
    ("a few days ago", "2026-11-23", "2026-11-26", "a few days ago"),
    ("a week ago", "2026-11-16", "2026-11-23", "a week ago"),
    ("two weeks ago", "2026-11-09", "2026-11-16", "two weeks ago"),
    ("a couple weeks ago", "2026-11-02", "2026-11-16", "a couple weeks ago"),
    ("a month ago", "2026-10-01", "2026-11-01", "a month ago"),
    ("2 months ago", "2026-09-01", "2026-10-01", "2 months ago"),
    ("a year ago", "2025-01-01", "2026-01-01", "a year ago"),
    ("this week", "2026-11-23", "2026-11-30", "this week"),
    ("what did we do last week?", "2026-11-16", "2026-11-23", "last week"),
    ("this weekend", "2026-11-21", "2026-11-23", "this weekend"),
    ("What did I do at the weekend?", "2026-11-21", "2026-11-23", "at the weekend"),
    ("over the weekend", "2026-11-21", "2026-11-23", "over the weekend"),
    ("on the weekend", "2026-11-21", "2026-11-23", "on the weekend"),
    ("What did I do last weekend?", "2026-11-21", "2026-11-23", "last weekend"),
    ("two weekends ago", "2026-11-14", "2026-11-16", "two weekends ago"),
    ("What did I do on Monday?", "2026-11-23", "2026-11-24", "on Monday"),
    ("Monday", "2026-11-23", "2026-11-24", "Monday"),
    ("the meeting last Thursday", "2026-11-26", "2026-11-27", "last Thursday"),
    ("on Friday", "2026-11-20", "2026-11-21", "on Friday"),
    ("this Friday", "2026-11-27", "2026-11-28", "this Friday"),
    ("this Wednesday", "2026-11-25", "2026-11-26", "this Wednesday"),
    ("this past Tuesday", "2026-11-24", "2026-11-25", "past Tuesday"),
    ("Monday morning", "2026-11-23", "2026-11-24", "Monday morning"),
    ("on Sunday night", "2026-11-22", "2026-11-23", "on Sunday night"),
    ("about Monday's meeting", "2026-11-23", "2026-11-24", "Monday"),
    ("What did I do in March?", "2026-03-01", "2026-04-01", "in March"),
    ("last March", "2026-03-01", "2026-04-01", "last March"),
    ("March", "2026-03-01", "2026-04-01", "March"),
    ("in December", "2025-12-01", "2026-01-01", "in December"),
    ("in November", "2026-11-01", "2026-12-01", "in November"),
    ("last November", "2025-11-01", "2025-12-01", "last November"),
    ("this month", "2026-11-01", "2026-12-01", "this month"),
    ("last month", "2026-10-01", "2026-11-01", "last month"),
    ("in May", "2026-05-01", "2026-06-01", "in May"),
    ("last may", "2026-05-01", "2026-06-01", "last may"),
    ("at the end of May", "2026-05-01", "2026-06-01", "of May"),
    ("May 2026", "2026-05-01", "2026-06-01", "May 2026"),
    ("In March 2025", "2025-03-01", "2025-04-01", "In March 2025"),
    ("on 3 March", "2026-03-03", "2026-03-04", "on 3 March"),
    ("the 3rd of March", "2026-03-03", "2026-03-04", "the 3rd of March"),
    ("on the 3rd of March", "2026-03-03", "2026-03-04", "on the 3rd of March"),
    ("March 3", "2026-03-03", "2026-03-04", "March 3"),
    ("on March 3rd", "2026-03-03", "2026-03-04", "on March 3rd"),
    ("on 3 May", "2026-05-03", "2026-05-04", "on 3 May"),
    ("May 3rd", "2026-05-03", "2026-05-04", "May 3rd"),
    ("Sept 9", "2026-09-09", "2026-09-10", "Sept 9"),
    ("3 March 2025", "2025-03-03", "2025-03-04", "3 March 2025"),
    ("March 3, 2025", "2025-03-03", "2025-03-04", "March 3, 2025"),
    ("on December 25", "2025-12-25", "2025-12-26", "on December 25"),
    ("on 29 February", "2024-02-29", "2024-03-01", "on 29 February"),
    ("on the 3rd", "2026-11-03", "2026-11-04", "on the 3rd"),
    ("on the 27th", "2026-11-27", "2026-11-28", "on the 27th"),
    ("on the 28th", "2026-10-28", "2026-10-29", "on the 28th"),
    ("on the 31st", "2026-10-31", "2026-11-01", "on the 31st"),
    ("what was on 2026-03-05?", "2026-03-05", "2026-03-06", "2026-03-05"),
    ("last year", "2025-01-01", "2026-01-01", "last year"),
    ("this year", "2026-01-01", "2027-01-01", "this year"),
    ("in 2024", "2024-01-01", "2025-01-01", "in 2024"),
    ("during 1999", "1999-01-01", "2000-01-01", "during 1999"),
    ("at Christmas", "2025-12-25", "2025-12-26", "Christmas"),
    ("Christmas Day", "2025-12-25", "2025-12-26", "Christmas Day"),
    ("Christmas Eve", "2025-12-24", "2025-12-25", "Christmas Eve"),
    ("New Year's Eve", "2025-12-31", "2026-01-01", "New Year's Eve"),
    ("new years day", "2026-01-01", "2026-01-02", "new years day"),
    ("the past 3 days", "2026-11-24", "2026-11-28", "the past 3 days"),
    ("in the past week", "2026-11-20", "2026-11-28", "in the past week"),
    ("the last few days", "2026-11-23", "2026-11-28", "the last few days"),
    ("the past month", "2026-10-27", "2026-11-28", "the past month"),
])
def test_windows_on_a_friday(text: str, start: str, end: str, phrase: str) -> None:
    assert days(text) == (start, end)
    assert window(text).phrase == phrase


@pytest.mark.parametrize("text", [
    "What's my dog called?",
    "What time is it?",
    "Do you like mornings?",
    "What keeps me busy on Sunday nights?",
    "What do I do on Mondays?",
    "mondays are hard",
    "I go running every Monday",
    "each Friday we meet",
    "I may go later",
    "May I ask you something?",
    "Maybe tomorrow",
    "What did we march for?",
    "we were marching",
    "next Monday",
    "next month",
    "next March",
    "tomorrow",
    "in a few days",
    "in 2027",
    "in 1950",
    "this December",
    "on 2026-12-05",
    "on the 3rd floor",
    "for the 2nd time",
    "I have 3 dogs and 2 cats",
    "every day",
    "Mondayitis",
    "",
])
def test_no_window(text: str) -> None:
    assert time_window(text, FRI) is None


@pytest.mark.parametrize("text, start, end", [
    ("on Monday", "2026-11-23", "2026-11-24"),
    ("last Monday", "2026-11-23", "2026-11-24"),
    ("this Monday", "2026-11-30", "2026-12-01"),
    ("Sunday", "2026-11-29", "2026-11-30"),
    ("this weekend", "2026-11-28", "2026-11-30"),
    ("last weekend", "2026-11-28", "2026-11-30"),
    ("this week", "2026-11-30", "2026-12-07"),
    ("last week", "2026-11-23", "2026-11-30"),
    ("a week ago", "2026-11-23", "2026-11-30"),
])
def test_windows_on_a_monday(text: str, start: str, end: str) -> None:
    assert days(text, MON) == (start, end)


@pytest.mark.parametrize("text, now, start, end", [
    ("this weekend", SAT, "2026-11-28", "2026-11-30"),
    ("last weekend", SAT, "2026-11-21", "2026-11-23"),
    ("this weekend", SUN, "2026-11-28", "2026-11-30"),
    ("over the weekend", SUN, "2026-11-28", "2026-11-30"),
    ("last weekend", SUN, "2026-11-21", "2026-11-23"),
    ("a weekend ago", SUN, "2026-11-21", "2026-11-23"),
    ("two weekends ago", SUN, "2026-11-14", "2026-11-16"),
    ("on Saturday", SUN, "2026-11-28", "2026-11-29"),
    ("on Sunday", SUN, "2026-11-22", "2026-11-23"),
    ("this Sunday", SUN, "2026-11-29", "2026-11-30"),
    ("this week", SUN, "2026-11-23", "2026-11-30"),
])
def test_weekends_and_weekdays_at_the_weekend(text: str, now: datetime, start: str, end: str) -> None:
    assert days(text, now) == (start, end)


@pytest.mark.parametrize("text, start, end", [
    ("yesterday", "2027-01-04", "2027-01-05"),
    ("last month", "2026-12-01", "2027-01-01"),
    ("in December", "2026-12-01", "2027-01-01"),
    ("3 months ago", "2026-10-01", "2026-11-01"),
    ("last year", "2026-01-01", "2027-01-01"),
    ("this year", "2027-01-01", "2028-01-01"),
    ("last week", "2026-12-28", "2027-01-04"),
    ("a few days ago", "2027-01-01", "2027-01-04"),
    ("on the 10th", "2026-12-10", "2026-12-11"),
    ("on the 5th", "2027-01-05", "2027-01-06"),
    ("in January", "2027-01-01", "2027-02-01"),
    ("last January", "2026-01-01", "2026-02-01"),
    ("March", "2026-03-01", "2026-04-01"),
    ("May 3rd", "2026-05-03", "2026-05-04"),
    ("Christmas", "2026-12-25", "2026-12-26"),
    ("New Year's Day", "2027-01-01", "2027-01-02"),
    ("in 2027", "2027-01-01", "2028-01-01"),
])
def test_rollover_in_early_january(text: str, start: str, end: str) -> None:
    assert days(text, JAN) == (start, end)


def test_last_night_is_yesterday_evening_to_this_morning() -> None:
    w = window("What did we talk about last night?")
    assert (w.start, w.end) == (datetime(2026, 11, 26, 18, tzinfo=BERLIN),
                                datetime(2026, 11, 27, 6, tzinfo=BERLIN))
    assert w.phrase == "last night"
    assert hours(w) == 12


def test_yesterday_across_spring_forward_is_23_hours() -> None:
    now = datetime(2026, 3, 30, 12, tzinfo=BERLIN)  # clocks went forward on Sunday 29 March
    w = window("yesterday", now)
    assert w.start.isoformat() == "2026-03-29T00:00:00+01:00"
    assert w.end.isoformat() == "2026-03-30T00:00:00+02:00"
    assert hours(w) == 23
    assert hours(window("last weekend", now)) == 47
    assert hours(window("today", datetime(2026, 3, 29, 12, tzinfo=BERLIN))) == 23
    march = window("in March", now)
    assert (march.start.isoformat(), march.end.isoformat()) == (
        "2026-03-01T00:00:00+01:00", "2026-04-01T00:00:00+02:00")


def test_yesterday_across_fall_back_is_25_hours() -> None:
    now = datetime(2026, 10, 26, 12, tzinfo=BERLIN)  # clocks went back on Sunday 25 October
    w = window("yesterday", now)
    assert w.start.isoformat() == "2026-10-25T00:00:00+02:00"
    assert w.end.isoformat() == "2026-10-26T00:00:00+01:00"
    assert hours(w) == 25
    assert hours(window("last night", now)) == 12
    assert hours(window("last night", datetime(2026, 10, 25, 12, tzinfo=BERLIN))) == 13


def test_a_midnight_that_does_not_exist_becomes_the_first_real_instant() -> None:
    santiago = ZoneInfo("America/Santiago")  # 6 September 2026 starts at 01:00 (-03)
    w = window("yesterday", datetime(2026, 9, 7, 12, tzinfo=santiago))
    assert w.start.isoformat() == "2026-09-06T01:00:00-03:00"
    assert w.end.isoformat() == "2026-09-07T00:00:00-03:00"
    assert hours(w) == 23


def test_fixed_offset_timezone() -> None:
    tz = timezone(timedelta(hours=-5))
    w = window("yesterday", datetime(2026, 11, 27, 1, 30, tzinfo=tz))
    assert w.start.isoformat() == "2026-11-26T00:00:00-05:00"
    assert w.end.isoformat() == "2026-11-27T00:00:00-05:00"


@pytest.mark.parametrize("text, phrase", [
    ("Was it yesterday or last week?", "yesterday"),
    ("last week, on Tuesday I think", "last week"),
    ("Every Monday I run; what did I do yesterday?", "yesterday"),
    ("I may have seen it in May", "in May"),
    ("on Sunday nights, and last Sunday night?", "last Sunday night"),
    ("March 3rd or so", "March 3rd"),
])
def test_the_first_phrase_in_the_text_wins(text: str, phrase: str) -> None:
    assert window(text).phrase == phrase


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError):
        time_window("yesterday", datetime(2026, 11, 27, 15))


def test_as_json_and_frozen() -> None:
    w = window("yesterday")
    assert w.as_json() == {"start": "2026-11-26T00:00:00+01:00", "end": "2026-11-27T00:00:00+01:00",
                           "phrase": "yesterday"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        w.phrase = "today"  # type: ignore[misc]
