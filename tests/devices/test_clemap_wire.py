"""The CLEMAP child-edge driver reads through strict wire models: garbage is refused, naming the
field, and the keep-alive path falls back on 404/405 through the status carried by the error."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from fuseguard.control.ports import DeviceResponseError
from fuseguard.devices.clemap import ClemapEdgeClient
from fuseguard.wire.clemap import KEEP_ALIVE_PATHS, LiveDataReading, settings_update

LIVE = {
    "ActualActivePower": 9200.0,
    "ActualReactivePower": 120,
    "ActualCurrentL1": 13.0,
    "ActualCurrentL2": 12.5,
    "ActualCurrentL3": 17.5,
    "Status": "charging",
}
SETTINGS = {"ActivePowerActivation": True, "CurrentLimit": 24.0, "FallbackCurrentLimit": 6.0}


@dataclass
class Edge:
    port: int = 0
    live: str = json.dumps(LIVE)
    settings: str = json.dumps(SETTINGS)
    keep_alive_status: dict[str, int] = field(default_factory=dict)
    posted: list[Any] = field(default_factory=list)


@pytest.fixture
async def edge() -> AsyncIterator[Edge]:
    state = Edge()

    async def live(_: web.Request) -> web.Response:
        return web.Response(text=state.live, content_type="application/json")

    async def get_settings(_: web.Request) -> web.Response:
        return web.Response(text=state.settings, content_type="application/json")

    async def post_settings(request: web.Request) -> web.Response:
        state.posted.append(await request.json())
        return web.Response(text=state.settings, content_type="application/json")

    async def keep_alive(request: web.Request) -> web.Response:
        return web.Response(status=state.keep_alive_status.get(request.path, 200))

    app = web.Application()
    app.router.add_get("/v1/live/data", live)
    app.router.add_get("/v1/flex_management/setting", get_settings)
    app.router.add_post("/v1/flex_management/setting", post_settings)
    for path in KEEP_ALIVE_PATHS:
        app.router.add_post(path, keep_alive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    assert site._server is not None
    state.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield state
    finally:
        await runner.cleanup()


def _client(edge: Edge) -> ClemapEdgeClient:
    return ClemapEdgeClient(
        host="127.0.0.1", port=edge.port, user="ems", password="pw", scheme="http"
    )


async def test_live_data_and_settings_parse(edge: Edge) -> None:
    async with _client(edge) as client:
        live = await client.live_data()
        assert live.current_a.l3 == 17.5
        assert live.current_sum_a == pytest.approx(43.0)  # absent: the sum of the phases
        assert live.reactive_power_var == 120.0
        settings = await client.settings()
        assert (settings.activation, settings.current_limit_a) == (True, 24.0)
        assert settings.run_state is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            '{"ActualActivePower": NaN, "ActualCurrentL1": 1, "ActualCurrentL2": 1, '
            '"ActualCurrentL3": 1}',
            "ActualActivePower",
        ),
        (json.dumps({**LIVE, "ActualCurrentL2": "12.5"}), "ActualCurrentL2"),
        (json.dumps({**LIVE, "ActualCurrentL2": True}), "ActualCurrentL2"),
        (json.dumps({**LIVE, "ActualCurrentL3": 1e9}), "ActualCurrentL3"),
        (json.dumps({k: v for k, v in LIVE.items() if k != "ActualCurrentL1"}), "ActualCurrentL1"),
        (json.dumps({**LIVE, "Status": 3}), "Status"),
        (json.dumps({**LIVE, "Status": "x" * 1000}), "Status"),
        ("[1, 2, 3]", "live data"),
        ("<html>", "live data"),
    ],
)
async def test_live_data_garbage_is_refused_naming_the_field(
    edge: Edge, body: str, field: str
) -> None:
    edge.live = body
    async with _client(edge) as client:
        with pytest.raises(DeviceResponseError, match="garbage answer") as info:
            await client.live_data()
    assert field in str(info.value)


@pytest.mark.parametrize(
    "change",
    [
        {"ActivePowerActivation": "true"},
        {"CurrentLimit": -1.0},
        {"CurrentLimit": None},
        {"FallbackCurrentLimit": "6"},
    ],
)
async def test_settings_garbage_is_refused(edge: Edge, change: dict[str, Any]) -> None:
    edge.settings = json.dumps({**SETTINGS, **change})
    async with _client(edge) as client:
        with pytest.raises(DeviceResponseError, match="garbage answer"):
            await client.settings()


async def test_only_the_given_settings_are_posted(edge: Edge) -> None:
    async with _client(edge) as client:
        await client.update_settings(current_limit_a=20)
        await client.set_current_limit(18.0)
    assert edge.posted == [
        {"CurrentLimit": 20.0},
        {"ActivePowerActivation": True, "CurrentLimit": 18.0},
    ]
    assert settings_update() == {}


@pytest.mark.parametrize("status", [404, 405])
async def test_keep_alive_falls_back_to_the_other_spelling(edge: Edge, status: int) -> None:
    edge.keep_alive_status[KEEP_ALIVE_PATHS[0]] = status
    async with _client(edge) as client:
        await client.keep_alive()  # the first path fails, the second answers
        assert client._keep_alive_path == KEEP_ALIVE_PATHS[1]
        await client.keep_alive()


async def test_keep_alive_other_errors_are_raised(edge: Edge) -> None:
    edge.keep_alive_status[KEEP_ALIVE_PATHS[0]] = 500
    async with _client(edge) as client:
        with pytest.raises(DeviceResponseError, match="HTTP 500"):
            await client.keep_alive()
        assert client._keep_alive_path == KEEP_ALIVE_PATHS[0]


def test_the_model_keeps_unknown_sgr_placeholders_out() -> None:
    live = LiveDataReading.model_validate({**LIVE, "MaxActivePower": 0.0})
    assert live.status == "charging"
