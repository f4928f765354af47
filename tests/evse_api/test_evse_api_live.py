"""The API on a real uvicorn socket (127.0.0.1, ephemeral port), called with aiohttp."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import aiohttp
import uvicorn
from evse_edge_helpers import EDGE, EVSE_A, EVSE_B, Edge


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the test owns signals
        yield


async def test_live_socket_round_trip(edge: Edge) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = _Server(uvicorn.Config(edge.app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(5):
            while not server.started:
                await asyncio.sleep(0.01)
        base = f"http://127.0.0.1:{port}/edgedevices/{EDGE}/evses"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            headers = {"evsetoken": edge.token_a}
            async with http.post(
                f"{base}/{EVSE_A}/currentsettings",
                json={"current": 16, "duration": 3600},
                headers=headers,
            ) as r:
                assert r.status == 201
                assert await r.json() == {"state": "received", "current": 16, "duration": 3600}
            async with http.get(f"{base}/{EVSE_A}/currentsettings", headers=headers) as r:
                assert (await r.json())["current"] == 16
            async with http.get(f"{base}/{EVSE_B}/status", headers=headers) as r:
                assert r.status == 403
                assert r.content_type == "application/json"
                assert (await r.json())["name"] == "Forbidden"
            async with http.get(f"{base}/{EVSE_A}/status") as r:
                assert r.status == 401
            async with http.get(f"http://127.0.0.1:{port}/openapi.json") as r:
                spec = await r.json()
                assert spec["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "evsetoken"
    finally:
        server.should_exit = True
        async with asyncio.timeout(5):
            await task
        sock.close()
    assert edge.targets.cap_a(EVSE_A) == 16
