"""Property tests for the CEMM history rules (DST days, sentinel, ordering, future zeros)."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from fuseguard.sim.cemm_history import (
    MinuteStore,
    day_bounds_s,
    day_series,
    local_midnight_s,
    month_series,
    year_series,
)

AMS = ZoneInfo("Europe/Amsterdam")
ZONES = st.sampled_from(
    [AMS, ZoneInfo("America/New_York"), ZoneInfo("Australia/Lord_Howe"), ZoneInfo("UTC")]
)
DATES = st.dates(min_value=date(2000, 1, 1), max_value=date(2037, 12, 31))
SETTINGS = settings(max_examples=60, deadline=None)


def _value(minute_s: int) -> float:
    return float(minute_s % 7919)


def _last_sunday(year: int, month: int) -> date:
    d = date(year, month + 1, 1) - timedelta(days=1)
    return d - timedelta(days=(d.weekday() + 1) % 7)


@SETTINGS
@given(day=DATES, tz=ZONES, offset_s=st.integers(0, 86399))
def test_past_day_is_complete_newest_first_with_sentinel(day: date, tz: ZoneInfo, offset_s: int):
    start = local_midnight_s(day, tz)
    end = local_midnight_s(day + timedelta(days=1), tz)
    series = day_series(_value, start + offset_s % (end - start), end + 3600, tz)
    minutes = (end - start) // 60
    assert len(series) == minutes + 1
    assert series[0] == [(end - 1) * 1000, None]
    stamps = [s[0] for s in series]
    assert stamps == sorted(stamps, reverse=True)
    assert all(a - b == 60_000 for a, b in itertools.pairwise(stamps[1:]))
    assert stamps[-1] == start * 1000
    assert all(s[1] is not None for s in series[1:])
    assert series[1][1] == _value(end - 60)


@SETTINGS
@given(year=st.integers(2000, 2037))
def test_amsterdam_dst_days_have_1380_and_1500_minutes(year: int):
    spring, autumn = _last_sunday(year, 3), _last_sunday(year, 10)
    for day, minutes in ((spring, 1380), (autumn, 1500), (spring - timedelta(days=1), 1440)):
        start = local_midnight_s(day, AMS)
        series = day_series(_value, start, start + 10 * 86400, AMS)
        assert len(series) == minutes + 1, day


@SETTINGS
@given(day=DATES, tz=ZONES, elapsed_s=st.floats(0, 90000))
def test_today_has_only_completed_minutes(day: date, tz: ZoneInfo, elapsed_s: float):
    start, end = day_bounds_s(local_midnight_s(day, tz) + 1, tz)
    now = start + elapsed_s
    series = day_series(_value, start, now, tz)
    assert series[0] == [(end - 1) * 1000, None]
    for ts_ms, _ in series[1:]:
        assert ts_ms / 1000 + 60 <= now
        assert start <= ts_ms / 1000 < end
    expected = max(0, min((end - start) // 60, int((now - start) // 60)))
    assert len(series) - 1 == expected


@SETTINGS
@given(day=DATES, tz=ZONES)
def test_future_day_is_only_the_sentinel(day: date, tz: ZoneInfo):
    start = local_midnight_s(day, tz)
    assert day_series(_value, start, start - 1, tz) == [
        [(local_midnight_s(day + timedelta(days=1), tz) - 1) * 1000, None]
    ]


@SETTINGS
@given(day=DATES, tz=ZONES, now_day_offset=st.integers(-40, 40))
def test_month_one_sample_per_day_future_zero(day: date, tz: ZoneInfo, now_day_offset: int):
    now = local_midnight_s(day, tz) + now_day_offset * 86400 + 43200
    series = month_series(lambda a, b: 1.0, local_midnight_s(day, tz), now, tz)
    first = day.replace(day=1)
    days = ((first + timedelta(days=32)).replace(day=1) - first).days
    assert len(series) == days
    stamps = [s[0] for s in series]
    assert stamps == sorted(stamps, reverse=True)
    for ts_ms, value in series:
        local = datetime.fromtimestamp(ts_ms / 1000, tz)
        assert (local.hour, local.minute, local.month) == (0, 0, day.month)
        assert value == (0 if ts_ms / 1000 > now else 1.0)


@SETTINGS
@given(day=DATES, tz=ZONES)
def test_year_twelve_months_newest_first(day: date, tz: ZoneInfo):
    now = local_midnight_s(day, tz) + 1
    series = year_series(lambda a, b: 2.5, now, now, tz)
    assert len(series) == 12
    months = [datetime.fromtimestamp(s[0] / 1000, tz).month for s in series]
    assert months == list(range(12, 0, -1))
    assert all(v == (0 if m > day.month else 2.5) for m, (_, v) in zip(months, series, strict=True))


@SETTINGS
@given(
    steps=st.lists(st.tuples(st.floats(0.1, 200.0), st.floats(-1e4, 1e4)), min_size=1, max_size=40)
)
def test_minute_store_conserves_the_integral(steps: list[tuple[float, float]]):
    store = MinuteStore()
    t = 1_700_000_000.0
    total = 0.0
    # Rounding error: each minute segment's length is a difference of epoch seconds (one ulp of t
    # each, at most ceil(dt / 60) + 1 segments), plus the sum's own error, which grows with the
    # terms rather than with their possibly cancelling total.
    bound = 1e-9
    for dt, value in steps:
        t += dt
        store.add(t, dt, value)
        total += dt * value
        bound += abs(value) * math.ulp(t) * (dt // 60 + 3) + 1e-12 * abs(dt * value)
    got = store.integral(0, 2_000_000_000)
    assert abs(got - total) <= bound
    for minute, bucket in store.minutes.items():
        assert minute % 60 == 0
        assert 0 < bucket.covered_s <= 60 + 1e-6


def test_doc_example_day_matches_the_spec_timestamps():
    series = day_series(lambda m: 1000.0, 1587420000, 1587600000, AMS)
    assert series[0] == [1587506399000, None]
    assert series[1][0] == 1587506340000
    assert series[-1] == [1587420000000, 1000.0]
    assert datetime.fromtimestamp(1587420000, UTC).isoformat() == "2020-04-20T22:00:00+00:00"
