"""Issue 17 should-fix: the cloud's HTTP server has the edge's bounds (``serving.ServerLimits``):
a large body is refused before it is read, a slow request head is closed, connections are capped,
a request head is bounded; with either HTTP parser (h11, httptools: ``server.http``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cloudkit import cloud_settings
from tests.hardening.hardening_support import exchange as _exchange
from tests.hardening.hardening_support import http_status as _status
from tests.ports import free_port

from fuseguard.cloud.app import serve_cloud
from fuseguard.cloud.config import CloudSettings, ServerSection
from fuseguard.serving import HttpParser, ServerLimits

pytestmark = pytest.mark.mqtt

LIMITS = ServerLimits(
    max_body_bytes=64 * 1024, max_connections=8, header_timeout_s=0.5, body_timeout_s=0.5
)
PATH = "/edgedevices/e1/evses/0123456789abcdef0123456789abcdef/currentsettings"


async def _serve(
    settings: CloudSettings, limits: ServerLimits | None
) -> AsyncIterator[tuple[int, asyncio.Task[None]]]:
    port = free_port()
    server = settings.server.model_copy(update={"host": "127.0.0.1", "port": port})
    settings = settings.model_copy(update={"server": server})
    stop = asyncio.Event()
    task = asyncio.create_task(serve_cloud(settings, stop=stop, limits=limits))
    for _ in range(200):  # startup plumbing: wait until it accepts connections
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            break
        except OSError:
            assert not task.done(), task.exception()
            await asyncio.sleep(0.05)
    yield port, task
    stop.set()
    await asyncio.wait_for(task, 15)


@pytest.fixture(params=["h11", "httptools"])
async def cloud_port(
    request: pytest.FixtureRequest, mqtt_url: str, prefix: str, tmp_path: Path
) -> AsyncIterator[int]:
    """A replica with small limits, with each HTTP parser (every guard holds with both)."""
    settings = cloud_settings(mqtt_url, prefix, f"sqlite+aiosqlite:///{tmp_path / 'cloud.db'}")
    settings = settings.model_copy(update={"server": ServerSection(http=request.param)})
    async for port, _task in _serve(settings, LIMITS):
        yield port


def _post(length: int, body: bytes = b"", token: str = "") -> bytes:
    head = f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    head += f"evsetoken: {token}\r\n" if token else ""
    return (head + f"Content-Length: {length}\r\n\r\n").encode() + body


async def test_a_large_body_is_refused_unread(cloud_port: int) -> None:
    # 80 MB announced, 10 bytes sent: answered at once, nothing of it awaited
    answer = await _exchange(cloud_port, _post(80_000_000, b"x" * 10, token="guess"))
    assert _status(answer) == 413
    answer = await _exchange(cloud_port, _post(80_000_000))
    assert _status(answer) in (401, 413)


async def test_slow_heads_and_bodies_are_cut_off(cloud_port: int) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await _exchange(cloud_port, b"", read_s=5.0) == b""  # idle: closed, no answer
    half = b"GET " + PATH.encode() + b" HTTP/1.1\r\nHo"
    assert await _exchange(cloud_port, half, read_s=5.0) == b""  # half a head: closed
    assert loop.time() - started < 4.0  # by the 0.5 s deadline, not by read_s
    answer = await _exchange(cloud_port, _post(100, b'{"cur', token="guess"))
    assert _status(answer) in (401, 408)  # never waits for the other 95 bytes


async def _assert_capped(port: int, cap: int) -> None:
    """``cap`` connections stay open; one more is closed at once."""
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(cap)]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(reader.read(1), 2.0) == b""  # closed at once
        writer.close()
    finally:
        for _, w in conns:
            w.close()


async def test_connections_are_capped(cloud_port: int) -> None:
    await _assert_capped(cloud_port, LIMITS.max_connections)


async def test_a_large_request_head_is_refused(cloud_port: int) -> None:
    """A head that grows past ``max_header_bytes`` is answered at once (not at the deadline)."""
    filler = "".join(f"x-fill-{i}: {'a' * 200}\r\n" for i in range(150))  # ~31 kB > 16 kB
    head = f"GET {PATH} HTTP/1.1\r\nHost: x\r\n{filler}".encode()  # and still growing
    assert _status(await _exchange(cloud_port, head)) in (400, 431)  # h11: 400; httptools: 431
    long_url = f"GET {PATH}?{'q' * 40_000}".encode()
    assert _status(await _exchange(cloud_port, long_url)) in (400, 414, 431)
    ok = f"GET {PATH} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    assert _status(await _exchange(cloud_port, ok)) == 401  # a normal head still gets through


@pytest.mark.parametrize("http", ["h11", "httptools"])
async def test_the_connection_cap_is_the_cloud_setting(
    http: HttpParser, mqtt_url: str, prefix: str, tmp_path: Path
) -> None:
    """Without explicit limits a replica takes ``server.max_connections`` (the edge's 64 made
    64 benchmark clients over two replicas hit uvicorn's 503)."""
    settings = cloud_settings(mqtt_url, prefix, f"sqlite+aiosqlite:///{tmp_path / 'cloud.db'}")
    settings = settings.model_copy(update={"server": ServerSection(max_connections=3, http=http)})
    async for port, _task in _serve(settings, None):
        await _assert_capped(port, 3)
    assert ServerSection().max_connections >= 256
