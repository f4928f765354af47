"""Issue 17 "should fix" (secret hygiene): a full demo run with logins, wrong logins and token use
logs no password and no token, in structlog events or stdlib log records."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from fuseguard.demo import run_demo


async def test_demo_logs_no_password_and_no_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def on_ready(info: dict[str, Any]) -> None:
        local = info["local_api"]
        good = {"Authorization": aiohttp.encode_basic_auth(local["user"], local["password"])}
        wrong = {
            "Authorization": aiohttp.encode_basic_auth(local["user"], "not-" + local["password"])
        }
        evse_api = info["evse_api"]
        async with aiohttp.ClientSession() as session:
            for headers in (good, wrong, {}):
                async with session.get(local["url"] + "/v1/live/data", headers=headers, ssl=False):
                    pass
            body = {"CurrentLimit": 20, "ActivePowerActivation": True}
            url = local["url"] + "/v1/flex_management/setting"
            async with session.post(url, json=body, headers=good, ssl=False):
                pass
            for evse in evse_api["evses"]:
                base = f"{evse_api['url']}/edgedevices/{evse_api['edge_device_id']}/evses/{evse['uuid']}"
                headers = {"evsetoken": evse["token"]}
                async with session.post(
                    base + "/currentsettings", json={"current": 10, "duration": 60}, headers=headers
                ):
                    pass
                async with session.get(
                    base + "/status", headers={"evsetoken": evse["token"] + "x"}
                ):
                    pass

    caplog.set_level(logging.DEBUG)
    with capture_logs() as events:
        info = await run_demo(
            data_dir=tmp_path,
            local_api_port=0,
            modbus_port=0,
            evse_api_port=0,
            headless=True,
            duration_s=2.0,
            on_ready=on_ready,
        )
    secrets = [info["local_api"]["password"], *(e["token"] for e in info["evse_api"]["evses"])]
    assert all(len(s) >= 8 for s in secrets)
    text = json.dumps(events, default=str) + "\n".join(r.getMessage() for r in caplog.records)
    assert len(events) > 10  # the run did log
    leaked = [s for s in secrets if s in text]
    assert leaked == []
