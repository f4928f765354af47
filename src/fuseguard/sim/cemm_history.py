"""CEMM history rules as pure functions: minute averages and the day/month/year series.

The CEMM keeps one value per completed minute and answers ``/data/day|month|year`` from it in
its local time zone (Europe/Amsterdam on Dutch devices). The rules (``devices.md`` §7.4):

* **day**: one sample per minute start of the local day containing ``time`` (1440 minutes; 1380 or
  1500 on DST change days), newest first, only minutes already completed, plus a trailing
  sentinel ``[day_end - 1 s, null]`` that is always present (it comes *first*, being the newest
  timestamp). The value is the average power over the minute, in W.
* **month**: one sample per local calendar day (timestamp = local midnight), newest first; days in
  the future are ``0``; the value is the net energy of that day in kWh.
* **year**: one sample per month (timestamp = local midnight of the 1st), newest first, future
  months ``0``; the value is the net energy of that month in kWh.

Timestamps are epoch milliseconds; all arithmetic is done on epoch seconds so DST is handled by
:mod:`zoneinfo` only when converting local calendar boundaries.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from fuseguard.wire.cemm import Period

MINUTE_S = 60

# [timestamp_ms, value]; value None only for the day sentinel.
Sample = list[int | float | None]


def local_midnight_s(day: date, tz: ZoneInfo) -> int:
    """Epoch seconds of local midnight starting ``day`` in ``tz``."""
    return int(datetime(day.year, day.month, day.day, tzinfo=tz).timestamp())


def local_date(epoch_s: float, tz: ZoneInfo) -> date:
    """The local calendar date at ``epoch_s``."""
    return datetime.fromtimestamp(epoch_s, tz).date()


def day_bounds_s(epoch_s: float, tz: ZoneInfo) -> tuple[int, int]:
    """Start and end (exclusive) epoch seconds of the local day containing ``epoch_s``."""
    day = local_date(epoch_s, tz)
    return local_midnight_s(day, tz), local_midnight_s(day + timedelta(days=1), tz)


def month_bounds_s(epoch_s: float, tz: ZoneInfo) -> tuple[int, int]:
    """Start and end (exclusive) epoch seconds of the local month containing ``epoch_s``."""
    day = local_date(epoch_s, tz)
    first = day.replace(day=1)
    nxt = date(first.year + 1, 1, 1) if first.month == 12 else date(first.year, first.month + 1, 1)
    return local_midnight_s(first, tz), local_midnight_s(nxt, tz)


def year_bounds_s(epoch_s: float, tz: ZoneInfo) -> tuple[int, int]:
    """Start and end (exclusive) epoch seconds of the local year containing ``epoch_s``."""
    year = local_date(epoch_s, tz).year
    return local_midnight_s(date(year, 1, 1), tz), local_midnight_s(date(year + 1, 1, 1), tz)


def period_start_s(period: Period, epoch_s: float, tz: ZoneInfo) -> int:
    """Start of the local day/month/year containing ``epoch_s``."""
    bounds = {Period.DAY: day_bounds_s, Period.MONTH: month_bounds_s, Period.YEAR: year_bounds_s}
    return bounds[period](epoch_s, tz)[0]


@dataclass(slots=True)
class _Minute:
    energy_ws: float = 0.0
    covered_s: float = 0.0


@dataclass(slots=True)
class MinuteStore:
    """Per-minute integral of a signed quantity (W -> W·s, or L/min -> L/min·s).

    :meth:`add` integrates a constant ``value`` over ``[end_s - duration_s, end_s]`` and splits
    it across minute boundaries. :meth:`average` is the mean over the covered part of a minute.
    """

    minutes: dict[int, _Minute] = field(default_factory=dict)

    def add(self, end_s: float, duration_s: float, value: float) -> None:
        """Integrate ``value`` over the interval ending at ``end_s``."""
        if duration_s <= 0 or not math.isfinite(value):
            return
        t = end_s - duration_s
        while t < end_s - 1e-9:
            minute = math.floor(t / MINUTE_S) * MINUTE_S
            seg_end = min(end_s, minute + MINUTE_S)
            seg_s = seg_end - t
            bucket = self.minutes.setdefault(minute, _Minute())
            bucket.energy_ws += value * seg_s
            bucket.covered_s += seg_s
            t = seg_end

    def average(self, minute_start_s: int) -> float | None:
        """Mean value over the recorded part of the minute, or None without data."""
        bucket = self.minutes.get(minute_start_s)
        if bucket is None or bucket.covered_s <= 0:
            return None
        return bucket.energy_ws / bucket.covered_s

    def integral(self, start_s: int, end_s: int) -> float:
        """Sum of ``value * seconds`` over all minutes starting in ``[start_s, end_s)``."""
        first = math.ceil(start_s / MINUTE_S) * MINUTE_S
        if (end_s - first) // MINUTE_S < len(self.minutes):
            total = 0.0
            for m in range(first, end_s, MINUTE_S):
                bucket = self.minutes.get(m)
                if bucket is not None:
                    total += bucket.energy_ws
            return total
        return sum(b.energy_ws for m, b in self.minutes.items() if start_s <= m < end_s)

    def prune_before(self, epoch_s: int) -> None:
        """Forget minutes older than ``epoch_s`` (bounded memory for long runs)."""
        for m in [m for m in self.minutes if m < epoch_s]:
            del self.minutes[m]


def day_series(
    minute_value: Callable[[int], float | None],
    time_s: float,
    now_s: float,
    tz: ZoneInfo,
    *,
    missing: float = 0,
) -> list[Sample]:
    """The ``data/day`` list for the local day containing ``time_s``, as of ``now_s``.

    ``minute_value(minute_start_s)`` gives the minute's value (None = no data -> ``missing``).
    """
    start_s, end_s = day_bounds_s(time_s, tz)
    out: list[Sample] = [[(end_s - 1) * 1000, None]]
    last_minute = min(end_s - MINUTE_S, math.floor(now_s / MINUTE_S) * MINUTE_S - MINUTE_S)
    minute = last_minute
    while minute >= start_s:
        value = minute_value(minute)
        out.append([minute * 1000, missing if value is None else value])
        minute -= MINUTE_S
    return out


def month_series(
    energy_kwh: Callable[[int, int], float], time_s: float, now_s: float, tz: ZoneInfo
) -> list[Sample]:
    """The ``data/month`` list: one sample per local day, newest first, future days 0."""
    start_s, end_s = month_bounds_s(time_s, tz)
    out: list[Sample] = []
    day = local_date(start_s, tz)
    while (t0 := local_midnight_s(day, tz)) < end_s:
        t1 = local_midnight_s(day + timedelta(days=1), tz)
        out.append([t0 * 1000, 0 if t0 > now_s else energy_kwh(t0, t1)])
        day += timedelta(days=1)
    out.reverse()
    return out


def year_series(
    energy_kwh: Callable[[int, int], float], time_s: float, now_s: float, tz: ZoneInfo
) -> list[Sample]:
    """The ``data/year`` list: one sample per local month, newest first, future months 0."""
    start_s, _ = year_bounds_s(time_s, tz)
    year = local_date(start_s, tz).year
    out: list[Sample] = []
    for month in range(1, 13):
        t0 = local_midnight_s(date(year, month, 1), tz)
        nxt = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
        t1 = local_midnight_s(nxt, tz)
        out.append([t0 * 1000, 0 if t0 > now_s else energy_kwh(t0, t1)])
    out.reverse()
    return out


__all__ = [
    "MINUTE_S",
    "MinuteStore",
    "Period",
    "Sample",
    "day_bounds_s",
    "day_series",
    "local_date",
    "local_midnight_s",
    "month_bounds_s",
    "month_series",
    "period_start_s",
    "year_bounds_s",
    "year_series",
]
