"""Departure times as people give and read them: pure functions, no I/O.

A departure is announced as a wall-clock time, ``HH:MM`` (or ``H:MM``, 00:00..23:59, ASCII
digits only): its *next occurrence* in the edge's local zone, today when that time is still
ahead (strictly after ``now``), else tomorrow. The zone is injectable (``tz``); None is the
process's local zone (``TZ``), with each day's own UTC offset (daylight saving time included,
via ``datetime.combine(day, wall).astimezone()``). A wall time that does not exist that day
(the hour skipped in spring) is taken with the offset before the change, i.e. an hour later
on the clock; one that occurs twice (autumn) is its first occurrence.

Only ``HH:MM`` is accepted here: an ISO 8601 date and time is not a wall-clock time (the MQTT
interface also takes ISO on ``set/departure_time`` and parses it there). The same module turns
a departure back into words for the pages (local time of day, the date when not today, and the
time left).

Used by the MQTT commands (``set/departure_time``) and the web UI's departure form, so both
read ``07:30`` the same way.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, tzinfo

#: ``HH:MM`` (or ``H:MM``), 00:00..23:59, ASCII digits only
HHMM = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])", re.ASCII)


def parse_hhmm(text: str) -> time | None:
    """The wall-clock time of ``HH:MM`` text, None when it is not one (no stripping)."""
    m = HHMM.fullmatch(text)
    return None if m is None else time(int(m[1]), int(m[2]))


def local_at(day: date, wall: time, tz: tzinfo | None = None) -> datetime:
    """``day`` at ``wall`` in ``tz``, aware; with ``tz=None`` in the process's local zone with
    that day's own UTC offset (``naive.astimezone()``: daylight saving time included)."""
    if tz is None:
        return datetime.combine(day, wall).astimezone()
    return datetime.combine(day, wall, tzinfo=tz)


def next_occurrence(wall: time, now: datetime, tz: tzinfo | None = None) -> datetime:
    """The first ``wall`` in ``tz`` strictly after ``now`` (aware): today or tomorrow."""
    today = now.astimezone(tz).date()
    at = local_at(today, wall, tz)
    if at <= now:
        at = local_at(today + timedelta(days=1), wall, tz)
    return at


def next_hhmm(text: str, now: datetime, tz: tzinfo | None = None) -> datetime:
    """:func:`next_occurrence` of ``HH:MM`` text; ValueError when the text is not ``HH:MM``."""
    wall = parse_hhmm(text)
    if wall is None:
        msg = f"expected a time of day HH:MM (00:00..23:59), got {text[:20]!r}"
        raise ValueError(msg)
    return next_occurrence(wall, now, tz)


def localized(at: datetime, tz: tzinfo | None = None) -> datetime:
    """``at`` in ``tz`` (None: the process's local zone); as given at the ends of the calendar
    (year 9999 has no local time east of its offset)."""
    try:
        return at.astimezone(tz)
    except (OverflowError, ValueError):
        return at


def departure_words(at: datetime, now: datetime, tz: tzinfo | None = None) -> str:
    """``07:30`` today, ``07:30 tomorrow (2026-12-02)``, else ``07:30 on 2026-12-05``: local."""
    local, today = localized(at, tz), localized(now, tz).date()
    if local.date() == today:
        return f"{local:%H:%M} today"
    if local.date() == today + timedelta(days=1):
        return f"{local:%H:%M} tomorrow ({local:%Y-%m-%d})"
    return f"{local:%H:%M} on {local:%Y-%m-%d}"


def time_left_words(at: datetime, now: datetime) -> str:
    """How long until ``at``: ``45 min``, ``9 h 30 min``, ``2 d 3 h`` (``0 min`` when past)."""
    minutes = max(0, int((at - now).total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {mins} min"
    return f"{mins} min"


__all__ = [
    "HHMM",
    "departure_words",
    "local_at",
    "localized",
    "next_hhmm",
    "next_occurrence",
    "parse_hhmm",
    "time_left_words",
]
