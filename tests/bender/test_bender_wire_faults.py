"""Every injectable fault, seen through the driver over loopback."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from bender_bench import Bench, make_bench

from fuseguard.control.ports import (
    DeviceAuthError,
    DeviceConnectionError,
    DeviceError,
    DeviceResponseError,
    DeviceTimeoutError,
)
from fuseguard.devices.bender import BenderCharger
from fuseguard.model.faults import DeviceFault
from fuseguard.model.phases import Phases
from fuseguard.model.status import CpState, OcppState, PlugStatus, plug_status
from fuseguard.sim.vehicle import SimVehicle


async def _charging(bench: Bench, drv: BenderCharger) -> None:
    bench.c1.plug_in(SimVehicle(phases=3, max_current_a=16))
    bench.c1.authorize()
    await drv.set_current_limit(16)
    await bench.advance(3)
    assert (await drv.read()).cp_state is CpState.C


async def test_offline_times_out_then_recovers(bench533: Bench) -> None:
    async with bench533.driver() as drv:
        bench533.c1.set_fault(DeviceFault.OFFLINE)
        with pytest.raises(DeviceTimeoutError, match="no REST answer"):
            await drv.read()
        assert drv.last_error is not None
        modbus_only = bench533.driver(use_rest=False)
        with pytest.raises(DeviceTimeoutError, match="Modbus"):
            await modbus_only.read()
        await modbus_only.close()
        bench533.c1.clear_fault(DeviceFault.OFFLINE)
        sample = await drv.read()
        assert sample.ocpp_state is OcppState.AVAILABLE
        assert drv.last_error is None


async def test_slow_answers_within_timeout_or_times_out(bench533: Bench) -> None:
    bench533.controller.config.slow_delay_s = 0.15
    bench533.c1.set_fault(DeviceFault.SLOW)
    async with bench533.driver(request_timeout_s=1.0) as drv:
        started = time.monotonic()
        sample = await drv.read()
        assert sample.cp_state is CpState.A
        assert time.monotonic() - started >= 0.15
    bench533.controller.config.slow_delay_s = 1.0
    impatient = bench533.driver(request_timeout_s=0.2, safe_current_a=None)
    with pytest.raises(DeviceTimeoutError):
        await impatient.read()
    await impatient.close()


@pytest.mark.parametrize("use_rest", [True, False], ids=["rest", "modbus"])
async def test_garbage_is_a_response_error_with_reason(bench: Bench, use_rest: bool) -> None:
    async with bench.driver(use_rest=use_rest) as drv:
        bench.c1.set_fault(DeviceFault.GARBAGE)
        with pytest.raises(DeviceResponseError, match="garbage answer") as info:
            await drv.read()
        assert not isinstance(info.value, DeviceConnectionError)
        assert drv.last_error is not None and "garbage" in drv.last_error
        assert plug_status(online=False, cp=None) is PlugStatus.OFFLINE
        bench.c1.clear_fault()
        assert (await drv.read()).cp_state is CpState.A


async def test_garbage_at_start_is_reported(bench533: Bench) -> None:
    bench533.c1.set_fault(DeviceFault.GARBAGE)
    drv = bench533.driver()
    with pytest.raises(DeviceResponseError, match="firmware register"):
        await drv.start()
    await drv.close()


async def test_rcd_trip_faults_and_opens_the_contactor(bench: Bench) -> None:
    async with bench.driver() as drv:
        await _charging(bench, drv)
        bench.c1.set_fault(DeviceFault.RCD_TRIP)
        await bench.advance(1)
        tripped = await drv.read()
        assert tripped.ocpp_state is OcppState.FAULTED
        assert tripped.cp_state is CpState.E
        assert tripped.current_a == Phases()
        assert tripped.signalled_current_a == 0
        assert "rcmb_triggered" in tripped.errors
        assert "rcd_triggered" in tripped.errors
        assert (
            plug_status(online=True, cp=tripped.cp_state, ocpp=tripped.ocpp_state)
            is PlugStatus.ERROR
        )
        rest = await drv.read_rest_state()
        assert rest.rcmb_triggered
        assert rest.conn_state.value == "vehicle_connector_error"
        bench.c1.clear_fault()
        await bench.advance(3)
        assert (await drv.read()).ocpp_state is OcppState.CHARGING


async def test_stuck_contactor_keeps_drawing_at_limit_zero(bench533: Bench) -> None:
    async with bench533.driver() as drv:
        await _charging(bench533, drv)
        bench533.c1.set_fault(DeviceFault.STUCK_CONTACTOR)
        await drv.set_current_limit(0)
        await bench533.advance(5)
        stuck = await drv.read()
        assert stuck.signalled_current_a == 0
        assert stuck.current_a == Phases.uniform(16.0)
        assert stuck.cp_state is CpState.C
        assert "contactor_welded" in stuck.errors
        assert bench533.site.current_a() == Phases.uniform(16.0)
        bench533.c1.clear_fault()
        await bench533.advance(3)
        assert (await drv.read()).current_a == Phases()


async def test_connection_refused_is_retried_then_raised() -> None:
    b = await make_bench()
    port = b.handle.modbus_port
    await b.handle.close()
    drv = BenderCharger(
        host="127.0.0.1",
        rest_port=b.handle.rest_port,
        modbus_port=port,
        request_timeout_s=0.3,
        retry_backoff_s=0.0,
    )
    with pytest.raises(DeviceConnectionError):
        await drv.start()
    with pytest.raises(DeviceConnectionError, match="REST connection failed"):
        await drv.read_rest_state()
    await drv.close()


async def test_rest_auth_modes() -> None:
    for mode, creds, auth in (
        ("headers", ("operator", "s3cret"), "headers"),
        ("basic", ("operator", "s3cret"), "basic"),
    ):
        b = await make_bench(rest_auth=mode, rest_password="s3cret")
        try:
            async with aiohttp.ClientSession() as session:
                good = b.driver(session=session, rest_credentials=creds, rest_auth=auth)
                assert (await good.read_rest_state()).ocpp_state is OcppState.AVAILABLE
                assert await good.read_rest_key("max_current") == "32"
                bad = b.driver(session=session, rest_credentials=("operator", "nope"))
                with pytest.raises(DeviceAuthError):
                    await bad.read_rest_state()
                anonymous = b.driver(session=session)
                with pytest.raises(DeviceAuthError):
                    await anonymous.read_rest_state()
        finally:
            await b.handle.close()


async def test_unknown_rest_key_is_404(bench533: Bench) -> None:
    async with aiohttp.ClientSession() as session:
        base = f"http://127.0.0.1:{bench533.handle.rest_port}"
        async with session.get(f"{base}/rest/no_such_key") as resp:
            assert resp.status == 404
        async with session.get(f"{base}/rest/ocpp_state") as resp:
            assert resp.status == 200
            assert await resp.text() == "ocpp_state:available\n"
        drv = bench533.driver(session=session)
        with pytest.raises(DeviceResponseError, match="HTTP 404"):
            await drv.read_rest_key("no_such_key")


async def test_close_while_offline_releases_hanging_requests() -> None:
    b = await make_bench()
    b.c1.set_fault(DeviceFault.OFFLINE)
    rest = b.driver(request_timeout_s=5.0, retry_attempts=1)
    modbus = b.driver(request_timeout_s=1.0, retry_attempts=1, use_rest=False)
    pending = [
        asyncio.create_task(rest.read_rest_state()),
        asyncio.create_task(modbus.read_modbus_state()),
    ]
    await asyncio.sleep(0.2)
    assert not any(t.done() for t in pending)
    started = time.monotonic()
    await b.handle.close()
    assert time.monotonic() - started < 3.0  # the server does not wait for hanging requests
    # the REST request is answered (503) at once; the Modbus client sees a vanished device
    results = await asyncio.gather(*pending, return_exceptions=True)
    assert all(isinstance(r, DeviceError) for r in results)
    await rest.close()
    await modbus.close()
