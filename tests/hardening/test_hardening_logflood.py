"""Round 9 red team: a connect loop is one log line per burst, not one per connect.

Before, every refused connect (Modbus peer outside ``allowed_hosts`` or over the cap, HTTP over
the cap) logged a warning: ~3 000 lines in 20 s from one unauthenticated LAN peer, rendered in the
event loop that runs control (``serving/throttle.py``).
"""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from fuseguard.api.local import create_local_app
from fuseguard.api.modbus import serve_modbus_twin
from fuseguard.serving import ServerLimits, serve_app
from fuseguard.serving.throttle import LogThrottle
from tests.hardening.hardening_support import PASSWORD, USER, StaticLiveData, make_flex

CONNECTS = 30


async def _connect_and_wait_close(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        assert await asyncio.wait_for(reader.read(1), 5.0) == b""  # refused: closed by the server
    except ConnectionResetError:
        pass
    finally:
        writer.close()


def test_throttle_lets_one_line_per_interval_through_with_the_count() -> None:
    now = [0.0]
    throttle = LogThrottle(interval_s=10.0, clock=lambda: now[0])
    assert throttle.admit() == 0
    assert [throttle.admit() for _ in range(5)] == [None] * 5
    now[0] = 9.9
    assert throttle.admit() is None
    now[0] = 10.0
    assert throttle.admit() == 6  # the six suppressed since the first line
    now[0] = 25.0
    assert throttle.admit() == 0


async def test_modbus_peer_outside_allowed_hosts_logs_once_per_burst() -> None:
    twin = await serve_modbus_twin(
        make_flex(), StaticLiveData(), "127.0.0.1", 0, allowed_hosts=["10.99.0.0/16"]
    )
    try:
        with capture_logs() as logs:
            for _ in range(CONNECTS):
                await _connect_and_wait_close(twin.port)
        refused = [e for e in logs if e["event"] == "modbus_peer_refused"]
        assert len(refused) == 1
        assert refused[0]["peer"].startswith("127.0.0.1:")
        assert refused[0]["reason"] == "peer not in allowed_hosts"
    finally:
        await twin.close()


async def test_modbus_connections_over_the_cap_log_once_per_burst() -> None:
    twin = await serve_modbus_twin(make_flex(), StaticLiveData(), "127.0.0.1", 0, max_connections=2)
    held = [await asyncio.open_connection("127.0.0.1", twin.port) for _ in range(2)]
    try:
        await asyncio.sleep(0.1)
        with capture_logs() as logs:
            for _ in range(CONNECTS):
                await _connect_and_wait_close(twin.port)
        refused = [e for e in logs if e["event"] == "modbus_peer_refused"]
        assert len(refused) == 1
        assert refused[0]["reason"] == "more than 2 connections"
    finally:
        for _, w in held:
            w.close()
        await twin.close()


async def test_http_connections_over_the_cap_log_once_per_burst() -> None:
    app = create_local_app(make_flex(), StaticLiveData(), user=USER, password=PASSWORD)
    limits = ServerLimits(max_connections=2, header_timeout_s=30.0)
    handle = await serve_app(app, "127.0.0.1", 0, limits=limits)
    held = [await asyncio.open_connection("127.0.0.1", handle.port) for _ in range(2)]
    try:
        await asyncio.sleep(0.1)
        with capture_logs() as logs:
            for _ in range(CONNECTS):
                await _connect_and_wait_close(handle.port)
        refused = [e for e in logs if e["event"] == "http_connection_refused"]
        assert len(refused) == 1
    finally:
        for _, w in held:
            w.close()
        await handle.close()
