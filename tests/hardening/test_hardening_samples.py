"""Issue 17 item 6 (driver readings): a charger sample with NaN or infinity counts as a failed
read of that charger (its last setpoint stays reserved); it never reaches the allocator."""

from __future__ import annotations

import asyncio
import dataclasses
import math

import pytest

from fuseguard.control.controller import Controller
from fuseguard.control.flex import FlexManagement
from fuseguard.control.targets import EvseTargets
from fuseguard.control.types import ChargerSpec, ControllerConfig
from fuseguard.model.circuits import CircuitSpec
from fuseguard.model.clock import VirtualClock
from fuseguard.model.phases import Phases
from fuseguard.model.samples import ChargerSample
from tests.control.fakes import FakeCharger, FakeMeter

UUIDS = ("25104c56d7f848af830af4300193efb3", "8e0c4f7a1b2d4c6e9f0a1b2c3d4e5f60")


class GarbledCharger(FakeCharger):
    """Draws like a normal car but reports ``garble`` in its measurement."""

    garble: float | None = None

    async def read(self) -> ChargerSample:
        sample = await super().read()
        if self.garble is None:
            return sample
        return dataclasses.replace(sample, current_a=Phases(self.garble, 0.0, 0.0))


@pytest.mark.parametrize("garble", [math.nan, math.inf])
async def test_non_finite_charger_sample_is_a_failed_read(garble: float) -> None:
    clock = VirtualClock()
    bad, good = GarbledCharger(), FakeCharger()
    chargers = {"cp1": bad, "cp2": good}
    meter = FakeMeter(clock, [bad, good], base_a=Phases(4, 4, 4))
    config = ControllerConfig(
        circuits=[CircuitSpec("main", None, Phases.uniform(32.0))],
        chargers=[ChargerSpec(id=cid, evse_uuid=UUIDS[i]) for i, cid in enumerate(chargers)],
    )
    controller = Controller(
        clock=clock,
        config=config,
        meter=meter,
        chargers=chargers,
        flex=FlexManagement(clock, fuse_a=32.0),
        targets=EvseTargets(clock),
    )
    task = asyncio.create_task(controller.run())
    try:
        await clock.advance(60.0)
        bad.garble = garble
        await clock.advance(60.0)
        plugs = {p.id: p for p in controller.status().plugs}
        assert plugs["cp1"].error == "charger sample has non-finite values"
        assert plugs["cp2"].setpoint_a > 0  # the others go on charging
        assert meter.grid_a().all_le(Phases.uniform(32.0), tolerance=1e-6)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
