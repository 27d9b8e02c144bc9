"""Window arithmetic: table-driven cases (DST in Berlin, month and year ends) and properties that must
hold in any zone, including ones whose midnight falls in a DST gap or repeats."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policyrouter.registry import Window
from policyrouter.state.windows import calendar_bounds, current_span, fixed_bounds

BERLIN = ZoneInfo("Europe/Berlin")
UTC = timezone.utc


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


CALENDAR_CASES = [
    # name, instant (UTC), expected start (UTC), expected end (UTC), hours long
    ("day", utc(2024, 3, 15, 10), utc(2024, 3, 14, 23), utc(2024, 3, 15, 23), 24),
    # last Sunday of March: clocks jump 02:00 → 03:00, the day is 23 hours
    ("day", utc(2024, 3, 31, 12), utc(2024, 3, 30, 23), utc(2024, 3, 31, 22), 23),
    # last Sunday of October: 03:00 → 02:00, the day is 25 hours
    ("day", utc(2024, 10, 27, 12), utc(2024, 10, 26, 22), utc(2024, 10, 27, 23), 25),
    # 00:30 local on the October Sunday is still that day; 23:30 local is too (24h after 00:30)
    ("day", utc(2024, 10, 26, 22, 30), utc(2024, 10, 26, 22), utc(2024, 10, 27, 23), 25),
    ("day", utc(2024, 10, 27, 22, 30), utc(2024, 10, 26, 22), utc(2024, 10, 27, 23), 25),
    # the first instant of a day belongs to it, the last before midnight to the day before
    ("day", utc(2024, 3, 14, 23), utc(2024, 3, 14, 23), utc(2024, 3, 15, 23), 24),
    ("day", utc(2024, 3, 14, 22, 59, 59), utc(2024, 3, 13, 23), utc(2024, 3, 14, 23), 24),
    # weeks start on Monday; the week holding the March change is an hour short
    ("week", utc(2024, 3, 31, 12), utc(2024, 3, 24, 23), utc(2024, 3, 31, 22), 167),
    ("week", utc(2024, 10, 27, 12), utc(2024, 10, 20, 22), utc(2024, 10, 27, 23), 169),
    ("week", utc(2024, 3, 31, 22), utc(2024, 3, 31, 22), utc(2024, 4, 7, 22), 168),
    # months: in Berlin, March starts in winter time and ends in summer time
    ("month", utc(2024, 3, 31, 21, 59, 59), utc(2024, 2, 29, 23), utc(2024, 3, 31, 22), 743),
    ("month", utc(2024, 3, 31, 22), utc(2024, 3, 31, 22), utc(2024, 4, 30, 22), 720),
    ("month", utc(2024, 2, 10), utc(2024, 1, 31, 23), utc(2024, 2, 29, 23), 29 * 24),  # leap year
    ("month", utc(2023, 2, 10), utc(2023, 1, 31, 23), utc(2023, 2, 28, 23), 28 * 24),
    ("month", utc(2024, 12, 31, 22, 59), utc(2024, 11, 30, 23), utc(2024, 12, 31, 23), 31 * 24),
    ("month", utc(2024, 12, 31, 23), utc(2024, 12, 31, 23), utc(2025, 1, 31, 23), 31 * 24),  # new year
    ("month", utc(2024, 10, 31, 12), utc(2024, 9, 30, 22), utc(2024, 10, 31, 23), 31 * 24 + 1),
]


@pytest.mark.parametrize(("name", "at", "start", "end", "hours"), CALENDAR_CASES)
def test_calendar_windows_in_berlin(name: str, at: datetime, start: datetime, end: datetime, hours: int) -> None:
    got_start, got_end = calendar_bounds(name, at, BERLIN)
    assert (got_start, got_end) == (start, end)
    assert (got_end - got_start) == timedelta(hours=hours)
    # the boundaries are local midnights
    for t in (got_start, got_end):
        local = t.astimezone(BERLIN)
        assert (local.hour, local.minute) == (0, 0)


def test_calendar_windows_in_utc_are_plain() -> None:
    assert calendar_bounds("day", utc(2024, 3, 31, 12), UTC) == (utc(2024, 3, 31), utc(2024, 4, 1))
    assert calendar_bounds("week", utc(2024, 3, 31, 12), UTC) == (utc(2024, 3, 25), utc(2024, 4, 1))
    assert calendar_bounds("month", utc(2024, 3, 31, 12), UTC) == (utc(2024, 3, 1), utc(2024, 4, 1))


FIXED_CASES = [
    # seconds, anchor, instant, expected start
    (60, None, utc(2024, 3, 15, 10, 0, 59), utc(2024, 3, 15, 10, 0)),
    (60, None, utc(2024, 3, 15, 10, 1), utc(2024, 3, 15, 10, 1)),
    (5 * 3600, None, utc(2024, 3, 15, 10), utc(2024, 3, 15, 7)),  # multiples of 5h since the epoch
    (5 * 3600, utc(2024, 3, 15, 9), utc(2024, 3, 15, 10), utc(2024, 3, 15, 9)),
    (5 * 3600, utc(2024, 3, 15, 9), utc(2024, 3, 15, 8, 59), utc(2024, 3, 15, 4)),  # before the anchor
    # a naive anchor is local time: 09:00 Berlin = 08:00 UTC in March
    (5 * 3600, datetime(2024, 3, 15, 9), utc(2024, 3, 15, 12, 59), utc(2024, 3, 15, 8)),
    # fixed windows ignore DST: the 1h window at the March change is 3600 s
    (3600, None, utc(2024, 3, 31, 1, 30), utc(2024, 3, 31, 1)),
    # a naive anchor in winter counts in real time into summer: 09:00 CET is 08:00 UTC, so 30m
    # windows start at :00 and :30 UTC (12:00 CEST), not an hour away from the instant
    (1800, datetime(2024, 1, 1, 9), utc(2024, 7, 1, 10, 5), utc(2024, 7, 1, 10)),
    (5 * 3600, datetime(2024, 1, 1, 9), utc(2024, 7, 1, 14, 30), utc(2024, 7, 1, 10)),  # 874 × 5h on
]


@pytest.mark.parametrize(("seconds", "anchor", "at", "start"), FIXED_CASES)
def test_fixed_windows(seconds: float, anchor: datetime | None, at: datetime, start: datetime) -> None:
    got_start, got_end = fixed_bounds(seconds, anchor, at, BERLIN)
    assert got_start == start
    assert got_end - got_start == timedelta(seconds=seconds)


def test_window_keys_name_the_occurrence() -> None:
    month = Window("month")
    a = current_span(month, utc(2024, 3, 31, 21, 59), BERLIN, "r")
    b = current_span(month, utc(2024, 3, 31, 22, 0), BERLIN, "r")
    assert a.key != b.key and a.key.startswith("month@") and b.key.startswith("month@")
    assert current_span(month, utc(2024, 3, 2), BERLIN, "r").key == a.key
    assert a.end == b.start
    assert a.end is not None and a.end.tzinfo is BERLIN  # shown in the registry's zone
    run = current_span(Window("run"), utc(2024, 3, 2), BERLIN, "nightly-7")
    assert (run.key, run.start, run.end) == ("run:nightly-7", None, None)
    assert run.seconds_left(utc(2024, 3, 2)) is None
    assert a.seconds_left(utc(2024, 3, 31, 21, 0)) == 3600


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        current_span(Window("day"), datetime(2024, 1, 1), BERLIN, "r")


# Zones chosen for awkward midnights: Havana repeats 00:00-01:00 in autumn and skips it in spring;
# Santiago jumps from 24:00 to 01:00; São Paulo (until 2019) fell back from 00:00 to 23:00;
# Lord Howe shifts by 30 minutes; Kathmandu has a +05:45 offset.
ZONES = [
    "Europe/Berlin",
    "America/Havana",
    "America/Santiago",
    "America/Sao_Paulo",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "UTC",
]
instants = st.datetimes(min_value=datetime(1995, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC))


@settings(max_examples=400, deadline=None)
@given(at=instants, zone=st.sampled_from(ZONES), name=st.sampled_from(["day", "week", "month"]))
def test_calendar_window_properties(at: datetime, zone: str, name: str) -> None:
    tz = ZoneInfo(zone)
    start, end = calendar_bounds(name, at, tz)
    assert start <= at < end
    # every instant of the window maps to the same window, and the next one starts at its end
    assert calendar_bounds(name, start, tz) == (start, end)
    assert calendar_bounds(name, end - timedelta(microseconds=1), tz) == (start, end)
    assert calendar_bounds(name, end, tz)[0] == end
    # the window holds the instant's local date, and its length is about right
    local_day = at.astimezone(tz).date()
    assert start.astimezone(tz).date() <= local_day < end.astimezone(tz).date()
    days = {"day": (1, 1), "week": (7, 7), "month": (28, 31)}[name]
    assert timedelta(days=days[0], hours=-2) <= end - start <= timedelta(days=days[1], hours=2)


@settings(max_examples=200, deadline=None)
@given(
    at=instants,
    seconds=st.sampled_from([60, 3600, 5 * 3600, 86400, 7 * 86400]),
    anchor=st.one_of(st.none(), instants),
)
def test_fixed_window_properties(at: datetime, seconds: int, anchor: datetime | None) -> None:
    start, end = fixed_bounds(seconds, anchor, at, BERLIN)
    assert start <= at < end
    assert end - start == timedelta(seconds=seconds)
    assert fixed_bounds(seconds, anchor, end, BERLIN)[0] == end
    origin = anchor or datetime(1970, 1, 1, tzinfo=UTC)
    assert (start - origin) % timedelta(seconds=seconds) == timedelta(0)


@settings(max_examples=300, deadline=None)
@given(
    at=instants,
    seconds=st.sampled_from([1800, 3600, 5 * 3600, 86400, 2 * 86400]),
    anchor=st.one_of(st.none(), instants.map(lambda t: t.astimezone(BERLIN).replace(tzinfo=None))),
)
def test_a_fixed_window_is_its_length_whatever_zone_its_instant_or_anchor_is_in(
    at: datetime, seconds: int, anchor: datetime | None
) -> None:
    # Read in Berlin's own time, a 30m window at the October change ran 02:30 CEST to 02:00 CET:
    # `length` -1800 s, so its counters expired after 1 s; and a naive anchor moved summer's windows
    # an hour, so the store (UTC instants) and `status` (local ones) read different counters.
    window = Window(f"{seconds}s", seconds=float(seconds), anchor=anchor)
    span = current_span(window, at, BERLIN, "r")
    assert span.key == current_span(window, at.astimezone(BERLIN), BERLIN, "r").key
    assert span.start is not None and span.end is not None and span.start <= at < span.end
    assert span.length == seconds
    assert span.seconds_left(at.astimezone(BERLIN)) == pytest.approx(span.end_ts - at.timestamp())


# DST changes at midnight, where a naive "local midnight" is missing or repeated (UTC instants)
MIDNIGHT_CHANGES = [
    ("America/Havana", utc(2024, 3, 10, 5)),  # 00:00 → 01:00: the day starts at 01:00
    ("America/Havana", utc(2024, 11, 3, 5)),  # 01:00 → 00:00: 00:00-01:00 happens twice
    ("America/Santiago", utc(2024, 9, 8, 4)),  # 24:00 → 01:00
    ("America/Sao_Paulo", utc(2018, 2, 18, 2)),  # 00:00 → 23:00 of the day before
    ("Europe/Berlin", utc(2024, 3, 31, 1)),
    ("Europe/Berlin", utc(2024, 10, 27, 1)),
]


@pytest.mark.parametrize(("zone", "change"), MIDNIGHT_CHANGES)
@pytest.mark.parametrize("name", ["day", "week", "month"])
def test_windows_around_dst_changes(zone: str, change: datetime, name: str) -> None:
    tz = ZoneInfo(zone)
    previous: tuple[datetime, datetime] | None = None
    for minutes in range(-180, 181, 5):
        at = change + timedelta(minutes=minutes)
        start, end = calendar_bounds(name, at, tz)
        assert start <= at < end
        assert start.astimezone(tz).date() <= at.astimezone(tz).date() < end.astimezone(tz).date()
        if previous is not None and previous != (start, end):
            assert previous[1] == start  # windows follow each other without gap or overlap
        previous = (start, end)
