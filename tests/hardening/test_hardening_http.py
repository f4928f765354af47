"""Issue 17 item 5 and the API "should fix" items: auth before body, bounded bodies and
connections on :7000 and :3032, throttled failed logins, docs off by default."""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest
from structlog.testing import capture_logs

from fuseguard.api.evse import create_evse_app
from fuseguard.api.local import create_local_app
from fuseguard.config.models import EvseApiConfig, LocalApiConfig
from fuseguard.model.clock import VirtualClock
from fuseguard.serving import ServerHandle, ServerLimits, serve_app
from tests.hardening.hardening_support import PASSWORD, USER, StaticLiveData, make_flex
from tests.hardening.hardening_support import exchange as _exchange
from tests.hardening.hardening_support import http_status as _status

AUTH = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
SETTINGS = "/v1/flex_management/setting"
LIMITS = ServerLimits(
    max_body_bytes=64 * 1024, max_connections=8, header_timeout_s=0.5, body_timeout_s=0.5
)


@pytest.fixture
async def local() -> AsyncIterator[ServerHandle]:
    app = create_local_app(make_flex(), StaticLiveData(), user=USER, password=PASSWORD)
    handle = await serve_app(app, "127.0.0.1", 0, limits=LIMITS)
    yield handle
    await handle.close()


def _post(path: str, length: int, *, auth: bool, body: bytes = b"") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    head += f"Authorization: {AUTH}\r\n" if auth else ""
    head += f"Content-Length: {length}\r\n\r\n"
    return head.encode() + body


async def test_bad_json_without_credentials_is_401_not_400() -> None:
    app = create_local_app(make_flex(), StaticLiveData(), user=USER, password=PASSWORD)
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://edge") as client:
        json_type = {"content-type": "application/json"}
        r = await client.post(SETTINGS, content=b"{not json", headers=json_type)
        assert r.status_code == 401
        r = await client.post(
            SETTINGS, content=b"{not json", headers={"authorization": AUTH, **json_type}
        )
        assert r.status_code == 400


async def test_unauthenticated_huge_body_is_answered_without_reading_it(
    local: ServerHandle,
) -> None:
    # 80 MB announced, 10 bytes sent: the answer comes at once, the body is never awaited
    answer = await _exchange(local.port, _post(SETTINGS, 80_000_000, auth=False, body=b"x" * 10))
    assert _status(answer) in (401, 413)
    answer = await _exchange(local.port, _post("/v1/keep-alive", 80_000_000, auth=False))
    assert _status(answer) in (401, 413)


async def test_authenticated_oversized_body_is_413(local: ServerHandle) -> None:
    answer = await _exchange(local.port, _post(SETTINGS, 80_000_000, auth=True))
    assert _status(answer) == 413
    # chunked: no length to refuse up front, cut off at the limit
    head = (
        f"POST {SETTINGS} HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTH}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    chunk = b"8000\r\n" + b" " * 0x8000 + b"\r\n"
    answer = await _exchange(local.port, head + chunk * 3)  # 96 KiB, all of it read
    assert _status(answer) == 413


async def test_a_small_valid_body_still_works(local: ServerHandle) -> None:
    body = b'{"CurrentLimit": 20}'
    answer = await _exchange(local.port, _post(SETTINGS, len(body), auth=True, body=body))
    assert _status(answer) == 200


async def test_half_sent_body_is_408_and_closed(local: ServerHandle) -> None:
    answer = await _exchange(local.port, _post(SETTINGS, 100, auth=True, body=b'{"Cur'))
    assert _status(answer) == 408


async def test_idle_and_half_sent_heads_are_closed(local: ServerHandle) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await _exchange(local.port, b"", read_s=5.0) == b""  # closed, nothing answered
    assert await _exchange(local.port, b"GET /v1/live/data HTTP/1.1\r\nHo", read_s=5.0) == b""
    assert loop.time() - started < 4.0  # both closed by the 0.5 s deadline, not by read_s


async def test_connections_are_capped(local: ServerHandle) -> None:
    conns = [
        await asyncio.open_connection("127.0.0.1", local.port)
        for _ in range(LIMITS.max_connections)
    ]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", local.port)
        assert await asyncio.wait_for(reader.read(1), 2.0) == b""  # closed at once
        writer.close()
    finally:
        for _, w in conns:
            w.close()


async def test_failed_logins_are_throttled_and_logged_once_per_burst() -> None:
    clock = VirtualClock()
    app = create_local_app(make_flex(), StaticLiveData(), user=USER, password=PASSWORD, clock=clock)
    wrong = "Basic " + base64.b64encode(f"{USER}:guess".encode()).decode()
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://edge") as client:
        with capture_logs() as logs:
            codes = [
                (await client.get("/v1/live/data", headers={"authorization": wrong})).status_code
                for _ in range(30)
            ]
        assert codes[:9] == [401] * 9
        assert set(codes[10:]) == {429}
        # even the right password waits out the block (no oracle for guesses)
        r = await client.get("/v1/live/data", headers={"authorization": AUTH})
        assert r.status_code == 429
        await clock.advance(61.0)
        r = await client.get("/v1/live/data", headers={"authorization": AUTH})
        assert r.status_code == 200
    failed = [e for e in logs if e["event"] == "local_api_auth_failed"]
    assert len(failed) == 1


def test_docs_are_off_by_default_in_run() -> None:
    assert LocalApiConfig().docs is False
    assert EvseApiConfig().docs is False


async def test_docs_follow_the_configured_choice() -> None:
    for docs in (False, True):
        local = create_local_app(
            make_flex(), StaticLiveData(), user=USER, password=PASSWORD, docs=docs
        )
        evse = create_evse_app(_NoBackend(), _NoTokens(), docs=docs)
        for app, headers in ((local, {"authorization": AUTH}), (evse, {})):
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://e") as client:
                for path in ("/openapi.json", "/docs"):
                    r = await client.get(path, headers=headers)
                    assert r.status_code == (200 if docs else 404), (app, path)
        transport = httpx2.ASGITransport(app=local)
        async with httpx2.AsyncClient(transport=transport, base_url="http://e") as client:
            assert (await client.get("/openapi.json")).status_code == 401  # never public


class _NoBackend:
    async def evse(self, edge_device_id: str, evse_uuid: str) -> None:
        return None

    async def set_target(self, *_: object) -> str:
        return "rejected"

    async def get_target(self, *_: object) -> None:
        return None

    async def clear_target(self, *_: object) -> None:
        return None

    async def status(self, *_: object) -> list[object]:
        return []


class _NoTokens:
    async def check(self, edge_device_id: str, evse_uuid: str, token: str | None) -> str:
        return "missing" if not token else "invalid"


async def test_evse_api_checks_the_token_before_the_evse_and_the_body() -> None:
    app = create_evse_app(_NoBackend(), _NoTokens())  # type: ignore[arg-type]
    transport = httpx2.ASGITransport(app=app)
    path = "/edgedevices/e1/evses/" + "ab" * 16 + "/currentsettings"
    async with httpx2.AsyncClient(transport=transport, base_url="http://e") as client:
        r = await client.post(path, content=b"{not json")
        assert r.status_code == 401  # not 400 (body) and not 404 (unknown EVSE)
        r = await client.get(path, headers={"evsetoken": "guess"})
        assert r.status_code == 401


async def test_stalled_tls_handshake_is_closed(tmp_path: Path) -> None:
    from fuseguard.api.tls import ensure_self_signed_cert

    cert, key = ensure_self_signed_cert(tmp_path, [])
    app = create_local_app(make_flex(), StaticLiveData(), user=USER, password=PASSWORD)
    handle = await serve_app(app, "127.0.0.1", 0, str(cert), str(key), limits=LIMITS)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        # plain TCP, no ClientHello: asyncio alone would wait 60 s
        assert await _exchange(handle.port, b"", read_s=10.0) == b""
        assert loop.time() - started < 5.0
        # a real TLS client still gets in
        ctx = ssl.create_default_context(cafile=str(cert))
        reader, writer = await asyncio.open_connection("127.0.0.1", handle.port, ssl=ctx)
        writer.write(
            f"GET /v1/live/data HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTH}\r\n\r\n".encode()
        )
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        writer.close()
    finally:
        await handle.close()
