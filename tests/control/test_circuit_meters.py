"""Sub-circuit meters and the PV meter in the control loop (virtual time, in-memory devices)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from fuseguard.control.controller import ChargerSpec, CircuitSpec, Controller, ControllerConfig
from fuseguard.control.flex import FlexManagement
from fuseguard.control.ports import DeviceConnectionError
from fuseguard.control.types import MeterTiming
from fuseguard.model.clock import Clock, VirtualClock
from fuseguard.model.phases import ZERO, Phases
from fuseguard.model.samples import MeterSample
from fuseguard.model.status import ChargeMode

from .fakes import FakeCharger, FakeMeter

GARAGE_BASE = Phases(10, 10, 10)


@dataclass
class PvFake:
    """A PV meter: production is negative power."""

    clock: Clock
    production_w: float = 2000.0
    offline: bool = False

    async def read(self) -> MeterSample:
        if self.offline:
            raise DeviceConnectionError("pv: connection refused")
        return MeterSample(timestamp=self.clock.now(), power_w=-self.production_w, current_a=None)


@dataclass
class Site:
    clock: VirtualClock
    grid: FakeMeter
    garage: FakeMeter
    chargers: dict[str, FakeCharger]
    controller: Controller
    flex: FlexManagement
    pv: PvFake

    async def run_for(self, seconds: float) -> None:
        await self.clock.advance(seconds)

    def setpoint(self, pid: str) -> int:
        return next(p.setpoint_a for p in self.controller.status().plugs if p.id == pid)


@pytest.fixture
async def site_factory() -> AsyncIterator[Callable[..., Site]]:
    tasks: list[asyncio.Task[None]] = []

    def make(
        *,
        garage_meter: bool = True,
        pv_meter: bool = False,
        grid_base: Phases = ZERO,
        mode: ChargeMode = ChargeMode.FAST,
    ) -> Site:
        clock = VirtualClock()
        cp1, cp2 = FakeCharger(), FakeCharger()
        chargers = {"cp1": cp1, "cp2": cp2}
        garage = FakeMeter(clock, [cp1], base_a=GARAGE_BASE)
        # the grid meter sees the garage (its load and cp1), cp2 and the rest of the house
        grid = FakeMeter(clock, [cp1, cp2], base_a=GARAGE_BASE + grid_base)
        pv = PvFake(clock)
        flex = FlexManagement(clock, fuse_a=63, timeout_s=120)
        config = ControllerConfig(
            circuits=[
                CircuitSpec("main", None, 63),
                CircuitSpec("garage", "main", 25, meter="sdm630" if garage_meter else None),
            ],
            chargers=[
                ChargerSpec(id="cp1", circuit="garage", mode=mode),
                ChargerSpec(id="cp2", mode=mode),
            ],
            circuit_meter_timing={"garage": MeterTiming(period_s=1.0, stale_after_s=5.0)},
            pv_meter_timing=MeterTiming(period_s=2.0, stale_after_s=10.0),
        )
        controller = Controller(
            clock=clock,
            config=config,
            meter=grid,
            chargers=chargers,
            flex=flex,
            circuit_meters={"garage": garage} if garage_meter else None,
            pv_meter=pv if pv_meter else None,
        )
        tasks.append(asyncio.create_task(controller.run()))
        return Site(clock, grid, garage, chargers, controller, flex, pv)

    yield make
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_sub_circuit_meter_makes_its_non_ev_load_measured(site_factory) -> None:
    site = site_factory()
    await site.run_for(60)
    st = site.controller.status()
    assert st.non_ev_load_a["garage"] == GARAGE_BASE
    assert st.circuit_meter_fallback == ()
    # the garage fuse (25 A) carries its 10 A household load and cp1
    assert site.setpoint("cp1") == 15
    assert site.garage.grid_a().all_le(Phases.uniform(25), tolerance=1e-6)
    assert site.setpoint("cp2") == 32


async def test_without_the_sub_meter_the_circuit_load_is_only_assumed(site_factory) -> None:
    # the counter-check: the same site unmetered trusts the configured assumption (0 A)
    site = site_factory(garage_meter=False)
    await site.run_for(60)
    assert site.setpoint("cp1") == 25
    assert not site.garage.grid_a().all_le(Phases.uniform(25), tolerance=1e-6)


async def test_a_lost_sub_meter_falls_back_on_that_circuit_only(site_factory) -> None:
    site = site_factory()
    site.flex.update(fallback_current_limit_a=6)
    await site.run_for(60)
    assert site.setpoint("cp1") == 15
    site.garage.offline = True
    await site.run_for(3)
    assert site.setpoint("cp1") == 15  # within stale_after_s (5 s)
    await site.run_for(5)
    st = site.controller.status()
    assert st.circuit_meter_fallback == ("garage",)
    assert not st.meter_fallback
    # worst plausible: at least the fuse minus the fallback current (25 - 6)
    assert st.non_ev_load_a["garage"] == Phases.uniform(19)
    assert site.setpoint("cp1") <= 6
    cp1 = next(p for p in st.plugs if p.id == "cp1")
    assert "garage meter fallback" in cp1.reason
    assert site.setpoint("cp2") == 32  # the rest of the site is untouched
    site.garage.offline = False
    await site.run_for(10)
    assert site.controller.status().circuit_meter_fallback == ()
    assert site.setpoint("cp1") == 15


async def test_a_lost_sub_meter_keeps_its_peak(site_factory) -> None:
    site = site_factory()
    site.flex.update(fallback_current_limit_a=6)
    site.garage.base_a = Phases(22, 22, 22)
    site.grid.base_a = Phases(22, 22, 22)
    await site.run_for(60)
    assert site.setpoint("cp1") == 0  # 3 A left is below the IEC minimum
    site.garage.base_a = GARAGE_BASE
    site.grid.base_a = GARAGE_BASE
    site.garage.frozen = True
    await site.run_for(20)
    st = site.controller.status()
    assert st.circuit_meter_fallback == ("garage",)
    assert st.non_ev_load_a["garage"] == Phases(22, 22, 22)  # the peak beats 25 - 6


async def test_a_rise_on_the_sub_circuit_is_shed_there(site_factory) -> None:
    site = site_factory()
    await site.run_for(60)
    assert site.setpoint("cp1") == 15
    site.garage.base_a = Phases(18, 18, 18)  # the grid meter is a fake: it shows no change
    await site.run_for(2)
    assert site.chargers["cp1"].limit_a == 7
    assert site.setpoint("cp2") == 32


async def test_the_pv_meter_caps_the_surplus(site_factory) -> None:
    # 20 A export per phase at the grid meter (a misplaced or wrongly signed grid meter?)
    site = site_factory(pv_meter=True, grid_base=Phases(-30, -30, -30), mode=ChargeMode.PV)
    await site.run_for(30)
    snapshot = site.controller.last_snapshot
    assert snapshot is not None
    assert snapshot.pv_surplus_w == pytest.approx(2000.0)
    assert site.controller.status().pv_power_w == pytest.approx(-2000.0)
    site.pv.production_w = 20_000.0
    await site.run_for(4)
    snapshot = site.controller.last_snapshot
    assert snapshot is not None
    # now the grid meter's export (20 A x 3 x 230 V) is the smaller one
    assert snapshot.pv_surplus_w == pytest.approx(20 * 3 * 230.0, rel=0.01)


async def test_a_lost_pv_meter_leaves_the_grid_meter_alone(site_factory) -> None:
    site = site_factory(pv_meter=True, grid_base=Phases(-30, -30, -30), mode=ChargeMode.PV)
    await site.run_for(30)
    site.pv.offline = True
    await site.run_for(15)
    st = site.controller.status()
    assert st.pv_power_w is None
    assert not st.meter_fallback
    snapshot = site.controller.last_snapshot
    assert snapshot is not None
    assert snapshot.pv_surplus_w == pytest.approx(20 * 3 * 230.0, rel=0.01)


async def test_the_pv_meter_never_stands_in_for_the_grid_meter(site_factory) -> None:
    site = site_factory(pv_meter=True, grid_base=Phases(-30, -30, -30), mode=ChargeMode.PV)
    site.flex.update(fallback_current_limit_a=6)
    await site.run_for(30)
    site.grid.offline = True
    await site.run_for(15)
    st = site.controller.status()
    assert st.meter_fallback
    assert st.pv_power_w == pytest.approx(-2000.0)
    assert site.setpoint("cp1") + site.setpoint("cp2") <= 6


def _config(meter: str | None) -> ControllerConfig:
    return ControllerConfig(
        circuits=[CircuitSpec("main", None, 63), CircuitSpec("garage", "main", 25, meter=meter)],
        chargers=[ChargerSpec(id="cp1", circuit="garage")],
    )


def test_a_named_circuit_meter_needs_a_driver() -> None:
    clock = VirtualClock()
    cp1 = FakeCharger()
    with pytest.raises(ValueError, match="no meter driver for circuit 'garage'"):
        Controller(
            clock=clock,
            config=_config("sdm630"),
            meter=FakeMeter(clock, [cp1]),
            chargers={"cp1": cp1},
        )


@pytest.mark.parametrize("circuit", ["main", "attic"])
def test_a_circuit_meter_needs_a_sub_circuit(circuit: str) -> None:
    clock = VirtualClock()
    cp1 = FakeCharger()
    with pytest.raises(ValueError, match="needs a sub-circuit"):
        Controller(
            clock=clock,
            config=_config(None),
            meter=FakeMeter(clock, [cp1]),
            chargers={"cp1": cp1},
            circuit_meters={circuit: FakeMeter(clock, [cp1])},
        )
