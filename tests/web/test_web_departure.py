"""A plug's departure through the web UI over HTTP: "Leaves at (HH:MM)" or "Leaves in (h)"
(exactly one), hostile values refused with nothing changed, and the departure in force shown on
the settings page, the plug cards and the live JSON (and relayed to the cloud page)."""

from __future__ import annotations

import html
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from fuseguard.api.web.events import EventKind
from fuseguard.api.web.view import departure_view
from fuseguard.control.plug_settings import Departure, PlugSettings

from .webkit import ADMIN_PW, Client, Rig, start_rig, stop_rig

ZURICH = ZoneInfo("Europe/Zurich")
#: the rig's virtual clock starts at 2026-01-05 00:00 UTC: 01:00 in Zurich
START = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = await start_rig(tmp_path, tz=ZURICH)
    try:
        yield r
    finally:
        await stop_rig(r)


@pytest.fixture
async def admin(rig: Rig) -> AsyncIterator[Client]:
    c = Client(rig.url)
    try:
        assert await c.login("alice", ADMIN_PW) == 303
        yield c
    finally:
        await c.close()


def _settings(rig: Rig) -> PlugSettings:
    assert rig.deps.plug_settings is not None
    return rig.deps.plug_settings


def _departure(rig: Rig) -> Departure | None:
    return _settings(rig).departure_of("wb1", rig.clock.now())


async def _announce(admin: Client, **fields: str) -> tuple[int, str]:
    form = {"plug": "wb1", "csrf_token": admin.csrf, **fields}
    return await admin.post("/settings/departure", form)


async def _card(admin: Client) -> dict[str, Any]:
    code, body = await admin.get("/live/data")
    assert code == 200
    card: dict[str, Any] = json.loads(body)["plugs"][0]
    return card


async def test_leaves_at_hhmm_is_the_next_such_local_time_and_is_shown(
    rig: Rig, admin: Client
) -> None:
    assert rig.clock.now() == START
    code, _ = await _announce(admin, at="07:30", need_kwh="20")
    assert code == 303
    dep = _departure(rig)
    assert dep is not None
    assert dep.at == datetime(2026, 1, 5, 7, 30, tzinfo=ZURICH)
    assert dep.need_wh == 20_000.0
    words = "07:30 today · 20 kWh · 6 h 30 min left"
    _, page = await admin.get("/settings")
    assert f"Departure in force: leaves <strong>{words}</strong>" in html.unescape(page)
    assert 'name="need_kwh" inputmode="decimal" maxlength="32" value="20"' in page
    _, site = await admin.get("/site")
    assert f'<dd data-f="departure_words">{words}</dd>' in html.unescape(site)
    card = await _card(admin)
    assert card["departure"] == {
        "at": "2026-01-05T07:30:00+01:00",
        "need_kwh": 20.0,
        "left_s": 6 * 3600 + 1800,
        "words": words,
    }
    assert card["departure_words"] == words
    assert card["mode"] is not None and card["setpoint_a"] == 16  # the old keys are all there
    events = await rig.deps.events.recent(5, EventKind.PLUG_SETTING)
    assert events[0].message == "plug wb1: leaves 07:30 today, needs 20 kWh"
    assert events[0].source == "web alice"


async def test_a_time_already_passed_today_is_tomorrow(rig: Rig, admin: Client) -> None:
    assert (await _announce(admin, at="0:45", need_kwh="7,5"))[0] == 303  # decimal comma
    dep = _departure(rig)
    assert dep is not None
    assert dep.at == datetime(2026, 1, 6, 0, 45, tzinfo=ZURICH)
    assert dep.need_wh == 7_500.0
    card = await _card(admin)
    assert card["departure_words"] == "00:45 tomorrow (2026-01-06) · 7.5 kWh · 23 h 45 min left"


async def test_leaves_at_equal_to_now_is_tomorrow(rig: Rig, admin: Client) -> None:
    assert (await _announce(admin, at="01:00", need_kwh="5"))[0] == 303
    dep = _departure(rig)
    assert dep is not None and dep.at - rig.clock.now() == timedelta(hours=24)


async def test_leaves_in_hours_still_works(rig: Rig, admin: Client) -> None:
    assert (await _announce(admin, hours="2.5", need_kwh="18"))[0] == 303
    dep = _departure(rig)
    assert dep is not None and dep.at == START + timedelta(hours=2.5)
    events = await rig.deps.events.recent(5, EventKind.PLUG_SETTING)
    assert events[0].message == "plug wb1: leaves 03:30 today, needs 18 kWh"


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"at": "07:30", "hours": "2"}, "give either Leaves at (HH:MM) or Leaves in (h), not both"),
        ({}, "give Leaves at (HH:MM) or Leaves in (h)"),
        ({"at": " ", "hours": ""}, "give Leaves at (HH:MM) or Leaves in (h)"),
        ({"at": "24:00"}, "Leaves at (HH:MM) must be a time of day 00:00..23:59, got '24:00'"),
        ({"at": "7:60"}, "Leaves at (HH:MM) must be a time of day"),
        ({"at": "07:30:00"}, "Leaves at (HH:MM) must be a time of day"),
        ({"at": "2026-01-05T07:30+01:00"}, "Leaves at (HH:MM) must be a time of day"),
        ({"at": "٠٧:٣٠"}, "Leaves at (HH:MM) must be a time of day"),
        ({"at": "0" * 33}, "Leaves at (HH:MM) must be at most 32 characters"),
        ({"hours": "nan"}, "Leaves in (h) must be a number within 0..168, got 'nan'"),
        ({"hours": "inf"}, "Leaves in (h) must be a number within 0..168"),
        ({"hours": "0"}, "Leaves in (h) must be a number within 0..168"),
        ({"hours": "168.5"}, "Leaves in (h) must be a number within 0..168"),
        ({"hours": "1_0"}, "Leaves in (h) must be a number within 0..168"),
        ({"hours": "1e2"}, "Leaves in (h) must be a number within 0..168"),
        ({"hours": "1" * 40}, "Leaves in (h) must be at most 32 characters"),
        ({"at": "07:30", "need_kwh": "nan"}, "Energy need (kWh) must be a number within 0..250"),
        ({"at": "07:30", "need_kwh": "-1"}, "Energy need (kWh) must be a number within 0..250"),
        ({"at": "07:30", "need_kwh": "0"}, "Energy need (kWh) must be a number within 0..250"),
        ({"at": "07:30", "need_kwh": "251"}, "Energy need (kWh) must be a number within 0..250"),
        ({"at": "07:30", "need_kwh": ""}, "Energy need (kWh) must be a number within 0..250"),
        ({"at": "07:30", "need_kwh": "Infinity"}, "Energy need (kWh) must be a number"),
    ],
)
async def test_refused_departures_name_the_field_and_change_nothing(
    rig: Rig, admin: Client, fields: dict[str, str], says: str
) -> None:
    assert (await _announce(admin, at="09:00", need_kwh="10"))[0] == 303
    before = _departure(rig)
    events_before = await rig.deps.events.recent(50, EventKind.PLUG_SETTING)
    form = {"need_kwh": "12", **fields}
    code, page = await _announce(admin, **form)
    assert code == 422
    assert f"Not changed: {says}" in html.unescape(page)
    assert _departure(rig) == before
    assert await rig.deps.events.recent(50, EventKind.PLUG_SETTING) == events_before


async def test_an_unknown_plug_is_refused(rig: Rig, admin: Client) -> None:
    form = {"plug": "nope", "at": "07:30", "need_kwh": "5", "csrf_token": admin.csrf}
    code, page = await admin.post("/settings/departure", form)
    assert code == 422
    assert "unknown plug &#39;nope&#39;" in page


async def test_clear_removes_the_departure_everywhere(rig: Rig, admin: Client) -> None:
    assert (await _announce(admin, at="07:30", need_kwh="20"))[0] == 303
    assert (await _announce(admin, clear="1"))[0] == 303
    assert _departure(rig) is None
    _, page = await admin.get("/settings")
    assert "No departure announced." in page
    assert "Departure in force" not in page
    _, site = await admin.get("/site")
    assert '<dd data-f="departure_words">none</dd>' in site
    card = await _card(admin)
    assert card["departure"] is None and card["departure_words"] == "none"


async def test_a_departure_that_has_passed_is_not_shown(rig: Rig, admin: Client) -> None:
    assert (await _announce(admin, hours="0.1", need_kwh="3"))[0] == 303  # in 6 minutes
    card = await _card(admin)
    assert card["departure_words"] == "01:06 today · 3 kWh · 6 min left"
    await rig.clock.advance(6 * 60)  # exactly its time: gone
    _, page = await admin.get("/settings")
    assert "No departure announced." in page
    card = await _card(admin)
    assert card["departure"] is None and card["departure_words"] == "none"
    _, site = await admin.get("/site")
    assert '<dd data-f="departure_words">none</dd>' in site


async def test_the_form_labels_every_input_and_constrains_hhmm(admin: Client) -> None:
    _, page = await admin.get("/settings")
    assert '<label for="at-1">Leaves at (HH:MM)</label><input id="at-1" name="at"' in page
    assert 'pattern="([01]?[0-9]|2[0-3]):([0-5][0-9])" maxlength="5"' in page
    assert '<label for="hours-1">Leaves in (h)</label><input id="hours-1"' in page
    assert '<label for="need-1">Energy need (kWh)</label><input id="need-1"' in page
    assert 'aria-describedby="dep-hint-1"' in page


def test_a_departure_at_the_end_of_the_calendar_is_shown_as_given() -> None:
    # accepted by PlugSettings (any aware time); no local time exists east of its offset
    end = datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-5)))
    card = departure_view(Departure(end, 1000.0, START), START, ZURICH)
    assert card is not None
    assert card["at"] == "9999-12-31T23:00:00-05:00"
    assert card["words"].startswith("23:00 on 9999-12-31 · 1 kWh · ")
    assert departure_view(Departure(START, 1000.0, START), START, ZURICH) is None  # at == now
