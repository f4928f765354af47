"""The Bender REST fetch over kept connections (round 15): one connection for many fetches where
the device keeps it; a device that closes connections (at once, when idle, or in the instant a
request goes out) still answers every fetch, the last at the cost of one immediate retry."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from fuseguard.control.ports import DeviceResponseError
from fuseguard.devices.bender import BenderCharger, BenderRestState
from fuseguard.devices.http import KEEPALIVE_S, device_session
from fuseguard.model.clock import RealClock
from fuseguard.sim.bender import BenderController, BenderDeviceConfig
from fuseguard.sim.bender_serve import serve_bender

_BODY = (
    b"conn_state:no_vehicle_connected\nauth_state:not_authorized_for_charging\n"
    b"ocpp_state:available\ntype2_state:a\nsig_current:0\ncurrent_a:0.00,0.00,0.00\n"
)


@dataclass
class RestServer:
    """A minimal HTTP/1.1 server: ``mode`` says what it does with a connection after an answer.

    ``keep``: keeps it; ``close``: answers ``Connection: close`` and closes it; ``drop_reused``:
    a second request on one connection is met by closing it unanswered (a device's idle timeout
    firing as the request arrives)."""

    mode: str
    bodies: list[bytes] = field(default_factory=list)  #: answered in turn (then _BODY)
    connections: int = 0
    requests: int = 0
    port: int = 0
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        served = 0
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                if self.mode == "drop_reused" and served:
                    break
                self.requests += 1
                served += 1
                close = self.mode == "close"
                body = self.bodies.pop(0) if self.bodies else _BODY
                head = (
                    f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                    f"Content-Length: {len(body)}\r\n"
                    f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n"
                )
                writer.write(head.encode() + body)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


@asynccontextmanager
async def rest_server(mode: str) -> AsyncIterator[RestServer]:
    state = RestServer(mode)
    server = await asyncio.start_server(state.handle, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        for writer in state._writers:
            writer.close()


def _charger(port: int) -> BenderCharger:
    # retries with a long backoff: a retry of the driver's own would show in the elapsed time
    return BenderCharger(host="127.0.0.1", rest_port=port, modbus_port=1, retry_backoff_s=1.0)


async def test_a_device_that_keeps_connections_is_asked_over_one() -> None:
    async with rest_server("keep") as server:
        charger = _charger(server.port)
        try:
            for _ in range(5):
                state = await charger.read_rest_state()
                await asyncio.sleep(0.05)
        finally:
            await charger.close()
    assert state.sig_current_a == 0
    assert (server.requests, server.connections) == (5, 1)


@pytest.mark.parametrize("mode", ["close", "drop_reused"])
async def test_a_device_that_closes_connections_answers_every_fetch(mode: str) -> None:
    async with rest_server(mode) as server:
        charger = _charger(server.port)
        try:
            for _ in range(4):
                t0 = time.perf_counter()
                await charger.read_rest_state()
                elapsed_s = time.perf_counter() - t0
                assert elapsed_s < 0.5, "no backoff: at most aiohttp's one immediate retry"
        finally:
            await charger.close()
    assert server.requests == 4
    # close: a new connection per fetch; drop_reused: every fetch after the first meets a
    # dropped kept connection once, then gets its answer on a new one
    assert server.connections == 4


async def test_an_idle_connection_the_virtual_bender_closed_costs_a_new_one() -> None:
    ctl = BenderController(RealClock(), BenderDeviceConfig(rest_keepalive_s=1))
    handle = await serve_bender(ctl, rest_port=0, modbus_port=0)
    charger = BenderCharger(host="127.0.0.1", rest_port=handle.rest_port, modbus_port=1)
    try:
        await charger.read_rest_state()
        await charger.read_rest_state()  # within the device's 1 s: the same connection
        await asyncio.sleep(1.5)  # the device closes it
        t0 = time.perf_counter()
        state = await charger.read_rest_state()
        assert time.perf_counter() - t0 < 0.5
    finally:
        await charger.close()
        await handle.close()
    assert state.conn_state.value == "no_vehicle_connected"


async def test_the_device_session_keeps_idle_connections_past_two_rest_intervals() -> None:
    # a steady charger is read every charger_idle_poll_s (10 s) and its REST state is due every
    # rest_interval_s (10 s): two fetches can be up to 20 s apart
    charger = BenderCharger(host="127.0.0.1", modbus_port=1)
    assert 2 * max(charger.rest_interval_s, 10.0) < KEEPALIVE_S
    async with device_session() as session:
        assert session.connector is not None
        assert session.connector._keepalive_timeout == KEEPALIVE_S


async def test_an_unchanged_body_is_not_parsed_again_and_garbage_still_is_garbage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parsed: list[str] = []
    real = BenderRestState.from_text

    def counting(text: str) -> BenderRestState:
        parsed.append(text)
        return real(text)

    monkeypatch.setattr(BenderRestState, "from_text", staticmethod(counting))
    charging = _BODY.replace(b"sig_current:0", b"sig_current:16")
    async with rest_server("keep") as server:
        server.bodies = [_BODY, _BODY, charging, b"<html>maintenance</html>\n", _BODY]
        charger = _charger(server.port)
        try:
            first = await charger.read_rest_state()
            assert await charger.read_rest_state() is first  # the same text: the same state
            assert (await charger.read_rest_state()).sig_current_a == 16
            with pytest.raises(DeviceResponseError, match="garbage answer"):
                await charger.read_rest_state()
            assert (await charger.read_rest_state()).sig_current_a == 0
        finally:
            await charger.close()
    assert len(parsed) == 4, "parsed: the first, the changed one, the garbage, the first again"
