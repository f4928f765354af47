"""Compressed responses: pages, CSS, JS and JSON in gzip when accepted; the SSE stream as it is."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from .webkit import ADMIN_PW, Client, Rig, next_sse_status, start_rig, status, stop_rig

GZIP = {"Accept-Encoding": "gzip"}


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = await start_rig(tmp_path)
    try:
        yield r
    finally:
        await stop_rig(r)


@pytest.fixture
async def client(rig: Rig) -> AsyncIterator[Client]:
    c = Client(rig.url)
    assert await c.login("alice", ADMIN_PW) == 303
    # Same cookies, raw bytes: the test itself checks that they are gzip and decompresses them.
    raw = Client(rig.url)
    await raw.http.close()
    raw.http = aiohttp.ClientSession(
        cookie_jar=c.http.cookie_jar,
        timeout=aiohttp.ClientTimeout(total=10),
        auto_decompress=False,
    )
    try:
        yield raw
    finally:
        await raw.close()
        await c.close()


async def _raw(client: Client, path: str, headers: dict[str, str]) -> tuple[str, str, bytes]:
    async with client.http.get(client.base + path, headers=headers) as r:
        assert r.status == 200, path
        return r.headers.get("content-encoding", ""), r.headers["content-type"], await r.read()


async def _static_paths(client: Client) -> list[str]:
    _, _, body = await _raw(client, "/site", {"Accept-Encoding": "identity"})
    page = body.decode()
    paths = [p.split('"')[0] for p in page.split('src="/static/')[1:]]
    paths += [p.split('"')[0] for p in page.split('href="/static/')[1:]]
    return ["/static/" + p.split("?")[0] for p in paths]


async def test_pages_css_js_and_json_are_gzipped_when_accepted(client: Client) -> None:
    statics = await _static_paths(client)
    assert any(p.endswith(".js") for p in statics) and any(p.endswith(".css") for p in statics)
    for path in ["/site", "/live/data", *statics]:
        encoding, kind, body = await _raw(client, path, GZIP)
        plain_encoding, _, plain = await _raw(client, path, {"Accept-Encoding": "identity"})
        assert plain_encoding == "", path
        if len(plain) < 500:  # below the minimum size it is sent as it is
            assert encoding == "", path
            continue
        assert encoding == "gzip", (path, kind)
        assert gzip.decompress(body) == plain, path
        assert len(body) < len(plain), path
    encoding, kind, body = await _raw(client, "/live/data", GZIP)
    assert kind.startswith("application/json")
    assert "plugs" in json.loads(gzip.decompress(body) if encoding == "gzip" else body)


async def test_sse_is_not_compressed_and_still_streams(rig: Rig, client: Client) -> None:
    async with client.http.get(rig.url + "/live/stream", headers=GZIP) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        assert "content-encoding" not in r.headers
        first = await asyncio.wait_for(next_sse_status(r), 2.0)
        assert first["cycles"] == 7
        rig.current.append(status(rig.clock.now(), cycles=8))
        rig.hub.on_status(rig.current[-1])
        second = await asyncio.wait_for(next_sse_status(r), 2.0)
    assert second["cycles"] == 8
