"""Runtime mode/priority overrides: validation, persistence, and that the allocator obeys them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from fuseguard.control.controller import ChargerSpec, CircuitSpec, Controller, ControllerConfig
from fuseguard.control.plug_settings import PlugSettings
from fuseguard.model.clock import VirtualClock
from fuseguard.model.phases import Phases
from fuseguard.model.status import ChargeMode
from tests.control.fakes import FakeCharger, FakeMeter

SPECS = [
    ChargerSpec(id="cp1", evse_uuid=f"{1:032x}", priority=0),
    ChargerSpec(id="cp2", evse_uuid=f"{2:032x}", mode=ChargeMode.PV, priority=3),
]


def test_overrides_are_validated_persisted_and_dropped_when_equal(tmp_path: Path) -> None:
    path = tmp_path / "plug_settings.json"
    ps = PlugSettings(SPECS, path)
    changes: list[int] = []
    ps.subscribe(lambda: changes.append(1))
    assert ps.all()["cp2"].mode is ChargeMode.PV and ps.all()["cp2"].priority == 3
    ps.set_mode("cp1", ChargeMode.OFF)
    ps.set_priority("cp1", 7)
    ps.set_priority("cp2", 3)  # equal to the config: no override stored
    with pytest.raises(ValueError, match="priority"):
        ps.set_priority("cp1", 101)
    with pytest.raises(ValueError, match="priority"):
        ps.set_priority("cp1", True)
    with pytest.raises(KeyError):
        ps.set_mode("nope", ChargeMode.FAST)
    assert changes == [1, 1, 1]
    stored = json.loads(path.read_text())
    assert stored == {"version": 1, "plugs": {"cp1": {"mode": "off", "priority": 7}}}
    again = PlugSettings(SPECS, path)
    assert again.mode_of("cp1", ChargeMode.FAST) is ChargeMode.OFF
    assert again.priority_of("cp1", 0) == 7
    ps.set_mode("cp1", ChargeMode.FAST)  # back to the configured value
    assert json.loads(path.read_text())["plugs"] == {"cp1": {"priority": 7}}


def test_a_corrupt_or_foreign_file_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "plug_settings.json"
    path.write_text("{not json")
    assert PlugSettings(SPECS, path).all()["cp1"].mode is ChargeMode.FAST
    path.write_text(
        json.dumps({"plugs": {"gone": {"mode": "off"}, "cp1": {"mode": "warp", "priority": 5}}})
    )
    got = PlugSettings(SPECS, path).all()
    assert got["cp1"].mode is ChargeMode.FAST  # the bad mode is dropped ...
    assert got["cp1"].priority == 5  # ... the good priority kept
    assert "gone" not in got


async def test_the_allocator_obeys_a_runtime_mode_and_priority() -> None:
    clock = VirtualClock()
    chargers = {"cp1": FakeCharger(), "cp2": FakeCharger()}
    meter = FakeMeter(clock, list(chargers.values()), base_a=Phases(10, 5, 8))
    specs = [ChargerSpec(id=c, evse_uuid=f"{i + 1:032x}") for i, c in enumerate(chargers)]
    config = ControllerConfig(circuits=[CircuitSpec("main", None, 32.0)], chargers=specs)
    settings = PlugSettings(specs)
    controller = Controller(
        clock=clock, config=config, meter=meter, chargers=chargers, plug_settings=settings
    )
    task = asyncio.create_task(controller.run())
    try:
        await clock.advance(90)
        setpoints = {p.id: p.setpoint_a for p in controller.status().plugs}
        assert setpoints == {"cp1": 11, "cp2": 11}
        settings.set_mode("cp1", ChargeMode.OFF, source="test")
        settings.set_priority("cp2", 9, source="test")
        await clock.advance(30)
        setpoints = {p.id: p.setpoint_a for p in controller.status().plugs}
        assert setpoints["cp1"] == 0
        assert setpoints["cp2"] > 11
        snapshot = controller.last_snapshot
        by_id = {p.id: p for p in snapshot.plugs}
        assert by_id["cp1"].mode is ChargeMode.OFF
        assert by_id["cp2"].priority == 9
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_an_override_that_cannot_be_saved_is_not_applied(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the directory should be")
    ps = PlugSettings(SPECS, blocker / "plug_settings.json")
    changes: list[int] = []
    ps.subscribe(lambda: changes.append(1))
    with pytest.raises(OSError):
        ps.set_mode("cp1", ChargeMode.OFF)
    assert ps.all()["cp1"].mode is ChargeMode.FAST
    assert changes == []
