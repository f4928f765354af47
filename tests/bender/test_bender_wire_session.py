"""The driver controls the virtual Bender over loopback: a full session, both firmware versions."""

from __future__ import annotations

from bender_bench import Bench, count_writes, make_bench

from fuseguard.control.ports import Charger, SupportsSafeCurrent
from fuseguard.devices.bender import BenderCharger
from fuseguard.model.phases import Phases, Rotation
from fuseguard.model.samples import ChargerSample
from fuseguard.model.status import CpState, OcppState, PlugStatus, plug_status
from fuseguard.sim.vehicle import SimVehicle


async def _idle_plug_authorize_charge(bench: Bench, drv: BenderCharger) -> ChargerSample:
    """The first half of a session: idle, plugged in, authorised, charging; returns the idle
    sample."""
    c1 = bench.c1
    idle = await drv.read()
    assert idle.cp_state is CpState.A
    assert idle.ocpp_state is OcppState.AVAILABLE
    assert idle.current_a == Phases()
    assert idle.firmware is not None
    assert idle.firmware.startswith(bench.controller.config.firmware.value)

    # plug: waits for authorisation
    c1.plug_in(SimVehicle(phases=2, max_current_a=16, soc=0.5))
    await bench.advance(1)
    plugged = await drv.read()
    assert plugged.cp_state is CpState.B
    assert plugged.ocpp_state is OcppState.PREPARING
    assert not plugged.authorized
    assert plugged.signalled_current_a == 0

    # authorise and charge; the car reacts after its 2 s response delay
    await drv.set_current_limit(10)
    c1.authorize("046e453af012ca3")
    await bench.advance(1)
    starting = await drv.read()
    assert starting.authorized
    assert starting.signalled_current_a == 10
    assert starting.cp_state is CpState.B
    assert starting.ocpp_state is OcppState.PREPARING
    await bench.advance(3)
    charging = await drv.read()
    assert charging.cp_state is CpState.C
    assert charging.ocpp_state is OcppState.CHARGING
    assert charging.current_a == Phases(10.0, 10.0, 0.0)
    assert charging.phases_in_use == 2
    assert charging.power_w == 2 * 10 * 230
    assert charging.limit_a == 10
    assert plug_status(
        online=True,
        cp=charging.cp_state,
        ocpp=charging.ocpp_state,
        charging_for_s=charging.charging_duration_s,
    ) is (PlugStatus.RECENTLY_STARTED_CHARGING)
    return idle


async def test_full_session(bench: Bench) -> None:
    c1 = bench.c1
    async with bench.driver() as drv:
        assert isinstance(drv, Charger)
        assert isinstance(drv, SupportsSafeCurrent)
        assert drv.firmware == bench.controller.config.firmware.value
        # start() programmed the charger-side fallback
        assert (c1.safe_current_a, c1.comm_timeout_s) == (6, 60)
        assert await drv.read_safe_current() == (6, 60)

        idle = await _idle_plug_authorize_charge(bench, drv)
        # grid view through the wiring rotation
        c1.rotation = Rotation.L2L3L1
        assert c1.grid_current_a() == Phases(0.0, 10.0, 10.0)
        await bench.advance(60)
        later = await drv.read()
        assert later.session_energy_wh is not None and later.session_energy_wh > 60
        assert later.energy_wh is not None and later.energy_wh > idle.energy_wh  # type: ignore[operator]
        assert later.charging_duration_s is not None and later.charging_duration_s >= 60

        # limit 0 pauses: suspendedevse, the car stops after its delay
        await drv.set_current_limit(0)
        paused_now = await drv.read()
        assert paused_now.signalled_current_a == 0
        assert paused_now.ocpp_state is OcppState.SUSPENDEDEVSE
        await bench.advance(3)
        paused = await drv.read()
        assert paused.cp_state is CpState.B
        assert paused.current_a == Phases()

        # resume at 16 A: capped by the car's own maximum
        await drv.set_current_limit(16)
        await bench.advance(3)
        resumed = await drv.read()
        assert resumed.ocpp_state is OcppState.CHARGING
        assert resumed.current_a == Phases(16.0, 16.0, 0.0)

        # full: the taper brings the current down, then suspendedev
        c1.set_soc(0.9)
        await bench.advance(1)
        tapering = await drv.read()
        assert 0 < tapering.current_a.l1 < 16
        c1.set_soc(0.999)
        await bench.advance(1)
        full = await drv.read()
        assert full.cp_state is CpState.B
        assert full.ocpp_state is OcppState.SUSPENDEDEV
        assert full.signalled_current_a == 16

        # unplug
        c1.unplug()
        await bench.advance(1)
        gone = await drv.read()
        assert gone.cp_state is CpState.A
        assert gone.ocpp_state is OcppState.AVAILABLE
        assert gone.session_energy_wh == 0


async def test_limit_written_only_when_changed_and_refreshed(bench533: Bench) -> None:
    writes = count_writes(bench533.c1)
    async with bench533.driver(safe_current_a=None, refresh_interval_s=20) as drv:
        await drv.set_current_limit(16)
        await drv.set_current_limit(16)
        await drv.set_current_limit(16)
        assert writes == [(1000, [16])]
        assert not await drv.keepalive()
        await bench533.clock.advance(21)
        assert await drv.keepalive()
        await drv.set_current_limit(16)  # fresh again: nothing written
        await drv.set_current_limit(3)  # 1..5 act as 0: written as 0
        assert writes == [(1000, [16]), (1000, [16]), (1000, [0])]
        assert bench533.c1.hems_limit_a == 0


async def test_charger_watchdog_falls_back_to_safe_current(bench533: Bench) -> None:
    c1 = bench533.c1
    c1.plug_in(SimVehicle(phases=3, max_current_a=32))
    c1.authorize()
    async with bench533.driver(safe_current_a=8, safe_timeout_s=30) as drv:
        await drv.set_current_limit(20)
        await bench533.advance(5)
        assert (await drv.read()).current_a == Phases.uniform(20.0)
        await bench533.advance(20)  # 25 s since the write: still fine
        assert (await drv.read()).signalled_current_a == 20
        await bench533.advance(10)  # fuseguard "died": 35 s without a write
        fallback = await drv.read()
        assert fallback.signalled_current_a == 8
        assert fallback.limit_a == 20  # register 1000 reads back the last value written
        await bench533.advance(3)
        assert (await drv.read()).current_a == Phases.uniform(8.0)
        # alive again: the keep-alive write restores the limit
        assert await drv.keepalive()
        assert (await drv.read()).signalled_current_a == 20


async def test_second_connector_on_base_port_plus_one() -> None:
    b = await make_bench(connectors=2)
    try:
        c2 = b.controller.connector(2)
        c2.plug_in(SimVehicle(phases=1, max_current_a=32))
        c2.authorize()
        async with b.driver(use_rest=False) as drv1:
            drv2 = b.driver(use_rest=False)
            drv2.modbus_port = b.handle.modbus_ports[1]
            async with drv2:
                await drv2.set_current_limit(12)
                await b.advance(3)
                s2 = await drv2.read()
                s1 = await drv1.read()
        assert s2.current_a == Phases(12.0, 0.0, 0.0)
        assert s2.ocpp_state is OcppState.CHARGING
        assert s1.cp_state is CpState.A
        assert b.controller.full_state()["slave_state"] == "charging"
        # connector 2 is wired L2L3L1 by default: its L1 terminal loads grid L2
        assert b.site.current_a() == Phases(0.0, 12.0, 0.0)
    finally:
        await b.handle.close()


def test_the_watchdog_refresh_follows_the_safe_timeout() -> None:
    """The writer re-writes a Bender's unchanged limit at its watchdog's pace (a third of the
    safe-current timeout, at least 1 s); a timeout of 0 (no watchdog) asks for nothing."""
    from fuseguard.control.ports import SupportsWatchdog

    def drv(**kw: object) -> BenderCharger:
        return BenderCharger(host="127.0.0.1", **kw)  # type: ignore[arg-type]

    assert isinstance(drv(), SupportsWatchdog)
    assert drv(safe_timeout_s=15).watchdog_refresh_s == 5.0
    assert drv(safe_timeout_s=60).watchdog_refresh_s == 20.0
    assert drv(safe_timeout_s=2).watchdog_refresh_s == 1.0
    assert drv(safe_timeout_s=0).watchdog_refresh_s == float("inf")
