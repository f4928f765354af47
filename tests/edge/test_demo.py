"""`fuseguard demo` end to end: it starts, writes demo.json, and its APIs answer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp

from fuseguard.demo import run_demo


async def test_demo_runs_and_serves_its_apis(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    async def on_ready(info: dict[str, Any]) -> None:
        local = info["local_api"]
        auth = {"Authorization": aiohttp.encode_basic_auth(local["user"], local["password"])}
        async with aiohttp.ClientSession() as session:
            async with session.get(local["url"] + "/v1/live/data", headers=auth, ssl=False) as r:
                seen["live_status"] = r.status
                seen["live"] = await r.json()
            async with session.get(local["url"] + "/v1/live/data", ssl=False) as r:
                seen["unauthorized"] = r.status
            evse_api = info["evse_api"]
            evse = evse_api["evses"][0]
            base = (
                f"{evse_api['url']}/edgedevices/{evse_api['edge_device_id']}/evses/{evse['uuid']}"
            )
            headers = {"evsetoken": evse["token"]}
            async with session.get(base + "/status", headers=headers) as r:
                seen["status_code"] = r.status
                seen["status"] = await r.json()
            body = {"current": 10, "duration": 60}
            async with session.post(base + "/currentsettings", json=body, headers=headers) as r:
                seen["post"] = (r.status, await r.json())
            async with session.get(base + "/currentsettings", headers=headers) as r:
                seen["get"] = await r.json()

    info = await run_demo(
        data_dir=tmp_path,
        local_api_port=0,
        modbus_port=0,
        evse_api_port=0,
        headless=True,
        duration_s=1.0,  # after on_ready: a control cycle or so more, then it stops
        on_ready=on_ready,
    )
    on_disk = json.loads((tmp_path / "demo.json").read_text())
    assert on_disk == info
    assert set(info) >= {"local_api", "modbus", "evse_api"}
    assert set(info["local_api"]) == {"url", "user", "password"}
    assert info["local_api"]["url"].startswith("https://")
    assert len(info["evse_api"]["evses"]) == 3
    assert seen["live_status"] == 200
    assert seen["unauthorized"] == 401
    assert set(seen["live"]) >= {"ActualActivePower", "ActualCurrentL1", "Status"}
    assert seen["status_code"] == 200
    assert seen["status"][0]["plug_uuid"] == info["evse_api"]["evses"][0]["plugs"][0]["uuid"]
    assert seen["post"] == (201, {"state": "received", "current": 10, "duration": 60})
    assert seen["get"]["current"] == 10
