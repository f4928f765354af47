"""Issue 16: the EVSE API over HTTPS (as `run` serves it) and seed 002's number types."""

from __future__ import annotations

import contextlib
import json
import ssl
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from fuseguard.api.evse_models import PlugStatusOut, PlugStatusRecord
from fuseguard.api.services import start_evse_api
from fuseguard.api.tls import CERT_NAME, KEY_NAME
from fuseguard.config import FuseguardConfig
from fuseguard.config.models import EvseApiConfig
from fuseguard.control.targets import EvseTargets
from fuseguard.demo import demo_config
from fuseguard.model.clock import VirtualClock
from fuseguard.model.phases import Phases
from fuseguard.model.status import PlugStatus
from fuseguard.runtime import EdgeRuntime
from fuseguard.store.db import create_engine, default_sqlite_url, init_schema
from fuseguard.store.tokens import TokenRepository

T = datetime(2024, 3, 25, 11, 12, 17, 851000, tzinfo=UTC)


def _record(status: PlugStatus, amps: Phases, power_w: float, limit_a: float) -> PlugStatusRecord:
    return PlugStatusRecord(
        time=T,
        plug_uuid="6bbf9fd56dc24f9697b078d5d8ccda84",
        plug_label="Plug 1",
        evse_uuid="25104c56d7f848af830af4300193efb3",
        status=status,
        current_a=amps,
        power_w=power_w,
        dyn_current_limit_a=limit_a,
    )


def test_status_numbers_have_the_seed_002_types():
    idle = PlugStatusOut.of(_record(PlugStatus.IDLE, Phases(0.0, 0.0, 0.0), 0.0, 6.0))
    text = idle.model_dump_json()
    assert '"current_l1":0,' in text and '"power":0,' in text
    assert '"dyn_current_limit":6}' in text
    charging = PlugStatusOut.of(_record(PlugStatus.CHARGING, Phases(10.3, 10.34, 9.96), 7107.0, 12))
    body = json.loads(charging.model_dump_json())
    assert body["current_l1"] == 10.3 and body["current_l2"] == 10.3
    assert body["current_l3"] == 10 and isinstance(body["current_l3"], int)  # 9.96 -> 10.0 -> 10
    assert isinstance(body["dyn_current_limit"], int) and body["dyn_current_limit"] == 12
    assert '"power":7107.0' in charging.model_dump_json()  # a float, as the seed shows it
    # strict decoders: integral amps are JSON integers, nothing integral is written as 6.0
    assert '"dyn_current_limit":12.0' not in charging.model_dump_json()
    back = PlugStatusOut.model_validate_json(text).to_record()
    assert back.dyn_current_limit_a == 6.0 and back.current_a == Phases(0.0, 0.0, 0.0)


def test_evse_api_is_https_by_default_with_configurable_files():
    cfg = EvseApiConfig()
    assert cfg.tls is True and cfg.cert_file is None
    assert EvseApiConfig(cert_file=Path("/x.pem"), key_file=Path("/x.key")).key_file


async def test_run_serves_the_evse_api_over_https_with_the_local_api_certificate(
    tmp_path: Path,
):
    demo = demo_config(
        data_dir=tmp_path,
        meter_port=1,
        charger_ports=[(1, 2), (3, 4), (5, 6)],
        password="pw",
        local_api_port=0,
        modbus_port=0,
        evse_api_port=0,
        host="127.0.0.1",
    )
    assert demo.api.evse.tls is False  # the loopback demo stays HTTP and says so
    data = demo.model_dump(mode="json")
    data["api"]["evse"]["tls"] = True
    data["api"]["local"]["password"] = "pw"
    config = FuseguardConfig.model_validate(data)
    clock = VirtualClock()
    engine = create_engine(default_sqlite_url(tmp_path))
    await init_schema(engine)
    evse = config.chargers[0].evse_uuid
    token = await TokenRepository(engine).create(config.site.edge_id, evse)
    controller: Any = SimpleNamespace(status=lambda: SimpleNamespace(time=clock.now(), plugs=[]))
    stack = contextlib.AsyncExitStack()
    rt = EdgeRuntime(
        config=config,
        clock=clock,
        controller=controller,
        flex=controller,
        targets=EvseTargets(clock),
        engine=engine,
        data_dir=tmp_path,
        stack=stack,
    )
    try:
        await start_evse_api(rt)
        url = rt.urls["evse_api"]
        assert url.startswith("https://127.0.0.1:")
        cert = tmp_path / CERT_NAME  # the same pair the local API uses
        assert cert.is_file() and (tmp_path / KEY_NAME).is_file()
        base = f"{url}/edgedevices/{config.site.edge_id}/evses/{evse}"
        headers = {"evsetoken": token}
        # -k, as curl against a self-signed certificate
        async with aiohttp.ClientSession() as http:
            async with http.post(
                base + "/currentsettings",
                data='{"current": 10, "duration": 60}',
                headers={**headers, "Content-Type": "application/json"},
                ssl=False,
            ) as r:
                assert r.status == 201, await r.text()
                assert (await r.json())["state"] == "received"
            async with http.get(base + "/status", headers=headers, ssl=False) as r:
                assert r.status == 200 and await r.json() == []
            # a client that checks certificates trusts it once given the generated file
            ctx = ssl.create_default_context(cafile=str(cert))
            async with http.get(base + "/currentsettings", headers=headers, ssl=ctx) as r:
                assert (await r.json())["current"] == 10
            with pytest.raises(aiohttp.ClientError):
                async with http.get(
                    base.replace("https://", "http://") + "/status", headers=headers
                ) as r:
                    await r.read()
    finally:
        await stack.aclose()
        await engine.dispose()
