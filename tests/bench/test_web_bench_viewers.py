"""``bench/web.py``'s 20 SSE viewers each come from a loopback address of their own.

The dashboard caps connections per peer address (``[api.web] max_connections_per_peer``,
round 13's hostile-input hardening); from one address the bench's 20 viewers were reset past
the cap and ``make bench`` stopped at the web benchmark (found in round 16, the first whole
``make bench`` since the cap). The bench is 20 people's browsers, so it connects like them."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.test_utils import TestServer

from fuseguard.config.apis import WebApiConfig

from ..benchkit import load_bench


def test_the_bench_has_more_viewers_than_one_peer_may_connect() -> None:
    # the reason for the distinct sources: one address would be refused past the cap
    assert WebApiConfig().max_connections_per_peer < load_bench("web").VIEWERS


async def test_each_viewer_connects_from_its_own_loopback_address() -> None:
    web_bench = load_bench("web")
    seen: list[str] = []

    async def hello(request: web.Request) -> web.Response:
        seen.append(str(request.remote))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", hello)
    async with TestServer(app, host="127.0.0.1") as server:
        sessions = [
            web_bench.new_session(source=web_bench.viewer_source(i))
            for i in range(web_bench.VIEWERS)
        ]
        try:
            for s in sessions:
                async with s.get(f"http://127.0.0.1:{server.port}/") as r:
                    assert r.status == 200
        finally:
            await asyncio.gather(*(s.close() for s in sessions))
    assert len(set(seen)) == web_bench.VIEWERS
    assert all(addr.startswith("127.") for addr in seen)
