"""Modbus TCP for the drivers: the lean client of the Bender link; the one pymodbus error mapping.

:class:`ModbusTcpClient` is a small Modbus TCP client (function 03 read holding registers,
function 16 write multiple registers) written for the edge's hot path: a charger is read and
written over it many times per second at a large site, and pymodbus' client costs several times
the CPU per exchange (per-request futures and timers of its own, frame logging, retries, PDU
objects). It does one exchange at a time per connection, each under one ``asyncio.timeout``, and
maps every failure onto the shallow error tree of :mod:`fuseguard.control.ports` itself:
refused, reset or closed -> :class:`DeviceConnectionError`; no answer in time ->
:class:`DeviceTimeoutError`; an exception response -> :class:`DeviceResponseError` ("refused");
anything that is not a well-formed answer to the request (wrong transaction id, unit, function,
size, a frame nobody asked for, a length out of range) -> :class:`DeviceResponseError`
("garbage answer"). After a timeout, a broken connection, garbage or a cancelled exchange the
connection is dropped and the next exchange reconnects (a late answer never meets the next
request); every byte read is bounded (a frame is at most 260 bytes).

:func:`modbus_exchange` wraps one pymodbus request/response exchange (the meter transport): it
bounds it in time and maps pymodbus' failures the same way, dropping the connection first
(``drop``) so the next exchange reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator, Callable
from typing import cast

from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from fuseguard.control.ports import DeviceConnectionError, DeviceResponseError, DeviceTimeoutError
from fuseguard.devices.http import garbage_message

_MBAP = struct.Struct(">HHHB")  # transaction id, protocol id (0), length, unit id
_MAX_LENGTH = 254  # unit id + the largest PDU (253 bytes)
_MAX_READ = 125  # registers per function 03 request (Modbus application protocol 6.3)
_MAX_WRITE = 123  # registers per function 16 request (6.12)
_EXCEPTIONS = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "device failure",
    5: "acknowledge",
    6: "device busy",
    10: "gateway path unavailable",
    11: "gateway target failed to respond",
}


class _GarbageError(Exception):
    """The peer sent bytes that are not a Modbus TCP answer (internal)."""


class _Protocol(asyncio.Protocol):
    """Frames the byte stream; hands each complete frame to the one waiting exchange."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, int, bytes]] | None = None
        self.broken: Exception | None = None
        self._buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a TCP connection (uvloop's transports are not asyncio.Transport subclasses)
        self.transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        buf = self._buffer
        buf += data
        while len(buf) >= _MBAP.size:
            tid, protocol, length, unit = _MBAP.unpack_from(buf)
            if protocol != 0 or not 2 <= length <= _MAX_LENGTH:
                self._fail(_GarbageError(f"bad header: protocol {protocol}, length {length}"))
                return
            end = 6 + length
            if len(buf) < end:
                return
            pdu = bytes(buf[_MBAP.size : end])
            del buf[:end]
            waiter, self.waiter = self.waiter, None
            if waiter is None or waiter.done():
                self._fail(_GarbageError("a frame nobody asked for"))
                return
            waiter.set_result((tid, unit, pdu))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionResetError("connection closed by the device"))

    def _fail(self, err: Exception) -> None:
        if self.broken is None:
            self.broken = err
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(err)
        if self.transport is not None:
            self.transport.abort()


class ModbusTcpClient:
    """One Modbus TCP connection to one unit (see module docstring); connects on first use."""

    def __init__(
        self, *, device: str, host: str, port: int, unit_id: int, timeout_s: float
    ) -> None:
        self.device = device
        self.host = host
        self.port = port
        self.unit_id = unit_id
        self.timeout_s = timeout_s
        self._protocol: _Protocol | None = None
        self._lock = asyncio.Lock()
        self._tid = 0

    async def read_holding_registers(self, address: int, count: int) -> list[int]:
        """Function 03: ``count`` (1..125) registers from ``address``."""
        if not 1 <= count <= _MAX_READ:
            msg = f"a read is 1..{_MAX_READ} registers, not {count}"
            raise ValueError(msg)
        what = f"read {address}+{count}"
        pdu = await self._exchange(what, struct.pack(">BHH", 3, address, count))
        if len(pdu) != 2 + 2 * count or pdu[1] != 2 * count:
            self.close()
            raise DeviceResponseError(
                garbage_message(self.device, f"{what} returned {len(pdu) - 2} bytes")
            )
        return list(struct.unpack_from(f">{count}H", pdu, 2))

    async def write_registers(self, address: int, values: list[int]) -> None:
        """Function 16: ``values`` (1..123 words) to consecutive registers from ``address``."""
        if not 1 <= len(values) <= _MAX_WRITE or not all(0 <= v <= 0xFFFF for v in values):
            msg = f"a write is 1..{_MAX_WRITE} words of 0..65535, not {values}"
            raise ValueError(msg)
        n = len(values)
        head = struct.pack(">BHHB", 16, address, n, 2 * n)
        what = f"write {address}={values}"
        pdu = await self._exchange(what, head + struct.pack(f">{n}H", *values))
        if pdu != head[:5]:
            self.close()
            raise DeviceResponseError(garbage_message(self.device, f"{what}: answer {pdu.hex()}"))

    def close(self) -> None:
        """Drop the connection (the next exchange reconnects)."""
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.abort()

    async def _exchange(self, what: str, request: bytes) -> bytes:
        """Send one request PDU, return the answer's PDU (function code checked).

        The hot path of every poll, so it is one coroutine: the lock taken without its context
        manager, the connection (rarely made) and the answer bounded by one deadline, the
        answer's by a timer on its future rather than an ``asyncio.timeout`` scope (round 15:
        ~25 % of the client's CPU per exchange)."""
        lock = self._lock
        await lock.acquire()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        timer: asyncio.TimerHandle | None = None
        try:
            protocol = self._protocol
            if protocol is None or protocol.broken is not None:
                async with asyncio.timeout_at(deadline):
                    protocol = await self._connect()
            self._tid = tid = (self._tid + 1) & 0xFFFF
            waiter: asyncio.Future[tuple[int, int, bytes]] = loop.create_future()
            protocol.waiter = waiter
            timer = loop.call_at(deadline, _expire, waiter)
            assert protocol.transport is not None  # set by connection_made
            protocol.transport.write(_MBAP.pack(tid, 0, len(request) + 1, self.unit_id) + request)
            answer_tid, unit, pdu = await waiter
            if answer_tid != tid or unit != self.unit_id:
                asked = f"asked {tid} unit {self.unit_id}"
                raise _GarbageError(f"answer for transaction {answer_tid} unit {unit}, {asked}")
            if pdu[0] == request[0] | 0x80 and len(pdu) == 2:
                name = _EXCEPTIONS.get(pdu[1], "unknown")
                msg = f"{self.device}: Modbus {what} refused: exception {pdu[1]} ({name})"
                raise DeviceResponseError(msg)
            if pdu[0] != request[0]:
                raise _GarbageError(f"answer with function {pdu[0]} to function {request[0]}")
        except TimeoutError as err:
            self.close()
            msg = f"{self.device}: no Modbus answer within {self.timeout_s:g} s"
            raise DeviceTimeoutError(msg) from err
        except _GarbageError as err:
            self.close()
            raise DeviceResponseError(garbage_message(self.device, f"{what}: {err}")) from err
        except OSError as err:
            self.close()
            msg = f"{self.device}: Modbus connection failed: {err or type(err).__name__}"
            raise DeviceConnectionError(msg) from err
        except asyncio.CancelledError:
            self.close()  # its answer may still come: never let it meet the next request
            raise
        finally:
            if timer is not None:
                timer.cancel()
            lock.release()
        return pdu

    async def _connect(self) -> _Protocol:
        self.close()
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(_Protocol, self.host, self.port)
        self._protocol = protocol
        return protocol


def _expire(waiter: asyncio.Future[tuple[int, int, bytes]]) -> None:
    """The exchange's deadline passed: its wait ends with ``TimeoutError``."""
    if not waiter.done():
        waiter.set_exception(TimeoutError())


@contextlib.asynccontextmanager
async def modbus_exchange(
    device: str, timeout_s: float, drop: Callable[[], None]
) -> AsyncIterator[None]:
    """One pymodbus exchange within ``timeout_s`` (+0.5 s for pymodbus' own timer to fire first).

    No answer in time -> :class:`DeviceTimeoutError`; refused or reset ->
    :class:`DeviceConnectionError`; a Modbus protocol error -> :class:`DeviceResponseError`
    ("garbage answer").
    """
    try:
        async with asyncio.timeout(timeout_s + 0.5):
            yield
    except TimeoutError as err:
        drop()
        msg = f"{device}: no Modbus answer within {timeout_s:g} s"
        raise DeviceTimeoutError(msg) from err
    except ModbusIOException as err:
        drop()
        msg = f"{device}: no Modbus answer: {err}"
        raise DeviceTimeoutError(msg) from err
    except (ConnectionException, OSError) as err:
        drop()
        msg = f"{device}: Modbus connection failed: {err}"
        raise DeviceConnectionError(msg) from err
    except ModbusException as err:
        drop()
        raise DeviceResponseError(garbage_message(device, f"Modbus protocol error: {err}")) from err


__all__ = ["ModbusTcpClient", "modbus_exchange"]
