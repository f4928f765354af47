"""Departure plug settings: validation, persistence, expiry, the end of a session, and that the
controller hands them to the allocator as queue facts."""

from __future__ import annotations

import asyncio
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fuseguard.control.controller import ChargerSpec, CircuitSpec, Controller, ControllerConfig
from fuseguard.control.plug_settings import PlugSettings
from fuseguard.model.clock import VirtualClock
from fuseguard.model.phases import Phases
from tests.control.fakes import FakeCharger, FakeMeter

SPECS = [ChargerSpec(id="cp1"), ChargerSpec(id="cp2")]
NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def test_a_departure_is_validated_persisted_and_expires(tmp_path: Path) -> None:
    path = tmp_path / "plug_settings.json"
    ps = PlugSettings(SPECS, path)
    at = NOW + timedelta(hours=3)
    ps.set_departure("cp1", at, 20000.0, now=NOW, source="test")
    dep = ps.departure_of("cp1", NOW)
    assert dep is not None and dep.at == at and dep.need_wh == 20000.0
    assert ps.departure_of("cp1", at) is None  # its time has passed
    assert ps.departure_of("cp2", NOW) is None
    stored = json.loads(path.read_text())["plugs"]["cp1"]["departure"]
    assert stored == {"at": at.isoformat(), "need_wh": 20000.0, "set_at": NOW.isoformat()}
    again = PlugSettings(SPECS, path).departure_of("cp1", NOW)
    assert again == dep
    for bad_at, bad_need in (
        (datetime(2026, 11, 30, 9), 1000.0),  # no time zone
        ("tomorrow", 1000.0),
        (at, 0.0),
        (at, -5.0),
        (at, math.nan),
        (at, math.inf),
        (at, 1e9),
        (at, True),
        (at, "10 kWh"),
    ):
        with pytest.raises(ValueError):
            ps.set_departure("cp1", bad_at, bad_need, now=NOW)  # type: ignore[arg-type]
    with pytest.raises(KeyError):
        ps.set_departure("nope", at, 1000.0, now=NOW)
    assert ps.departure_of("cp1", NOW) == dep  # nothing changed
    ps.set_departure("cp1", None, now=NOW)
    assert ps.departure_of("cp1", NOW) is None
    assert json.loads(path.read_text())["plugs"] == {}


def test_a_corrupt_departure_in_the_file_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "plug_settings.json"
    good = {"at": "2026-11-30T12:00:00+00:00", "need_wh": 5000, "set_at": NOW.isoformat()}
    bad = {"at": "2026-11-30T12:00:00", "need_wh": 5000, "set_at": NOW.isoformat()}
    path.write_text(json.dumps({"plugs": {"cp1": {"departure": good}, "cp2": {"departure": bad}}}))
    ps = PlugSettings(SPECS, path)
    assert ps.departure_of("cp1", NOW) is not None
    assert ps.departure_of("cp2", NOW) is None
    path.write_text(json.dumps({"plugs": {"cp1": {"departure": [1, 2]}}}))
    assert PlugSettings(SPECS, path).departure_of("cp1", NOW) is None


def test_the_end_of_a_session_drops_the_departure_set_before_it_ended() -> None:
    ps = PlugSettings(SPECS)
    ps.set_departure("cp1", NOW + timedelta(hours=5), 9000.0, now=NOW)
    ps.end_session("cp1", ended_at=NOW - timedelta(minutes=1))  # set after: for the next car
    assert ps.departure_of("cp1", NOW) is not None
    ps.end_session("cp1", ended_at=NOW + timedelta(minutes=1))  # this car's: it left
    assert ps.departure_of("cp1", NOW) is None
    ps.end_session("cp2", ended_at=NOW)  # nothing set: nothing happens


async def test_the_controller_hands_share_need_and_departure_to_the_allocator() -> None:
    clock = VirtualClock()
    chargers = {"cp1": FakeCharger(), "cp2": FakeCharger()}
    meter = FakeMeter(clock, list(chargers.values()), base_a=Phases(10, 5, 8))
    config = ControllerConfig(circuits=[CircuitSpec("main", None, 32.0)], chargers=SPECS)
    settings = PlugSettings(SPECS)
    controller = Controller(
        clock=clock, config=config, meter=meter, chargers=chargers, plug_settings=settings
    )
    task = asyncio.create_task(controller.run())
    try:
        await clock.advance(600)
        start = clock.now()
        settings.set_departure("cp1", start + timedelta(hours=2), 20000.0, now=start)
        await clock.advance(60)
        snap = controller.last_snapshot
        assert snap is not None
        plugs = {p.id: p for p in snap.plugs}
        one, two = plugs["cp1"], plugs["cp2"]
        assert one.departure_s is not None and 7000.0 < one.departure_s <= 7200.0
        assert one.need_wh is not None and 0.0 < one.need_wh < 20000.0  # less what it drew
        assert two.departure_s is None and two.need_wh is None
        assert one.share_a is not None and two.share_a is not None
        assert 6.0 <= two.share_a <= 32.0  # both charge: a mean current since plug-in
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
