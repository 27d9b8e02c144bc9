"""Where a window starts and ends for a given instant: pure functions, DST-safe.

- fixed windows (`1m`, `5h`) are consecutive multiples of their length counted from an anchor
  (default: the Unix epoch, UTC);
- calendar windows (`day`, `week`, `month`) start at local midnight / Monday / the 1st in the
  registry's timezone. The boundary is computed as a wall time in that zone and converted to UTC, so a
  Berlin day is 23 or 25 hours long on DST changes and still ends at local midnight;
- `run` windows have no end: they last as long as the run, named by its run id.

Every counter lives under a key that contains its window's key, so a new window is a new counter:
rollover needs no reset job, and an old window's counter simply stops being read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone, tzinfo

from policyrouter.registry import Window

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MINUTE = Window("1m", seconds=60.0)


@dataclass(frozen=True, slots=True)
class WindowSpan:
    """One occurrence of a window: `start <= t < end`, in the registry's timezone; both None for a run."""

    window: Window
    key: str
    start: datetime | None
    end: datetime | None
    end_ts: float = field(init=False, repr=False, compare=False)  # `end` in epoch seconds (0 for a run)
    length: float = field(init=False, repr=False, compare=False)  # seconds from start to end (0 for a run)

    def __post_init__(self) -> None:
        # In UTC: two datetimes of one zone subtract as wall times, and a window across a DST change
        # would be an hour off (a 30m window ending at 02:00 CET after starting at 02:30 CEST)
        if self.start is None or self.end is None:
            object.__setattr__(self, "end_ts", 0.0)
            object.__setattr__(self, "length", 0.0)
            return
        object.__setattr__(self, "end_ts", self.end.timestamp())
        length = self.end.astimezone(timezone.utc) - self.start.astimezone(timezone.utc)  # exact, unlike timestamps
        object.__setattr__(self, "length", length.total_seconds())

    def seconds_left(self, at: datetime) -> float | None:
        return None if self.end is None else max(0.0, self.end_ts - at.timestamp())


def current_span(window: Window, at: datetime, tz: tzinfo, run_id: str) -> WindowSpan:
    """The occurrence of `window` that contains the aware instant `at`."""
    if at.tzinfo is None:
        raise ValueError("window arithmetic needs an aware datetime")
    kind = window.kind
    if kind == "run":
        return WindowSpan(window, f"run:{run_id}", None, None)
    if kind == "fixed":
        assert window.seconds is not None
        start, end = fixed_bounds(window.seconds, window.anchor, at, tz)
    else:
        start, end = calendar_bounds(window.name, at, tz)
    return WindowSpan(window, f"{window.name}@{_millis(start)}", start.astimezone(tz), end.astimezone(tz))


def fixed_bounds(seconds: float, anchor: datetime | None, at: datetime, tz: tzinfo) -> tuple[datetime, datetime]:
    """[start, end) of the fixed-length window containing `at`, counted from `anchor`.

    A naive anchor is read in `tz`. Arithmetic is on exact timedeltas (microseconds) in UTC, so windows
    never drift, and a `1h` window is 3600 s across a DST change too (in a zone's own time, datetimes
    add and subtract as wall times); instants before the anchor fall in windows counted backwards.
    """
    if seconds <= 0:
        raise ValueError(f"a window length must be positive, got {seconds}")
    origin = EPOCH if anchor is None else (anchor if anchor.tzinfo else anchor.replace(tzinfo=tz))
    origin = origin.astimezone(timezone.utc)
    length = timedelta(seconds=seconds)
    n = (at.astimezone(timezone.utc) - origin) // length
    start = origin + n * length
    return start, start + length


def calendar_bounds(name: str, at: datetime, tz: tzinfo) -> tuple[datetime, datetime]:
    """[start, end) in UTC of the local day, week (from Monday) or month containing `at`."""
    local = at.astimezone(tz).date()
    if name == "day":
        first, following = local, local + timedelta(days=1)
    elif name == "week":
        first = local - timedelta(days=local.weekday())
        following = first + timedelta(days=7)
    elif name == "month":
        first = local.replace(day=1)
        following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    else:
        raise ValueError(f"unknown calendar window `{name}`: expected `day`, `week` or `month`")
    return local_midnight(first, tz), local_midnight(following, tz)


def local_midnight(day: date, tz: tzinfo) -> datetime:
    """The first instant of `day` in `tz`, as UTC.

    Built as the wall time 00:00 with fold=0: where midnight falls in a DST gap this is the transition
    instant (the day begins when the clocks jump), and where midnight is repeated it is the first one.
    """
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(timezone.utc)


def _millis(t: datetime) -> int:
    return (t - EPOCH) // timedelta(milliseconds=1)
