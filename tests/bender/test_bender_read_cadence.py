"""Read cadence: Modbus every read, REST ``full_state`` only when due or when the state changed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from bender_bench import Bench, make_bench

from fuseguard.control.ports import DeviceConnectionError, DeviceError, DeviceTimeoutError
from fuseguard.devices.bender import BenderCharger
from fuseguard.model.faults import DeviceFault
from fuseguard.model.status import CpState, OcppState
from fuseguard.sim.bender import Firmware
from fuseguard.sim.vehicle import SimVehicle


def count_rest(bench: Bench) -> list[int]:
    """Count ``/rest/full_state`` requests that reach the virtual device."""
    calls: list[int] = []
    original = bench.controller.full_state

    def counting() -> dict[str, str]:
        calls.append(1)
        return original()

    bench.controller.full_state = counting  # type: ignore[method-assign]
    return calls


async def test_rest_is_fetched_at_its_interval_while_nothing_changes(bench533: Bench) -> None:
    calls = count_rest(bench533)
    async with bench533.driver(rest_interval_s=10.0) as drv:
        for _ in range(10):  # 0 .. 9 s: one fetch, Modbus carries the rest
            sample = await drv.read()
            assert sample.cp_state is CpState.A
            await bench533.advance(1)
        assert len(calls) == 1
        await drv.read()  # 10 s after the first fetch
        assert len(calls) == 2
        await drv.read()
        assert len(calls) == 2


async def test_rest_is_fetched_again_at_once_on_a_cp_state_change(bench533: Bench) -> None:
    calls = count_rest(bench533)
    c1 = bench533.c1
    async with bench533.driver(rest_interval_s=3600.0) as drv:
        assert (await drv.read()).cp_state is CpState.A
        assert not (await drv.read()).authorized
        assert len(calls) == 1
        c1.plug_in(SimVehicle(phases=3, max_current_a=16))
        await bench533.advance(1)
        plugged = await drv.read()
        assert plugged.cp_state is CpState.B
        assert not plugged.authorized
        assert len(calls) == 2
        await drv.read()
        assert len(calls) == 2
        # authorisation changes no CP state; the offered current appearing triggers a fetch
        await drv.set_current_limit(16)
        c1.authorize("04aa")
        await bench533.advance(1)
        authorized = await drv.read()
        assert authorized.authorized  # from the fresh REST state, not the cached one
        assert len(calls) == 3
        await bench533.advance(3)
        charging = await drv.read()
        assert charging.cp_state is CpState.C
        assert charging.ocpp_state is OcppState.CHARGING
        assert len(calls) == 4
        # a new setpoint changes live values only: no fetch
        await drv.set_current_limit(10)
        await bench533.advance(3)
        assert (await drv.read()).signalled_current_a == 10
        assert len(calls) == 4
        c1.unplug()
        await bench533.advance(1)
        gone = await drv.read()
        assert gone.cp_state is CpState.A
        assert len(calls) == 5


async def test_rest_every_read_with_zero_interval_or_no_modbus_meter() -> None:
    bench = await make_bench(Firmware.V5_33)
    try:
        calls = count_rest(bench)
        async with bench.driver(rest_interval_s=0.0) as drv:
            for _ in range(3):
                await drv.read()
        assert len(calls) == 3
    finally:
        await bench.handle.close()
    bench = await make_bench(Firmware.V5_33, has_meter=False)
    try:
        calls = count_rest(bench)
        bench.c1.plug_in(SimVehicle(phases=1, max_current_a=16))
        bench.c1.authorize()
        async with bench.driver() as drv:
            await drv.set_current_limit(12)
            await bench.advance(4)
            for _ in range(3):
                sample = await drv.read()
                assert sample.current_a.max == pytest.approx(12.0)
        assert len(calls) == 3  # the live currents come from REST
    finally:
        await bench.handle.close()


async def test_a_failed_rest_fetch_is_retried_on_the_next_read(bench533: Bench) -> None:
    calls = count_rest(bench533)
    async with bench533.driver(rest_interval_s=3600.0) as drv:
        await drv.read()
        bench533.c1.set_fault(DeviceFault.OFFLINE)
        bench533.c1.plug_in(SimVehicle(phases=3, max_current_a=16))
        await bench533.advance(1)
        with pytest.raises(DeviceTimeoutError):
            await drv.read()
        bench533.c1.clear_fault(DeviceFault.OFFLINE)
        sample = await drv.read()
        assert sample.cp_state is CpState.B
        assert not sample.authorized
        assert len(calls) == 2


async def _hot_path(drv: BenderCharger, what: str, call: Callable[[], Awaitable[int]]) -> int:
    """The shape of the driver's register reads and writes: one plain attempt, the rest of
    the attempts (``_after_failure``) only after it failed."""
    try:
        return await call()
    except DeviceError as err:
        return await drv._after_failure(what, err, call)


async def test_retries_only_after_a_connection_failure() -> None:
    attempts: list[int] = []
    drv = BenderCharger(host="127.0.0.1", retry_attempts=3, retry_backoff_s=0.0)

    async def ok() -> int:
        attempts.append(1)
        return 7

    assert await _hot_path(drv, "ok", ok) == 7
    assert attempts == [1]

    async def refused() -> int:
        attempts.append(1)
        msg = "refused"
        raise DeviceConnectionError(msg)

    attempts.clear()
    with pytest.raises(DeviceConnectionError, match="refused"):
        await _hot_path(drv, "refused", refused)
    assert attempts == [1, 1, 1]  # three attempts in all, as before the fast path
    assert drv.last_error == "refused"

    flaky_left = [1]

    async def flaky() -> int:
        attempts.append(1)
        if flaky_left:
            flaky_left.pop()
            msg = "reset"
            raise DeviceConnectionError(msg)
        return 3

    attempts.clear()
    assert await _hot_path(drv, "flaky", flaky) == 3
    assert attempts == [1, 1]


async def test_session_and_limit_registers_are_read_only_when_they_can_have_changed(
    bench533: Bench,
) -> None:
    async with bench533.driver(rest_interval_s=10.0) as drv:
        reads: list[int] = []
        original = drv._read_registers

        async def counting(address: int, count: int):  # type: ignore[no-untyped-def]
            reads.append(address)
            return await original(address, count)

        drv._read_registers = counting  # type: ignore[method-assign]
        for _ in range(5):  # nothing changes: state and meter every time, session once
            await drv.read()
            await bench533.advance(1)
        assert reads.count(200) == 5
        assert reads.count(705) == 1
        assert reads.count(1000) == 1
        await drv.set_current_limit(16)  # a write: the read-back is fetched again at once
        sample = await drv.read()
        assert sample.limit_a == 16
        assert reads.count(1000) == 2
        bench533.c1.plug_in(SimVehicle(phases=3, max_current_a=16))  # a state change, too
        await bench533.advance(1)
        await drv.read()
        assert reads.count(705) == 3
