"""An embedded uvicorn server wakes once a second, not ten times (round 15), and still stops at
once when asked, from its own loop or from another thread."""

from __future__ import annotations

import asyncio
import threading
import time

import aiohttp
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from fuseguard.serving import EmbeddedServer, bind_socket


async def _hello(_request: object) -> PlainTextResponse:
    return PlainTextResponse("hello")


class CountingServer(EmbeddedServer):
    ticks = 0

    async def on_tick(self, counter: int) -> bool:
        self.ticks += 1
        return await super().on_tick(counter)


async def _started() -> tuple[CountingServer, asyncio.Task[None], int]:
    app = Starlette(routes=[Route("/", _hello)])
    config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False)
    server = CountingServer(config)
    sock = bind_socket("127.0.0.1", 0)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    return server, task, int(sock.getsockname()[1])


async def test_the_server_ticks_once_a_second_and_dates_its_answers() -> None:
    server, task, port = await _started()
    try:
        ticks = server.ticks
        await asyncio.sleep(1.5)
        assert server.ticks - ticks <= 2, "uvicorn's own loop ticked 15 times in 1.5 s"
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/") as resp,
        ):
            assert await resp.text() == "hello"
            assert resp.headers["Date"].endswith("GMT")
    finally:
        server.should_exit = True
        await task


@pytest.mark.parametrize("from_thread", [False, True], ids=["own loop", "other thread"])
async def test_should_exit_stops_the_server_at_once(from_thread: bool) -> None:
    server, task, _ = await _started()
    await asyncio.sleep(0.05)  # the loop waits for its next tick
    t0 = time.perf_counter()
    if from_thread:
        setter = threading.Thread(target=setattr, args=(server, "should_exit", True))
        setter.start()
        setter.join()
    else:
        server.should_exit = True
    await asyncio.wait_for(task, 5.0)
    # uvicorn's shutdown itself sleeps 0.1 s; the tick (1 s) must not add to it
    assert time.perf_counter() - t0 < 0.6
