"""The in-process adapters: ports over the virtual site, with injected faults."""

from __future__ import annotations

import pytest

from fuseguard.control.ports import (
    Charger,
    DeviceConnectionError,
    DeviceResponseError,
    GridMeter,
    SupportsSafeCurrent,
)
from fuseguard.model.clock import VirtualClock
from fuseguard.model.faults import DeviceFault
from fuseguard.model.phases import Phases, Rotation
from fuseguard.model.status import CpState
from fuseguard.scenario.adapters import ConnectorCharger, SiteMeter
from fuseguard.sim.chargepoint import ChargePoint
from fuseguard.sim.site import BaseLoad, SiteModel
from fuseguard.sim.vehicle import SimVehicle


def _site() -> tuple[VirtualClock, SiteModel, ChargePoint]:
    clock = VirtualClock()
    site = SiteModel(clock=clock)
    site.add(BaseLoad(lambda _t: Phases(5, 6, 7)))
    conn = ChargePoint(name="cp1", rotation=Rotation.L2L3L1, max_current_a=32, limit_a=0.0)
    site.add(conn)
    return clock, site, conn


def _car(energy_wh: float, *, phases: int, max_a: float) -> SimVehicle:
    return SimVehicle.wanting(energy_wh, phases=phases, max_current_a=max_a, name="car")


async def test_meter_reads_site_and_faults() -> None:
    clock, site, conn = _site()
    meter = SiteMeter(site, mode="phases", clock=clock, slow_delay_s=3)
    assert isinstance(meter, GridMeter)
    conn.plug_in(_car(10_000, phases=1, max_a=16), 0.0)
    conn.write_limit(10, 0.0)
    site.tick()
    await clock.advance(1)
    site.tick()
    sample = await meter.read()
    # A 1-phase car on an L2L3L1 charger loads grid L2.
    assert sample.current_a == Phases(5, 16, 7)
    assert sample.power_w == pytest.approx(28 * 230)
    meter.set_fault("offline")
    with pytest.raises(DeviceConnectionError, match="offline"):
        await meter.read()
    meter.set_fault("garbage")
    with pytest.raises(DeviceResponseError):
        await meter.read()
    meter.set_fault("frozen")
    await clock.advance(5)
    site.tick()
    frozen = await meter.read()
    assert frozen.stale
    assert frozen.timestamp == sample.timestamp
    meter.set_fault(None)
    assert not (await meter.read()).stale
    with pytest.raises(ValueError, match="unknown meter fault"):
        meter.set_fault("stuck_contactor")


async def test_slow_meter_takes_virtual_time() -> None:
    clock, site, _conn = _site()
    meter = SiteMeter(site, clock=clock, slow_delay_s=3)
    meter.set_fault("slow")
    import asyncio

    task = asyncio.ensure_future(meter.read())
    await clock.advance(2.5)
    assert not task.done()
    await clock.advance(1)
    assert task.done()
    assert (await task).current_a is not None


async def test_total_power_meter_has_no_phase_currents() -> None:
    clock, site, _conn = _site()
    site.tick()
    sample = await SiteMeter(site, mode="total_power", clock=clock).read()
    assert sample.current_a is None
    assert sample.power_w == pytest.approx(18 * 230)


async def test_connector_charger_writes_reads_and_faults() -> None:
    clock, site, conn = _site()
    charger = ConnectorCharger(conn, clock=clock)
    assert isinstance(charger, Charger)
    assert isinstance(charger, SupportsSafeCurrent)
    conn.plug_in(_car(10_000, phases=3, max_a=16), 0.0)
    await charger.set_current_limit(12)
    await clock.advance(1)
    site.tick()
    s = await charger.read()
    assert s.cp_state is CpState.C
    assert s.current_a == Phases(12, 12, 12)
    assert conn.grid_current_a() == Phases(12, 12, 12)
    await charger.set_current_limit(5)  # below 6 A: pause
    await clock.advance(1)
    site.tick()
    assert (await charger.read()).cp_state is CpState.B
    charger.set_fault("offline")
    with pytest.raises(DeviceConnectionError):
        await charger.set_current_limit(16)
    charger.set_fault(None)
    await charger.set_current_limit(16)
    await clock.advance(1)
    site.tick()
    charger.set_fault("stuck_contactor")
    await charger.set_current_limit(0)  # accepted, but the welded contactor keeps drawing
    await clock.advance(1)
    site.tick()
    s = await charger.read()
    assert s.current_a == Phases(16, 16, 16)
    assert s.errors == ("contactor_welded",)


async def test_charger_side_safe_current_after_silence() -> None:
    clock, site, conn = _site()
    charger = ConnectorCharger(conn, clock=clock)
    conn.plug_in(_car(50_000, phases=3, max_a=32), 0.0)
    await charger.set_safe_current(6, 60)
    await charger.set_current_limit(32)
    for _ in range(59):
        await clock.advance(1)
        site.tick()
    assert conn.draw_a == 32
    for _ in range(3):
        await clock.advance(1)
        site.tick()
    assert conn.watchdog_expired
    assert conn.draw_a == 6


async def test_energy_stops_at_the_need() -> None:
    clock, site, conn = _site()
    conn.plug_in(_car(100, phases=3, max_a=16), 0.0)  # 100 Wh = 32.6 s at 11 kW
    conn.write_limit(16, 0.0)
    for _ in range(60):
        await clock.advance(1)
        site.tick()
    assert conn.car is not None
    assert conn.car.drawn_wh == pytest.approx(100)
    assert conn.meter_wh == pytest.approx(100)
    assert conn.draw_a == 0


async def test_charger_faults_are_the_charge_points_own() -> None:
    clock, site, conn = _site()
    charger = ConnectorCharger(conn, clock=clock)
    conn.plug_in(_car(50_000, phases=3, max_a=16), 0.0)
    await charger.set_current_limit(16)
    await clock.advance(1)
    site.tick()
    charger.set_fault("rcd_trip")
    assert conn.faults == {DeviceFault.RCD_TRIP}
    s = await charger.read()
    assert s.cp_state is CpState.E
    assert s.current_a == Phases()
    charger.set_fault("ignores_limit")  # one fault at a time: the trip is cleared
    assert charger.fault is DeviceFault.IGNORES_LIMIT
    await clock.advance(1)
    site.tick()
    await charger.set_current_limit(6)
    await clock.advance(1)
    site.tick()
    assert (await charger.read()).current_a == Phases(16, 16, 16)
    charger.set_fault(None)
    assert charger.fault is None
    with pytest.raises(ValueError, match="unknown charger fault"):
        charger.set_fault("rejects_profiles")  # no OCPP profiles in process
