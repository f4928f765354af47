"""The one HTTP transport of device clients, against a real server on a free loopback port.

Every row of the error table, the retry policy (connection errors only, never garbage), the body
bound, strict JSON parsing and session ownership.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated

import aiohttp
import pytest
from aiohttp import web
from pydantic import AllowInfNan, BaseModel, StrictFloat
from tests.ports import free_port

from fuseguard.control.ports import (
    DeviceAuthError,
    DeviceConnectionError,
    DeviceError,
    DeviceResponseError,
    DeviceTimeoutError,
)
from fuseguard.devices.cemm import CemmClient, CemmNotFoundError
from fuseguard.devices.http import (
    TRANSPORT_ERRORS,
    DeviceHttpClient,
    DeviceHttpStatusError,
    DeviceNotFoundError,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Reading(BaseModel):
    value: Annotated[StrictFloat, AllowInfNan(False)]


@dataclass(kw_only=True, eq=False)
class Probe(DeviceHttpClient):
    """The smallest real client: a host, a port, nothing else."""

    host: str = "127.0.0.1"
    port: int
    retry_backoff_s: float = 0.0

    @property
    def device(self) -> str:
        return f"probe {self.host}:{self.port}"

    def _base_url(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass
class Server:
    port: int
    hits: dict[str, int] = field(default_factory=dict)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server(port=0)

    def counted(name: str, handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            srv.hits[name] = srv.hits.get(name, 0) + 1
            return await handler(request)

        return wrapped

    async def ok(_: web.Request) -> web.StreamResponse:
        return web.json_response({"value": 7.5})

    async def nan(_: web.Request) -> web.StreamResponse:
        return web.Response(text='{"value": NaN}', content_type="application/json")

    async def shape(_: web.Request) -> web.StreamResponse:
        return web.json_response({"value": "7.5"})

    async def status(request: web.Request) -> web.StreamResponse:
        code = int(request.match_info["code"])
        return web.json_response({"error": f"told to answer {code}"}, status=code)

    async def slow(_: web.Request) -> web.StreamResponse:
        await asyncio.sleep(5)
        return web.json_response({"value": 1.0})

    async def reset_twice(request: web.Request) -> web.StreamResponse:
        if srv.hits["reset_twice"] <= 2:
            assert request.transport is not None
            request.transport.abort()  # connection reset, no answer
            await asyncio.sleep(1)
        return web.json_response({"value": 3.0})

    async def reset_always(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.abort()
        await asyncio.sleep(1)
        return web.json_response({"value": 0.0})

    async def announced_huge(_: web.Request) -> web.StreamResponse:
        return web.Response(body=b"x" * 5000, content_type="application/json")

    async def streamed_huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(64):
            await response.write(b"y" * 1024)
        await response.write_eof()
        return response

    app = web.Application()
    for name, handler in (
        ("ok", ok),
        ("nan", nan),
        ("shape", shape),
        ("slow", slow),
        ("reset_twice", reset_twice),
        ("reset_always", reset_always),
        ("announced_huge", announced_huge),
        ("streamed_huge", streamed_huge),
    ):
        app.router.add_get(f"/{name}", counted(name, handler))
    app.router.add_get("/status/{code}", counted("status", status))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    assert site._server is not None
    srv.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield srv
    finally:
        await runner.cleanup()


async def test_a_good_answer_is_parsed_through_its_model(server: Server) -> None:
    async with Probe(port=server.port) as probe:
        response = await probe._request("GET", "/ok")
        assert response.parse(Reading, "reading").value == 7.5
        assert response.status == 200


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (401, DeviceAuthError),
        (403, DeviceAuthError),
        (404, DeviceNotFoundError),
        (500, DeviceHttpStatusError),
        (503, DeviceHttpStatusError),
    ],
)
async def test_error_statuses_map_through_the_one_table_and_are_not_retried(
    server: Server, code: int, error: type[DeviceError]
) -> None:
    async with Probe(port=server.port, retry_attempts=3) as probe:
        with pytest.raises(error) as info:
            await probe._request("GET", f"/status/{code}")
    assert isinstance(info.value, DeviceResponseError)
    assert not isinstance(info.value, DeviceConnectionError)
    message = str(info.value)
    assert message.startswith(f"probe 127.0.0.1:{server.port}: GET /status/{code}")
    assert f"HTTP {code}" in message
    assert f"told to answer {code}" in message  # the device's own reason
    if isinstance(info.value, DeviceHttpStatusError):
        assert info.value.status == code
    assert server.hits["status"] == 1


async def test_a_client_names_its_own_not_found_class(server: Server) -> None:
    async with CemmClient(host="127.0.0.1", port=server.port) as client:
        with pytest.raises(CemmNotFoundError):
            await client._request("GET", "/status/404")


async def test_refused_is_a_connection_error_after_every_attempt() -> None:
    attempts = 3
    async with Probe(port=free_port(), retry_attempts=attempts) as probe:
        with pytest.raises(DeviceConnectionError, match="connection failed on GET /ok") as info:
            await probe._request("GET", "/ok")
    assert not isinstance(info.value, DeviceTimeoutError)


async def test_no_answer_in_time_is_a_timeout_retried_with_backoff(server: Server) -> None:
    async with Probe(port=server.port, request_timeout_s=0.2, retry_attempts=2) as probe:
        with pytest.raises(DeviceTimeoutError, match=r"no answer within 0\.2 s to GET /slow"):
            await probe._request("GET", "/slow")
    assert server.hits["slow"] == 2  # a timeout is a connection error: retried


async def test_a_reset_connection_is_retried_until_the_device_answers(server: Server) -> None:
    async with Probe(port=server.port, retry_attempts=3) as probe:
        response = await probe._request("GET", "/reset_twice")
    assert response.parse(Reading, "reading").value == 3.0
    assert server.hits["reset_twice"] == 3


async def test_a_reset_on_every_attempt_gives_up_after_the_attempts(server: Server) -> None:
    async with Probe(port=server.port, retry_attempts=2) as probe:
        with pytest.raises(DeviceConnectionError, match="connection failed"):
            await probe._request("GET", "/reset_always")
    # two attempts of ours (aiohttp may replay a request once on a dropped pooled connection)
    assert 2 <= server.hits["reset_always"] <= 4


@pytest.mark.parametrize("path", ["/announced_huge", "/streamed_huge"])
async def test_a_body_beyond_the_bound_is_garbage_not_memory(server: Server, path: str) -> None:
    async with Probe(port=server.port, max_body_bytes=4096, retry_attempts=3) as probe:
        with pytest.raises(DeviceResponseError, match="garbage answer") as info:
            await probe._request("GET", path)
    assert "4096" in str(info.value)
    assert server.hits[path.strip("/")] == 1  # garbage is never retried


@pytest.mark.parametrize(("path", "field"), [("/nan", "value"), ("/shape", "value")])
async def test_nan_and_wrong_types_are_garbage_naming_the_field(
    server: Server, path: str, field: str
) -> None:
    async with Probe(port=server.port) as probe:
        response = await probe._request("GET", path)
        with pytest.raises(DeviceResponseError, match=f"unexpected reading response: {field}"):
            response.parse(Reading, "reading")


async def test_non_utf8_text_is_garbage(server: Server) -> None:
    async with Probe(port=server.port) as probe:
        response = await probe._request("GET", "/ok")
    broken = type(response)(response.device, response.what, 200, "text/plain", b"\xff\xfe")
    with pytest.raises(DeviceResponseError, match="not UTF-8"):
        broken.text()


async def test_a_json_content_type_can_be_required(server: Server) -> None:
    async with Probe(port=server.port) as probe:
        response = await probe._request("GET", "/streamed_huge")
        with pytest.raises(DeviceResponseError, match="not application/json"):
            response.parse(Reading, "reading", require_json_type=True)


async def test_an_injected_session_is_used_and_left_open(server: Server) -> None:
    async with aiohttp.ClientSession() as session:
        probe = Probe(port=server.port, session=session)
        await probe._request("GET", "/ok")
        await probe.close()
        assert probe.session is session
        assert not session.closed


async def test_an_own_session_is_created_on_use_and_closed(server: Server) -> None:
    probe = Probe(port=server.port)
    assert probe.session is None
    await probe._request("GET", "/ok")
    own = probe.session
    assert own is not None
    await probe.close()
    assert own.closed
    assert probe.session is None


def test_the_table_puts_timeouts_before_connection_errors() -> None:
    """aiohttp's own timeout is both a TimeoutError and a connection error: timeout wins."""
    exc = aiohttp.ServerTimeoutError("read timed out")
    first = next(error for caught, error in TRANSPORT_ERRORS if isinstance(exc, caught))
    assert first is DeviceTimeoutError
    payload = aiohttp.ClientPayloadError("truncated")
    first = next(error for caught, error in TRANSPORT_ERRORS if isinstance(payload, caught))
    assert first is DeviceResponseError
