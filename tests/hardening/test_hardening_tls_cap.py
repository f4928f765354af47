"""Round 9 red team: TLS handshakes count against the connection cap.

Before, asyncio built an SSL transport (a 256 KiB buffer) for every accepted socket and the cap
applied only after the handshake: 4 000 bare TCP connects to the demo's :7000 took the edge from
113 MB to 1.3 GB of RSS, without a byte sent or a credential (``serving/tls_accept.py``).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from fuseguard.api.local import create_local_app
from fuseguard.api.tls import ensure_self_signed_cert
from fuseguard.serving import ServerHandle, ServerLimits, serve_app
from tests.hardening.hardening_support import (
    AUTH_HEADER,
    PASSWORD,
    USER,
    StaticLiveData,
    make_flex,
)

CAP = 4
#: long enough that a connection closed within the test's read deadline was refused, not timed out
LIMITS = ServerLimits(max_connections=CAP, header_timeout_s=60.0, body_timeout_s=5.0)


@pytest.fixture
async def tls_local(tmp_path: Path) -> AsyncIterator[tuple[ServerHandle, Path]]:
    cert, key = ensure_self_signed_cert(tmp_path, [])
    app = create_local_app(make_flex(), StaticLiveData(), user=USER, password=PASSWORD)
    handle = await serve_app(app, "127.0.0.1", 0, str(cert), str(key), limits=LIMITS)
    yield handle, cert
    await handle.close()


async def _closed_by_server(reader: asyncio.StreamReader, within_s: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), within_s) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


async def _live_data(port: int, cert: Path) -> bytes:
    ctx = ssl.create_default_context(cafile=str(cert))
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
    writer.write(
        f"GET /v1/live/data HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTH_HEADER}\r\n\r\n".encode()
    )
    line = await asyncio.wait_for(reader.readline(), 10.0)
    writer.close()
    return line


async def test_connects_without_a_handshake_fill_the_cap_and_no_more(
    tls_local: tuple[ServerHandle, Path],
) -> None:
    handle, cert = tls_local
    # CAP bare TCP connects, no ClientHello: each is a handshake in progress
    held = [await asyncio.open_connection("127.0.0.1", handle.port) for _ in range(CAP)]
    try:
        # the next ones are closed at once (before: kept, each with its SSL transport, for 60 s)
        with capture_logs() as logs:
            extra = [await asyncio.open_connection("127.0.0.1", handle.port) for _ in range(20)]
            closed = [await _closed_by_server(r, 5.0) for r, _ in extra]
        assert all(closed)
        for _, w in extra:
            w.close()
        refused = [e for e in logs if e["event"] == "http_connection_refused"]
        assert len(refused) == 1  # a flood is one log line
        # the held ones are still waiting for their handshake, not closed
        assert not any([await _closed_by_server(r, 0.2) for r, _ in held])
        # a real client gets in as soon as one slot is free
        held.pop()[1].close()
        await asyncio.sleep(0.2)
        assert (await _live_data(handle.port, cert)).startswith(b"HTTP/1.1 200")
    finally:
        for _, w in held:
            w.close()


async def test_open_tls_connections_and_handshakes_share_the_cap(
    tls_local: tuple[ServerHandle, Path],
) -> None:
    handle, cert = tls_local
    ctx = ssl.create_default_context(cafile=str(cert))
    tls = [await asyncio.open_connection("127.0.0.1", handle.port, ssl=ctx) for _ in range(CAP - 1)]
    bare = await asyncio.open_connection("127.0.0.1", handle.port)
    try:
        late_r, late_w = await asyncio.open_connection("127.0.0.1", handle.port)
        assert await _closed_by_server(late_r, 5.0)
        late_w.close()
    finally:
        bare[1].close()
        for _, w in tls:
            w.close()
    await asyncio.sleep(0.2)
    # everything released: the server serves again
    assert (await _live_data(handle.port, cert)).startswith(b"HTTP/1.1 200")
