"""The lean Modbus TCP client on uvloop, the loop ``fuseguard run`` takes when it is installed.

uvloop's transports are not :class:`asyncio.Transport` subclasses: the client's protocol
asserted they were, so under uvloop every connection failed in ``connection_made`` and the
Bender link never read a register (round 14, found when ``fuseguard run --loop auto`` came).
"""

from __future__ import annotations

import asyncio

import pytest
from tests.devices.test_modbus_client import registers, serve

from fuseguard.control.ports import DeviceTimeoutError
from fuseguard.devices.modbus import ModbusTcpClient

uvloop = pytest.importorskip("uvloop")


async def _exchanges() -> None:
    async with serve(registers) as (port, seen):
        client = ModbusTcpClient(
            device="dev", host="127.0.0.1", port=port, unit_id=255, timeout_s=0.5
        )
        try:
            assert await client.read_holding_registers(104, 3) == [100, 101, 102]
            await client.write_registers(1000, [16])
            assert await client.read_holding_registers(200, 2) == [100, 101]
            client.close()  # dropped: the next exchange reconnects
            assert await client.read_holding_registers(122, 1) == [100]
        finally:
            client.close()
        assert len(seen) == 4


async def _silent_device_times_out() -> None:
    async with serve(lambda *_: b"") as (port, _):
        client = ModbusTcpClient(
            device="dev", host="127.0.0.1", port=port, unit_id=255, timeout_s=0.2
        )
        try:
            with pytest.raises(DeviceTimeoutError):
                await client.read_holding_registers(104, 3)
        finally:
            client.close()


def test_reads_and_writes_on_uvloop() -> None:
    errors: list[dict[str, object]] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))
        await _exchanges()
        await _silent_device_times_out()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())
    # e.g. "Exception in callback ... connection_made" (the test server's own handlers end
    # cancelled when it closes: not the client's)
    ours = [e for e in errors if not isinstance(e.get("exception"), asyncio.CancelledError)]
    assert not ours, ours
