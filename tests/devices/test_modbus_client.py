"""The lean Modbus TCP client of the Bender link against scripted (hostile) servers."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from fuseguard.control.ports import (
    DeviceConnectionError,
    DeviceResponseError,
    DeviceTimeoutError,
)
from fuseguard.devices.bender import BenderCharger
from fuseguard.devices.modbus import ModbusTcpClient

# answer(tid, unit, request pdu) -> bytes to send back (b"" sends nothing)
Answer = Callable[[int, int, bytes], bytes]


def frame(
    tid: int, unit: int, pdu: bytes, *, protocol: int = 0, length: int | None = None
) -> bytes:
    n = len(pdu) + 1 if length is None else length
    return struct.pack(">HHHB", tid, protocol, n, unit) + pdu


def registers(tid: int, unit: int, pdu: bytes) -> bytes:
    """A correct device: function 03 answers 100 + i, function 16 echoes."""
    fc, _, count = struct.unpack_from(">BHH", pdu)
    if fc == 3:
        body = struct.pack(f">BB{count}H", 3, 2 * count, *(100 + i for i in range(count)))
        return frame(tid, unit, body)
    return frame(tid, unit, pdu[:5])


@contextlib.asynccontextmanager
async def serve(answer: Answer) -> AsyncIterator[tuple[int, list[bytes]]]:
    seen: list[bytes] = []
    handlers: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            handlers.add(task)
        try:
            while True:
                head = await reader.readexactly(7)
                tid, _, length, unit = struct.unpack(">HHHB", head)
                pdu = await reader.readexactly(length - 1)
                seen.append(pdu)
                out = answer(tid, unit, pdu)
                if out:
                    writer.write(out)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port, seen
    finally:
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)


async def run_with(answer: Answer, body: Callable[[ModbusTcpClient], Awaitable[None]]) -> None:
    async with serve(answer) as (port, _):
        client = ModbusTcpClient(
            device="dev", host="127.0.0.1", port=port, unit_id=255, timeout_s=0.3
        )
        try:
            await body(client)
        finally:
            client.close()


async def test_reads_and_writes_a_correct_device() -> None:
    async with serve(registers) as (port, seen):
        client = ModbusTcpClient(device="d", host="127.0.0.1", port=port, unit_id=7, timeout_s=1)
        assert await client.read_holding_registers(200, 3) == [100, 101, 102]
        await client.write_registers(1000, [16])
        assert await client.read_holding_registers(104, 1) == [100]
        client.close()
        assert seen[1] == struct.pack(">BHHBH", 16, 1000, 1, 2, 16)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (lambda t, u, p: frame(t + 1, u, p[:1] + b"\x02\x00\x01"), "transaction"),
        (lambda t, u, p: frame(t, u ^ 1, p[:1] + b"\x02\x00\x01"), "unit"),
        (lambda t, u, p: frame(t, u, b"\x04\x02\x00\x01"), "function"),
        (lambda t, u, p: frame(t, u, b"\x03\x04\x00\x01\x00\x02"), "returned 4 bytes"),
        (lambda t, u, p: frame(t, u, b"\x03\x02\x00\x01", protocol=1), "protocol 1"),
        (lambda t, u, p: frame(t, u, b"\x03" + bytes(300), length=301), "length 301"),
    ],
    ids=["tid", "unit", "function", "size", "protocol", "oversize"],
)
async def test_garbage_is_a_response_error_and_the_next_exchange_reconnects(
    answer: Answer, reason: str
) -> None:
    calls = 0

    def first_garbage_then_good(tid: int, unit: int, pdu: bytes) -> bytes:
        nonlocal calls
        calls += 1
        return answer(tid, unit, pdu) if calls == 1 else registers(tid, unit, pdu)

    async def body(client: ModbusTcpClient) -> None:
        with pytest.raises(DeviceResponseError, match="garbage answer") as info:
            await client.read_holding_registers(104, 1)
        assert reason in str(info.value)
        assert await client.read_holding_registers(104, 1) == [100]

    await run_with(first_garbage_then_good, body)


async def test_a_frame_nobody_asked_for_drops_the_connection() -> None:
    def twice(tid: int, unit: int, pdu: bytes) -> bytes:
        return registers(tid, unit, pdu) * 2

    async with serve(twice) as (port, seen):
        client = ModbusTcpClient(device="d", host="127.0.0.1", port=port, unit_id=1, timeout_s=1)
        assert await client.read_holding_registers(104, 1) == [100]
        await asyncio.sleep(0.05)  # the second copy arrives: nobody asked for it
        assert await client.read_holding_registers(104, 2) == [100, 101]
        client.close()
    assert len(seen) == 2


async def test_exception_response_is_refused_not_garbage() -> None:
    def refuse(tid: int, unit: int, pdu: bytes) -> bytes:
        return frame(tid, unit, bytes([pdu[0] | 0x80, 2]))

    async def body(client: ModbusTcpClient) -> None:
        with pytest.raises(DeviceResponseError, match="refused: exception 2"):
            await client.write_registers(1000, [16])

    await run_with(refuse, body)


async def test_silence_is_a_timeout_and_a_late_answer_is_not_taken() -> None:
    calls = 0

    def late(tid: int, unit: int, pdu: bytes) -> bytes:
        nonlocal calls
        calls += 1
        return b"" if calls == 1 else registers(tid, unit, pdu)

    async def body(client: ModbusTcpClient) -> None:
        with pytest.raises(DeviceTimeoutError, match=r"no Modbus answer within 0\.3 s"):
            await client.read_holding_registers(104, 1)
        assert await client.read_holding_registers(104, 2) == [100, 101]

    await run_with(late, body)


async def test_a_cancelled_exchange_never_hands_its_answer_to_the_next() -> None:
    async with serve(registers) as (port, seen):
        client = ModbusTcpClient(device="d", host="127.0.0.1", port=port, unit_id=1, timeout_s=1)
        assert await client.read_holding_registers(104, 1) == [100]  # connected
        read = asyncio.ensure_future(client.read_holding_registers(104, 1))
        await asyncio.sleep(0)  # the request is sent; its answer is on its way
        read.cancel()
        with pytest.raises(asyncio.CancelledError):
            await read
        # the late one-register answer must not meet this request (it would be garbage)
        assert await client.read_holding_registers(104, 3) == [100, 101, 102]
        client.close()
    assert len(seen) == 3


async def test_closed_and_refused_connections_are_connection_errors() -> None:
    def hang_up(tid: int, unit: int, pdu: bytes) -> bytes:
        raise ConnectionResetError

    async def body(client: ModbusTcpClient) -> None:
        with pytest.raises(DeviceConnectionError, match="Modbus connection failed"):
            await client.read_holding_registers(104, 1)

    await run_with(hang_up, body)
    async with serve(registers) as (port, _):
        pass  # the server is closed: nothing listens on the port any more
    refused = ModbusTcpClient(device="d", host="127.0.0.1", port=port, unit_id=1, timeout_s=1)
    with pytest.raises(DeviceConnectionError, match="Modbus connection failed"):
        await refused.read_holding_registers(104, 1)


def test_requests_out_of_the_protocol_range_are_refused_locally() -> None:
    client = ModbusTcpClient(device="d", host="127.0.0.1", port=1, unit_id=1, timeout_s=1)
    with pytest.raises(ValueError, match=r"1\.\.125"):
        asyncio.run(client.read_holding_registers(0, 126))
    with pytest.raises(ValueError, match=r"0\.\.65535"):
        asyncio.run(client.write_registers(0, [70000]))


async def test_the_bender_drivers_direct_exchanges_still_retry_connection_errors_only() -> None:
    """The driver calls the client directly on its hot path (round 15); a connection error is
    still retried (a new connection), garbage still is not, and both are recorded."""
    calls = 0

    def hang_up_once_then_garbage(tid: int, unit: int, pdu: bytes) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionResetError
        if calls == 3:
            return frame(tid, unit, b"\x04\x02\x00\x01")
        return registers(tid, unit, pdu)

    async with serve(hang_up_once_then_garbage) as (port, seen):
        charger = BenderCharger(
            host="127.0.0.1", modbus_port=port, unit_id=1, retry_backoff_s=0.0, use_rest=False
        )
        try:
            block = await charger._read_registers(200, 2)
            assert block.registers == [100, 101]
            assert charger.last_error is None
            with pytest.raises(DeviceResponseError, match="garbage answer"):
                await charger._write_registers(1000, [16])
            assert charger.last_error is not None and "garbage" in charger.last_error
        finally:
            await charger.close()
    assert calls == 3, "the hang-up was retried once, the garbage not at all"
    assert len(seen) == 3
