"""Fleet click-through end to end: a cloud replica and an edge agent on the machine's Mosquitto,
the edge page and its event stream over HTTP, the edge's live data relayed over MQTT."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from .cloudrig import ADMIN, CloudRig, running_cloud
from .webkit import next_sse_status

pytestmark = pytest.mark.mqtt


@pytest.fixture
def rig(mqtt_url: str, tmp_path: Path) -> Iterator[CloudRig]:
    with running_cloud(mqtt_url, tmp_path) as r:
        yield r


def _session(auth: bool = True) -> aiohttp.ClientSession:
    token = base64.b64encode(":".join(ADMIN).encode()).decode()
    return aiohttp.ClientSession(
        headers={"Authorization": f"Basic {token}"} if auth else None,
        timeout=aiohttp.ClientTimeout(total=20),
    )


async def test_fleet_links_to_the_edges_live_page_relayed_over_mqtt(rig: CloudRig) -> None:
    page_path = f"/fleet/edges/{rig.edge_id}"
    async with _session() as http:
        async with http.get(rig.url + "/fleet") as r:
            assert r.status == 200
            assert f'<a href="{page_path}">{rig.edge_id}</a>' in await r.text()
        async with http.get(rig.url + page_path) as r:
            assert r.status == 200
            html = await r.text()
            csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "default-src 'none'" in csp
        # the edge's own template on the relayed data: the circuit tree, bars, the plug card
        assert 'data-circuit="main"' in html
        assert 'data-circuit="garage"' in html
        assert 'class="bar"' in html
        assert "wb1 · Plug 1" in html
        assert '<span data-f="setpoint_a">16</span>' in html
        assert 'class="conn ok"' in html  # a fresh snapshot: not stale
        assert f'data-stream="{page_path}/stream"' in html
        assert "/fleet/static/live.js" in html
        assert "Garage test site" in html
        async with http.get(rig.url + page_path + "/stream") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            first = await asyncio.wait_for(next_sse_status(stream), 10)
            assert first["plugs"][0]["setpoint_a"] == 16
            assert first["plugs"][0]["status_words"] == "Charging"
            rig.setpoint_a = 9  # the edge's next snapshot (one per second) carries it
            for _ in range(10):
                later = await asyncio.wait_for(next_sse_status(stream), 10)
                if later["plugs"][0]["setpoint_a"] == 9:
                    break
            assert later["plugs"][0]["setpoint_a"] == 9
            assert later["stale"] is False


async def test_edge_page_access_rules(rig: CloudRig) -> None:
    async with _session(auth=False) as anonymous:
        for path in (f"/fleet/edges/{rig.edge_id}", "/fleet/static/live.js"):
            async with anonymous.get(rig.url + path) as r:
                assert r.status == 401, path
    async with _session() as http:
        for path in ("/fleet/edges/no-such-edge", "/fleet/edges/no-such-edge/stream"):
            async with http.get(rig.url + path) as r:
                assert r.status == 404, path
        async with http.get(rig.url + "/fleet/static/live.js") as r:
            assert r.status == 200
            assert "EventSource" in await r.text()
        for path in ("history.js", "vendor/htmx.LICENSE", "..%2F..%2Fcore.py"):
            async with http.get(rig.url + "/fleet/static/" + path) as r:
                assert r.status == 404, path
