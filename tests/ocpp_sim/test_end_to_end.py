"""The real central system (``devices/ocpp``, built by the factory from a config) against the
virtual OCPP 1.6 charge point over loopback: boot, profile install, limit change reaching the car,
lease expiry falling back to the safe profile when the central system goes away, reconnect and
re-install, faults."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fuseguard.config import FuseguardConfig
from fuseguard.devices.factory import build_ocpp_chargers
from fuseguard.devices.ocpp import OcppConnector
from fuseguard.model.clock import RealClock
from fuseguard.model.faults import DeviceFault
from fuseguard.sim.ocpp.schedule import Purpose
from fuseguard.sim.ocpp.station import OcppSimConfig, VirtualOcppStation
from fuseguard.sim.vehicle import SimVehicle

PASSWORD = "virtual-cp-password"


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.05)


def _cfg(tmp_path: Path, **ocpp: Any) -> FuseguardConfig:
    return FuseguardConfig.model_validate(
        {
            "data_dir": str(tmp_path),
            "site": {"edge_id": "garage", "main_fuse_a": 63},
            "chargers": [
                {
                    "id": "bay-1",
                    "evse_uuid": "a" * 32,
                    "driver": "ocpp",
                    "ocpp_id": "CP1",
                    "ocpp_password": PASSWORD,
                    "max_current_a": 32,
                    "safe_current_a": 6,
                    "plugs": [{"uuid": "b" * 32, "label": "left"}],
                }
            ],
            "api": {"ocpp": {"host": "127.0.0.1", "port": 0, "meter_interval_s": 1, **ocpp}},
        }
    )


@dataclass
class Rig:
    conn: OcppConnector
    virtual: VirtualOcppStation
    task: asyncio.Task[None]


@contextlib.asynccontextmanager
async def rig(tmp_path: Path, *, delay_s: float = 0.0, **ocpp: Any) -> AsyncIterator[Rig]:
    clock = RealClock()
    drivers = build_ocpp_chargers(_cfg(tmp_path, **ocpp), clock)
    conn = drivers["bay-1"]
    assert isinstance(conn, OcppConnector)
    await conn.start()
    virtual = VirtualOcppStation(
        OcppSimConfig(
            url=conn.server.url,
            identity="CP1",
            password=PASSWORD,
            profile_delay_s=delay_s,
            tick_s=0.05,
            backoff_min_s=0.1,
            backoff_max_s=0.5,
        ),
        clock,
    )
    virtual.plug_in(1, SimVehicle(max_current_a=32.0, response_delay_s=0.0, soc=0.2))
    task = asyncio.create_task(virtual.run())
    try:
        yield Rig(conn, virtual, task)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await conn.close()


async def test_boot_profiles_and_a_limit_change_reach_the_car(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        await wait_for(r.conn.station.ready.is_set)
        assert r.virtual.boots == 1
        # the central system configured the meter values it needs
        assert r.virtual.keys["MeterValueSampleInterval"] == "1"
        assert "Current.Offered" in r.virtual.keys["MeterValuesSampledData"]
        # the safe profile (stack level 0) is installed on the connector
        levels = {(p.purpose, p.stack_level) for p in r.virtual.stack.profiles}
        assert (Purpose.TX_DEFAULT, 0) in levels
        core = r.virtual.connector(1)
        await r.conn.set_current_limit(16)
        await wait_for(lambda: core.offered_a == 16.0 and core.draw_a == 16.0)
        # the central system sees the car draw 16 A per phase through MeterValues
        await wait_for(lambda: _sample_current(r.conn) == 16.0)
        await r.conn.set_current_limit(10)
        await wait_for(lambda: core.draw_a == 10.0)
        await r.conn.set_current_limit(0)  # pauses
        await wait_for(lambda: core.offered_a == 0.0 and core.draw_a == 0.0)
        sample = await r.conn.read()
        assert sample.errors == ()


def _sample_current(conn: OcppConnector) -> float | None:
    try:
        sample = conn.station.sample(conn.connector_id)
    except Exception:  # not connected / no status yet
        return None
    return sample.current_a.l1


async def test_profile_delay_holds_the_old_limit(tmp_path: Path) -> None:
    async with rig(tmp_path, delay_s=1.0) as r:
        await wait_for(r.conn.station.ready.is_set)
        core = r.virtual.connector(1)
        await r.conn.set_current_limit(16)
        await wait_for(lambda: core.offered_a == 16.0)
        await r.conn.set_current_limit(8)
        await asyncio.sleep(0.4)
        assert core.offered_a == 16.0  # not yet: the charge point applies it 1 s later
        await wait_for(lambda: core.offered_a == 8.0, 3.0)


async def test_lease_expiry_falls_back_to_safe_then_reconnect_reinstalls(tmp_path: Path) -> None:
    async with rig(tmp_path, lease_s=5) as r:
        await wait_for(r.conn.station.ready.is_set)
        core = r.virtual.connector(1)
        await r.conn.set_current_limit(20)
        await wait_for(lambda: core.offered_a == 20.0)
        # the central system goes away: nobody renews the lease
        await r.conn.close()
        await wait_for(lambda: not r.virtual.connected.is_set(), 5)
        assert core.offered_a == 20.0
        await wait_for(lambda: core.offered_a == 6.0, 8.0)  # the safe profile, by itself
        assert core.draw_a in (6.0, 20.0)
        await wait_for(lambda: core.draw_a == 6.0, 3.0)
        # it comes back on the same port: the charge point reconnects, boots, gets profiles again
        await r.conn.start()
        await wait_for(lambda: r.virtual.boots == 2, 10)
        await wait_for(r.conn.station.ready.is_set)
        await r.conn.set_current_limit(20)
        await wait_for(lambda: core.offered_a == 20.0)


async def test_rejects_profiles_is_reported_as_an_error(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        r.virtual.set_fault(DeviceFault.REJECTS_PROFILES)
        await wait_for(lambda: r.virtual.boots == 1)
        await wait_for(lambda: _errors(r.conn) != ())
        assert r.virtual.stack.profiles == []


def _errors(conn: OcppConnector) -> tuple[str, ...]:
    try:
        return conn.station.sample(conn.connector_id).errors
    except Exception:
        return ()


async def test_reboot_reconnects_and_keeps_the_profiles(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        await wait_for(r.conn.station.ready.is_set)
        await r.conn.set_current_limit(12)
        core = r.virtual.connector(1)
        await wait_for(lambda: core.offered_a == 12.0)
        r.virtual.set_fault(DeviceFault.REBOOTS)
        await wait_for(lambda: r.virtual.boots == 2)
        assert DeviceFault.REBOOTS not in r.virtual.faults
        assert core.offered_a == 12.0  # profiles are persistent across a reboot


async def test_composite_schedule_and_clear_over_the_wire(tmp_path: Path) -> None:
    from ocpp.v16 import call

    async with rig(tmp_path) as r:
        await wait_for(r.conn.station.ready.is_set)
        await r.conn.set_current_limit(14)
        session = r.conn.station.session
        assert session is not None
        # answers are validated against the OCPP 1.6 schemas by the central system's library
        result = await session.call(call.GetCompositeSchedule(connector_id=1, duration=600))
        assert result.status == "Accepted"
        periods = result.charging_schedule["charging_schedule_period"]
        assert periods[0]["limit"] == 14.0  # the lease, over the safe profile
        assert any(p["limit"] == 6.0 for p in periods[1:])  # the safe profile after the lease
        cleared = await session.call(
            call.ClearChargingProfile(charging_profile_purpose="TxProfile")
        )
        assert cleared.status == "Unknown"  # there is none
        cleared = await session.call(call.ClearChargingProfile())
        assert cleared.status == "Accepted"
        assert r.virtual.stack.profiles == []
        await wait_for(lambda: r.virtual.connector(1).offered_a == 32.0)
