"""``run_demo``: the whole demo, and its demo.json."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fuseguard.config import FuseguardConfig
from fuseguard.demo.config import (
    demo_config,
    integrations_config,
)
from fuseguard.demo.site import (
    DEMO_FUSE_A,
    DEMO_WEB_USER,
    _ocpp_info,
    _ocpp_station,
    _serve_bays,
    _serve_meters,
    _simulation_tasks,
    demo_base_load,
)
from fuseguard.edge import Edge
from fuseguard.model.clock import Clock, RealClock
from fuseguard.sim.cemm_model import CemmModel
from fuseguard.sim.cemm_server import serve_cemm
from fuseguard.sim.site import BaseLoad, PvPlant, SiteModel


async def _create_tokens(config: FuseguardConfig) -> dict[str, str]:
    from fuseguard.store.db import create_engine, init_schema
    from fuseguard.store.tokens import TokenRepository

    engine = create_engine(config.storage_url)
    try:
        await init_schema(engine)
        repo = TokenRepository(engine)
        return {
            ch.evse_uuid: await repo.create(config.site.edge_id, ch.evse_uuid)
            for ch in config.chargers
        }
    finally:
        await engine.dispose()


async def _create_web_user(config: FuseguardConfig, password: str) -> None:
    from fuseguard.store.db import create_engine, init_schema
    from fuseguard.store.web import Role, WebUserRepository

    engine = create_engine(config.storage_url)
    try:
        await init_schema(engine)
        await WebUserRepository(engine).add(DEMO_WEB_USER, password, Role.ADMIN, replace=True)
    finally:
        await engine.dispose()


def _demo_site(clock: Clock) -> tuple[SiteModel, PvPlant, CemmModel]:
    """The site model (building load, PV) and the virtual CEMM that meters it."""
    site = SiteModel(clock)
    site.add(BaseLoad(demo_base_load()))
    pv = PvPlant(peak_w=6000.0, sunrise_s=0.0, sunset_s=1200.0)
    site.add(pv)
    return site, pv, CemmModel.for_site(site, pv=pv)


async def run_demo(
    *,
    data_dir: Path,
    local_api_port: int = 7000,
    modbus_port: int = 5020,
    evse_api_port: int = 3032,
    web_port: int = 0,
    host: str = "127.0.0.1",
    headless: bool = False,
    duration_s: float | None = None,
    seed: int = 1,
    on_ready: Callable[[dict[str, Any]], Awaitable[None] | None] | None = None,
    mqtt_url: str | None = None,
    mqtt_prefix: str = "fuseguard",
    ha_prefix: str = "homeassistant",
    metrics_port: int | None = None,
) -> dict[str, Any]:
    """Run the demo until cancelled (or for ``duration_s``); returns the demo.json content.

    ``mqtt_url`` publishes the site over MQTT (with Home Assistant discovery below
    ``ha_prefix``); ``metrics_port`` serves ``/metrics`` (0 = any free port); the dashboard
    listens on ``web_port`` (0 = any free port; ``fuseguard demo`` uses 8080)."""
    clock = RealClock()
    rng = random.Random(seed)
    site, pv, cemm = _demo_site(clock)
    data_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, at start-up
    async with contextlib.AsyncExitStack() as stack:
        meter_handle = await serve_cemm(cemm, "127.0.0.1", 0, discovery_port=None)
        stack.push_async_callback(meter_handle.close)
        garage_port, pv_port = await _serve_meters(clock, site, pv, stack)
        bays, ports = await _serve_bays(clock, site, stack)
        password = secrets.token_urlsafe(12)
        ocpp = _ocpp_station(clock, site, bays)
        config = demo_config(
            data_dir=data_dir,
            meter_port=meter_handle.port,
            charger_ports=ports,
            password=password,
            local_api_port=local_api_port,
            modbus_port=modbus_port,
            evse_api_port=evse_api_port,
            host=host,
            web_port=web_port,
            extra=integrations_config(mqtt_url, mqtt_prefix, ha_prefix, metrics_port),
            garage_meter_port=garage_port,
            pv_port=pv_port,
            ocpp=ocpp.config,
        )
        tokens = await _create_tokens(config)
        await _create_web_user(config, password)
        background = _simulation_tasks(clock, site, bays, rng, ocpp)
        edge = Edge(config, clock)
        edge_task = asyncio.create_task(edge.run(), name="edge")
        background.append(edge_task)
        try:
            ready = asyncio.create_task(edge.ready.wait())
            done, _ = await asyncio.wait({ready, edge_task}, return_when=asyncio.FIRST_COMPLETED)
            if edge_task in done:
                edge_task.result()
            info = _demo_info(edge, config, password, tokens)
            info["ocpp"] = _ocpp_info(ocpp.config)
            write_private(data_dir / "demo.json", json.dumps(info, indent=2) + "\n")
            if on_ready is not None:
                maybe = on_ready(info)
                if maybe is not None:
                    await maybe
            _print_info(info, data_dir)
            if headless:
                await _wait(edge_task, duration_s)
            else:
                from fuseguard.view import live_view

                await live_view(edge, site, info, edge_task, duration_s)
            return info
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)


def write_private(path: Path, text: str) -> None:
    """Write a file with credentials: mode 0600 from its creation, replaced atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


async def _wait(edge_task: asyncio.Task[None], duration_s: float | None) -> None:
    if duration_s is None:
        await edge_task
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(edge_task), duration_s)


def _demo_info(
    edge: Edge, config: FuseguardConfig, password: str, tokens: dict[str, str]
) -> dict[str, Any]:
    from fuseguard.api.edge_evse import evse_api_block, evse_infos_from_config

    modbus_host, _, modbus_port = edge.urls["modbus"].rpartition(":")
    info: dict[str, Any] = {
        "local_api": {"url": edge.urls["local_api"], "user": "demo", "password": password},
        "modbus": {"host": modbus_host, "port": int(modbus_port), "unit_id": 1},
        "evse_api": evse_api_block(
            edge.urls["evse_api"],
            config.site.edge_id,
            evse_infos_from_config(config),
            tokens,
        ),
        "site": {"edge_id": config.site.edge_id, "main_fuse_a": DEMO_FUSE_A},
    }
    if "web" in edge.urls:
        info["web"] = {"url": edge.urls["web"], "user": DEMO_WEB_USER, "password": password}
    if "metrics" in edge.urls:
        info["metrics"] = {"url": edge.urls["metrics"]}
    if config.mqtt.url is not None:
        base = f"{config.mqtt.topic_prefix}/{config.site.edge_id}"
        info["mqtt"] = {
            "url": config.mqtt.url,
            "base_topic": base,
            "discovery_prefix": config.mqtt.discovery_prefix,
        }
    return info


def _print_info(info: dict[str, Any], data_dir: Path) -> None:
    local = info["local_api"]
    evse = info["evse_api"]
    lines = [
        "fuseguard demo is running (Ctrl-C stops it)",
    ]
    if "web" in info:
        web = info["web"]
        lines.append(f"  dashboard   {web['url']}  user {web['user']}  password {web['password']}")
    lines += [
        f"  local API   {local['url']}  user {local['user']}  password {local['password']}",
        f"  Modbus twin {info['modbus']['host']}:{info['modbus']['port']} unit 1",
        f"  EVSE API    {evse['url']}/edgedevices/{evse['edge_device_id']}/evses/<uuid>/status",
        *(
            ["              (plain HTTP: the demo is on loopback; `fuseguard run` serves HTTPS)"]
            if evse["url"].startswith("http://")
            else []
        ),
    ]
    if "ocpp" in info:
        ocpp = info["ocpp"]
        cps = ", ".join(cp["id"] for cp in ocpp["charge_points"])
        lines.append(f"  OCPP 1.6J   {ocpp['url']}/<id>  charge points {cps}")
    if "metrics" in info:
        lines.append(f"  metrics     {info['metrics']['url']}")
    if "mqtt" in info:
        lines.append(f"  MQTT        {info['mqtt']['url']}  topics {info['mqtt']['base_topic']}/#")
    lines.append(f"  details     {data_dir / 'demo.json'}")
    print("\n".join(lines), flush=True)
