"""The shared ``HH:MM`` departure time: parsing, its next occurrence (today, tomorrow, across a
daylight-saving change, in the process's zone) and the words the pages show."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from datetime import time as wall_time
from zoneinfo import ZoneInfo

import pytest

from fuseguard.control.departure_time import (
    departure_words,
    localized,
    next_hhmm,
    parse_hhmm,
    time_left_words,
)

ZURICH = ZoneInfo("Europe/Zurich")
#: 08:00 in Zurich (winter, UTC+1)
NOW = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "wall"),
    [
        ("07:30", wall_time(7, 30)),
        ("7:05", wall_time(7, 5)),
        ("00:00", wall_time(0, 0)),
        ("23:59", wall_time(23, 59)),
    ],
)
def test_hhmm_is_parsed(text: str, wall: wall_time) -> None:
    assert parse_hhmm(text) == wall


@pytest.mark.parametrize(
    "text",
    [
        *("", "24:00", "7:60", "07:3", "0730", " 07:30", "07:30 ", "07:30:00", "07:30\n"),
        *("٠٧:٣٠", "０７:３０", "7h30", "-1:00", "2026-12-02T07:30:00+01:00", "2026-12-02 07:30"),
    ],
)
def test_anything_but_hhmm_is_refused(text: str) -> None:
    """ISO 8601 is refused on purpose: a form field "Leaves at (HH:MM)" takes a time of day (the
    MQTT command parses ISO itself before asking for HH:MM)."""
    assert parse_hhmm(text) is None
    with pytest.raises(ValueError, match="HH:MM"):
        next_hhmm(text, NOW, ZURICH)


def test_a_time_still_ahead_is_today_one_passed_is_tomorrow() -> None:
    assert next_hhmm("09:15", NOW, ZURICH) == datetime(2026, 12, 1, 9, 15, tzinfo=ZURICH)
    assert next_hhmm("07:59", NOW, ZURICH) == datetime(2026, 12, 2, 7, 59, tzinfo=ZURICH)


def test_the_time_equal_to_now_is_tomorrow() -> None:
    assert next_hhmm("08:00", NOW, ZURICH) == datetime(2026, 12, 2, 8, 0, tzinfo=ZURICH)
    just_before = NOW - timedelta(seconds=1)
    assert next_hhmm("08:00", just_before, ZURICH) - just_before == timedelta(seconds=1)


def test_local_midnight_decides_today_not_utc() -> None:
    # 23:30 UTC on 1 December is 00:30 on 2 December in Zurich: 07:30 is that same local day
    late = datetime(2026, 12, 1, 23, 30, tzinfo=UTC)
    assert next_hhmm("07:30", late, ZURICH) == datetime(2026, 12, 2, 7, 30, tzinfo=ZURICH)


def test_the_spring_change_in_zurich_keeps_the_wall_time() -> None:
    # 29 March 2026: 02:00 CET -> 03:00 CEST; from 01:30 CET 07:30 CEST is 5 h away, not 6
    now = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    at = next_hhmm("07:30", now, ZURICH)
    assert at.astimezone(UTC) == datetime(2026, 3, 29, 5, 30, tzinfo=UTC)
    assert at - now == timedelta(hours=5)
    # the evening before, "tomorrow 07:30" also gets the summer offset
    eve = datetime(2026, 3, 28, 21, 0, tzinfo=UTC)
    assert next_hhmm("07:30", eve, ZURICH).astimezone(UTC) == datetime(
        2026, 3, 29, 5, 30, tzinfo=UTC
    )


def test_the_autumn_change_in_zurich_keeps_the_wall_time() -> None:
    # 25 October 2026: 03:00 CEST -> 02:00 CET; from 01:00 CEST 07:00 CET is 7 h away
    now = datetime(2026, 10, 24, 23, 0, tzinfo=UTC)
    at = next_hhmm("07:00", now, ZURICH)
    assert at.astimezone(UTC) == datetime(2026, 10, 25, 6, 0, tzinfo=UTC)
    assert at - now == timedelta(hours=7)


def test_without_a_zone_the_process_zone_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as mp:
        mp.setenv("TZ", "Europe/Zurich")
        time.tzset()
        try:
            now = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
            at = next_hhmm("07:30", now)
        finally:
            mp.undo()
            time.tzset()
    assert at.utcoffset() == timedelta(hours=2)
    assert at.astimezone(UTC) == datetime(2026, 3, 29, 5, 30, tzinfo=UTC)


def test_words_for_a_departure() -> None:
    today = datetime(2026, 12, 1, 17, 45, tzinfo=ZURICH)
    assert departure_words(today, NOW, ZURICH) == "17:45 today"
    tomorrow = datetime(2026, 12, 2, 7, 30, tzinfo=ZURICH)
    assert departure_words(tomorrow, NOW, ZURICH) == "07:30 tomorrow (2026-12-02)"
    later = datetime(2026, 12, 5, 7, 30, tzinfo=ZURICH)
    assert departure_words(later, NOW, ZURICH) == "07:30 on 2026-12-05"
    assert time_left_words(today, NOW) == "9 h 45 min"
    assert time_left_words(NOW + timedelta(minutes=59, seconds=59), NOW) == "59 min"
    assert time_left_words(later, NOW) == "3 d 23 h"
    assert time_left_words(NOW - timedelta(hours=1), NOW) == "0 min"


def test_the_end_of_the_calendar_is_shown_as_given() -> None:
    end = datetime(9999, 12, 31, 23, 59, tzinfo=ZoneInfo("America/New_York"))
    assert localized(end, ZURICH) is end
    assert departure_words(end, NOW, ZURICH) == "23:59 on 9999-12-31"
