"""Real loopback sockets: HTTPS with the generated certificate, the aiohttp client, cascading."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from localapi_support import FUSE_A, PASSWORD, USER, StaticLiveData

from fuseguard.api.local import create_local_app
from fuseguard.api.tls import ensure_self_signed_cert
from fuseguard.control.flex import FlexManagement, MemoryFlexStore
from fuseguard.control.ports import (
    DeviceAuthError,
    DeviceConnectionError,
    DeviceResponseError,
    DeviceTimeoutError,
)
from fuseguard.devices.clemap import ClemapChildCircuit, ClemapEdgeClient, ClemapGridMeter
from fuseguard.model.clock import RealClock, VirtualClock
from fuseguard.serving import ServerHandle, serve_app


@pytest.fixture
async def https_edge(
    tmp_path: Path, flex: FlexManagement, live: StaticLiveData
) -> AsyncIterator[ServerHandle]:
    cert, key = ensure_self_signed_cert(tmp_path, ["localhost", "127.0.0.1"])
    app = create_local_app(flex, live, user=USER, password=PASSWORD)
    handle = await serve_app(app, "127.0.0.1", 0, str(cert), str(key))
    yield handle
    await handle.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def _client(
    handle: ServerHandle, session: aiohttp.ClientSession, *, password: str = PASSWORD
) -> ClemapEdgeClient:
    return ClemapEdgeClient(
        host="127.0.0.1",
        port=handle.port,
        user=USER,
        password=password,
        session=session,
        clock=VirtualClock(),
        request_timeout_s=5.0,
    )


def test_certificate_is_generated_once(tmp_path: Path) -> None:
    cert, key = ensure_self_signed_cert(tmp_path, ["edge.local", "10.0.0.7"])
    first = cert.read_bytes(), key.read_bytes()
    assert (key.stat().st_mode & 0o777) == 0o600
    again = ensure_self_signed_cert(tmp_path, ["other"])
    assert again == (cert, key)
    assert (cert.read_bytes(), key.read_bytes()) == first
    ctx = ssl.create_default_context(cafile=str(cert))  # parses as a CA bundle
    assert ctx.cert_store_stats()["x509"] == 1


async def test_https_round_trip_with_client(
    https_edge: ServerHandle, session: aiohttp.ClientSession, flex: FlexManagement
) -> None:
    assert https_edge.url.startswith("https://127.0.0.1:")
    client = _client(https_edge, session)
    live = await client.live_data()
    assert live.current_a.as_tuple() == (10.0, 12.5, 17.5)
    assert live.current_sum_a == 40.0
    assert live.status == "charging"
    sample = await ClemapGridMeter(client).read()
    assert sample.power_w == 9200.0
    assert sample.current_a is not None
    assert sample.current_a.l3 == 17.5
    await client.set_current_limit(20.0)
    assert flex.limit_a() == 20.0
    settings = await client.settings()
    assert settings.activation is True
    assert settings.current_limit_a == 20.0
    assert settings.run_state is True
    before = flex.seconds_until_expiry()
    await client.keep_alive()
    assert flex.seconds_until_expiry() == before  # virtual clock did not move; still armed


async def test_plain_http_is_refused_on_the_tls_port(
    https_edge: ServerHandle, session: aiohttp.ClientSession
) -> None:
    client = ClemapEdgeClient(
        host="127.0.0.1",
        port=https_edge.port,
        user=USER,
        password=PASSWORD,
        session=session,
        scheme="http",
        request_timeout_s=3.0,
    )
    with pytest.raises((DeviceConnectionError, DeviceResponseError)):
        await client.live_data()


async def test_wrong_password_is_auth_error(
    https_edge: ServerHandle, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(DeviceAuthError, match="401"):
        await _client(https_edge, session, password="nope").live_data()


async def test_invalid_value_is_response_error(
    https_edge: ServerHandle, session: aiohttp.ClientSession, flex: FlexManagement
) -> None:
    with pytest.raises(DeviceResponseError, match="422"):
        await _client(https_edge, session).set_current_limit(-5.0)
    assert flex.settings().activation is False


async def test_connection_refused_is_connection_error(session: aiohttp.ClientSession) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = ClemapEdgeClient(
        host="127.0.0.1", port=port, user=USER, password=PASSWORD, session=session, scheme="http"
    )
    with pytest.raises(DeviceConnectionError):
        await client.keep_alive()


async def test_silent_server_is_timeout_error(session: aiohttp.ClientSession) -> None:
    writers: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        while await reader.read(65536):  # swallow the request, never answer
            pass
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = ClemapEdgeClient(
        host="127.0.0.1",
        port=port,
        user=USER,
        password=PASSWORD,
        session=session,
        scheme="http",
        request_timeout_s=0.3,
    )
    try:
        with pytest.raises(DeviceTimeoutError):
            await client.settings()
    finally:
        for w in writers:
            w.close()
        server.close()
        await server.wait_closed()


async def test_busy_port_raises_oserror(
    https_edge: ServerHandle, flex: FlexManagement, live: StaticLiveData
) -> None:
    app = create_local_app(flex, live, user=USER, password=PASSWORD)
    with pytest.raises(OSError):
        await serve_app(app, "127.0.0.1", https_edge.port)


async def test_child_circuit_writes_verifies_and_heals(
    https_edge: ServerHandle, session: aiohttp.ClientSession, flex: FlexManagement
) -> None:
    clock = VirtualClock()
    child = ClemapChildCircuit(
        _client(https_edge, session), clock, timeout_s=120.0, fallback_current_limit_a=6.0
    )
    await child.sync_once()  # nothing desired yet: nothing sent
    assert child.writes == 0
    child.set_limit(24.0)
    await child.sync_once()
    assert (flex.limit_a(), flex.settings().fallback_current_limit_a) == (24.0, 6.0)
    assert child.synced
    await child.sync_once()  # steady state: keep-alive + read-back, no write
    assert (child.writes, child.keep_alives) == (1, 1)
    flex.update(activation=False)  # someone else switched the child off
    await child.sync_once()
    assert flex.settings().activation is True
    assert child.writes == 2
    await clock.advance(115.0)  # our own pause outlasted 0.9 x timeout: re-send, not just ping
    await child.sync_once()
    assert child.writes == 3


async def test_child_circuit_marks_gap_and_resends(
    session: aiohttp.ClientSession, live: StaticLiveData, tmp_path: Path
) -> None:
    clock = VirtualClock()
    flex = FlexManagement(clock, fuse_a=FUSE_A, store=MemoryFlexStore())
    app = create_local_app(flex, live, user=USER, password=PASSWORD)
    handle = await serve_app(app, "127.0.0.1", 0)
    port = handle.port
    client = ClemapEdgeClient(
        host="127.0.0.1",
        port=port,
        user=USER,
        password=PASSWORD,
        session=session,
        scheme="http",
        request_timeout_s=2.0,
    )
    child = ClemapChildCircuit(client, clock, timeout_s=120.0, initial_limit_a=18.0)
    await child.sync_once()
    assert flex.limit_a() == 18.0
    await handle.close()
    await child.sync_once()
    assert isinstance(child.last_error, DeviceConnectionError)
    assert not child.synced
    await clock.advance(130.0)  # the child's watchdog expires meanwhile
    assert flex.in_fallback
    handle = await serve_app(app, "127.0.0.1", port)
    try:
        await child.sync_once()
        assert child.synced
        assert not flex.in_fallback
        assert flex.limit_a() == 18.0  # CurrentLimit re-sent, not just a keep-alive
    finally:
        await handle.close()


async def test_child_circuit_run_keeps_child_alive_in_real_time(
    https_edge: ServerHandle, session: aiohttp.ClientSession, live: StaticLiveData
) -> None:
    # A separate child with a real clock and a 0.6 s watchdog: keep-alive every 0.15 s.
    clock = RealClock()
    child_flex = FlexManagement(clock, fuse_a=FUSE_A, timeout_s=0.6, default_fallback_a=4.0)
    app = create_local_app(child_flex, live, user=USER, password=PASSWORD)
    handle = await serve_app(app, "127.0.0.1", 0)
    client = ClemapEdgeClient(
        host="127.0.0.1",
        port=handle.port,
        user=USER,
        password=PASSWORD,
        session=session,
        scheme="http",
        request_timeout_s=2.0,
    )
    child = ClemapChildCircuit(client, clock, timeout_s=0.6)
    task = asyncio.create_task(child.run())
    try:
        child.set_limit(22.0)
        fallbacks = 0
        for _ in range(15):
            await asyncio.sleep(0.1)
            fallbacks += child_flex.in_fallback
        assert child_flex.limit_a() == 22.0
        assert fallbacks == 0
        assert child.keep_alives >= 3
        child.set_limit(11.0)  # a change is pushed at once, not at the next period
        for _ in range(20):
            await asyncio.sleep(0.01)
            if child_flex.limit_a() == 11.0:
                break
        assert child_flex.limit_a() == 11.0
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await handle.close()
        child_flex.close()
    await asyncio.sleep(0.8)
    assert child_flex.in_fallback  # once the parent stops, the child falls back by itself
    assert child_flex.limit_a() == 4.0
