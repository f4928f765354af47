"""The demo's bay-3 is a virtual OCPP charge point on the edge's own central system."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import aiohttp

from fuseguard.demo import DEMO_OCPP_ID, run_demo


async def test_the_demo_has_an_ocpp_charge_point_the_controller_sees(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    async def on_ready(info: dict[str, Any]) -> None:
        local = info["local_api"]
        token = base64.b64encode(f"{local['user']}:{local['password']}".encode()).decode()
        auth = {"Authorization": f"Basic {token}"}
        evse_api = info["evse_api"]
        bay3 = evse_api["evses"][2]
        base = f"{evse_api['url']}/edgedevices/{evse_api['edge_device_id']}/evses/{bay3['uuid']}"
        async with aiohttp.ClientSession() as session:
            # the charge point boots, gets its profiles and reports a status: not offline
            async with asyncio.timeout(20):
                while True:
                    async with session.get(
                        base + "/status", headers={"evsetoken": bay3["token"]}
                    ) as r:
                        status = await r.json()
                    if status and status[0].get("status") not in (None, "offline", "init"):
                        break
                    await asyncio.sleep(0.5)
            seen["status"] = status
            async with session.get(local["url"] + "/v1/live/data", headers=auth, ssl=False) as r:
                seen["live"] = r.status

    info = await run_demo(
        data_dir=tmp_path,
        local_api_port=0,
        modbus_port=0,
        evse_api_port=0,
        headless=True,
        duration_s=1.0,
        on_ready=on_ready,
    )
    assert info["ocpp"]["url"].startswith("ws://127.0.0.1:")
    assert info["ocpp"]["charge_points"][0]["id"] == DEMO_OCPP_ID
    assert info["ocpp"]["charge_points"][0]["password"]
    assert json.loads((tmp_path / "demo.json").read_text())["ocpp"] == info["ocpp"]
    assert seen["status"][0]["status"] not in ("offline", "init")
    assert seen["live"] == 200
