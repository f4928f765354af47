"""``fuseguard demo``: a whole simulated site on one laptop.

A virtual CEMM meter, two virtual Bender charge controllers (different firmware, a 1-phase car,
rotated wiring) and a virtual OCPP 1.6J charge point (bay-3, which connects to the edge's own
central system) run on loopback on the real wire protocols, over one shared site model
(building load, PV, the cars). ``bay-3`` sits in a garage sub-distribution (20 A, its own
household load) metered by a virtual Eastron SDM630, and a virtual SunSpec inverter is the PV
input (:func:`_serve_meters`). Cars arrive and leave. The edge connects to them exactly as to real
devices and serves the local API, the Modbus twin, the EVSE API and the web dashboard (user
``demo``, an admin). The URLs and credentials are printed and written to ``DATA_DIR/demo.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog

from fuseguard.config import FuseguardConfig
from fuseguard.edge import Edge
from fuseguard.model.circuits import MAIN
from fuseguard.model.clock import Clock, RealClock
from fuseguard.model.phases import Phases, Rotation
from fuseguard.sim.bender import BenderController, BenderDeviceConfig, Firmware
from fuseguard.sim.bender_serve import serve_bender
from fuseguard.sim.cemm_model import CemmModel
from fuseguard.sim.cemm_server import serve_cemm
from fuseguard.sim.ocpp.plug import OcppPlug
from fuseguard.sim.ocpp.station import OcppSimConfig, VirtualOcppStation
from fuseguard.sim.site import BaseLoad, PiecewiseLinear, PvPlant, SiteModel
from fuseguard.sim.vehicle import SimVehicle

log = structlog.get_logger(__name__)

DEMO_FUSE_A = 35
DEMO_GARAGE = "garage"  # the sub-circuit with its own SDM630
DEMO_GARAGE_FUSE_A = 20
DEMO_EDGE_ID = "demo-edge"
DEMO_WEB_USER = "demo"
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class DemoBay:
    """One virtual charger of the demo and the kind of car that uses it."""

    id: str
    evse_uuid: str
    plug_uuid: str
    firmware: Firmware
    rotation: Rotation
    max_current_a: int
    car_phases: int
    car_max_a: float
    circuit: str = MAIN
    driver: str = "bender"


BAYS = (
    DemoBay("bay-1", "25104c56d7f848af830af4300193efb3", "6bbf9fd56dc24f9697b078d5d8ccda84",
            Firmware.V5_33, Rotation.L1L2L3, 32, 3, 16.0),
    DemoBay("bay-2", "8e0c4f7a1b2d4c6e9f0a1b2c3d4e5f60", "c99838f9eb5b423d8e1f2a3b4c5d6e7f",
            Firmware.V5_22, Rotation.L2L3L1, 32, 1, 32.0),
    DemoBay("bay-3", "0f1e2d3c4b5a69788796a5b4c3d2e1f0", "a1b2c3d4e5f60718293a4b5c6d7e8f90",
            Firmware.V5_33, Rotation.L3L1L2, 16, 3, 16.0, DEMO_GARAGE, "ocpp"),
)  # fmt: skip
#: the OCPP identity of the demo's OCPP charge point (bay-3)
DEMO_OCPP_ID = "CP3"


def demo_base_load() -> Callable[[float], Phases]:
    """A building load that changes every few minutes (repeats every 10 minutes)."""
    profile = PiecewiseLinear(
        [
            (0, Phases(6, 3, 4)),
            (90, Phases(12, 4, 6)),
            (180, Phases(9, 11, 5)),
            (300, Phases(15, 6, 12)),
            (420, Phases(7, 5, 4)),
            (600, Phases(6, 3, 4)),
        ]
    )
    return lambda t: profile(t % 600.0)


async def car_traffic(clock: Clock, bays: list[tuple[DemoBay, Any]], rng: random.Random) -> None:
    """Cars arrive, charge for a few minutes (or until full) and leave; the next one comes."""

    async def one_bay(index: int, bay: DemoBay, connector: Any) -> None:
        await clock.sleep(2.0 + 6.0 * index)
        n = 0
        while True:
            n += 1
            car = SimVehicle(
                phases=bay.car_phases,
                max_current_a=bay.car_max_a,
                battery_wh=rng.choice([8_000.0, 40_000.0, 60_000.0]),
                soc=rng.uniform(0.2, 0.75),
                name=f"{bay.id}-car{n}",
            )
            connector.plug_in(car)
            log.info("demo_car_arrived", device=bay.id, car=car.name, soc=round(car.soc, 2))
            await clock.sleep(rng.uniform(240.0, 480.0))
            connector.unplug()
            log.info("demo_car_left", device=bay.id, car=car.name, soc=round(car.soc, 2))
            await clock.sleep(rng.uniform(30.0, 90.0))

    await asyncio.gather(*(one_bay(i, b, c) for i, (b, c) in enumerate(bays)))


def demo_config(
    *,
    data_dir: Path,
    meter_port: int,
    charger_ports: list[tuple[int, int]],
    password: str,
    local_api_port: int,
    modbus_port: int,
    evse_api_port: int,
    host: str,
    web_port: int = 0,
    extra: dict[str, Any] | None = None,
    garage_meter_port: int | None = None,
    pv_port: int | None = None,
    ocpp: OcppSimConfig | None = None,
) -> FuseguardConfig:
    """The edge config the demo runs with (the same schema as ``examples/site.toml``).

    ``extra`` adds sections (``mqtt``) and API blocks (``api.metrics``). ``charger_ports`` has a
    (REST, Modbus) pair per bay (unused for the OCPP bay); ``ocpp`` is the virtual OCPP charge
    point: the central system listens on its URL's port, the OCPP bay has its identity and
    password (without it: any free port, and ``password``). ``garage_meter_port`` meters the
    garage with an SDM630, ``pv_port`` reads the PV inverter over SunSpec."""
    ocpp_port = urlsplit(ocpp.url).port or 0 if ocpp is not None else 0
    ocpp_password = ocpp.password if ocpp is not None else None
    chargers = [
        _charger_config(bay, rest, mb, ocpp_password or password)
        for bay, (rest, mb) in zip(BAYS, charger_ports, strict=True)
    ]
    api: dict[str, Any] = {
        "local": {
            "host": host,
            "port": local_api_port,
            "user": "demo",
            "password": password,
            "docs": True,
        },
        "modbus": {"host": host, "port": modbus_port},
        "ocpp": {"host": "127.0.0.1", "port": ocpp_port, "meter_interval_s": 5},
        # Plain HTTP while the demo stays on loopback (said in the banner); `run` is HTTPS.
        "evse": {"host": host, "port": evse_api_port, "tls": not _loopback(host), "docs": True},
        # plain HTTP only on loopback; on a network address the edge's certificate is used
        "web": {"enabled": True, "host": host, "port": web_port, "tls": not _loopback(host)},
    }
    data: dict[str, Any] = {
        "data_dir": str(data_dir),
        "site": {
            "edge_id": DEMO_EDGE_ID,
            "name": "fuseguard demo",
            "main_fuse_a": DEMO_FUSE_A,
            "circuits": [_garage_circuit(garage_meter_port)],
        },
        "meter": {"driver": "cemm", "host": "127.0.0.1", "port": meter_port, "alias": "p1"},
        "chargers": chargers,
        "control": {"min_run_s": 60, "min_pause_s": 30},
        "api": api,
    }
    if pv_port is not None:
        data["pv"] = {"driver": "sunspec", "host": "127.0.0.1", "port": pv_port}
    for key, section in (extra or {}).items():
        if key == "api":
            api.update(section)
        else:
            data[key] = section
    return FuseguardConfig.model_validate(data)


def _garage_circuit(meter_port: int | None) -> dict[str, Any]:
    circuit: dict[str, Any] = {"id": DEMO_GARAGE, "fuse_a": DEMO_GARAGE_FUSE_A}
    if meter_port is not None:
        circuit["meter"] = {
            "driver": "modbus",
            "model": "sdm630",
            "host": "127.0.0.1",
            "port": meter_port,
        }
    return circuit


async def _serve_meters(
    clock: Clock, site: SiteModel, pv: PvPlant, stack: contextlib.AsyncExitStack
) -> tuple[int, int]:
    """The garage (a workshop load) with a virtual SDM630 and the PV plant behind a virtual
    SunSpec inverter, on loopback: (SDM630 port, inverter port)."""
    from fuseguard.sim.meters import (
        MeterFaults,
        MeterModbusServer,
        PvInverterSource,
        SiteMeter,
        VirtualModbusMeter,
        VirtualSunSpecInverter,
    )
    from fuseguard.wire.meters import builtin_map

    site.add_circuit(DEMO_GARAGE)
    workshop = PiecewiseLinear(
        [(0, Phases(3, 2, 2)), (150, Phases(8, 3, 6)), (400, Phases(3, 2, 2))]
    )
    site.add(BaseLoad(lambda t: workshop(t % 400.0), circuit=DEMO_GARAGE))
    sdm630 = VirtualModbusMeter(
        builtin_map("sdm630"), SiteMeter(site, DEMO_GARAGE), MeterFaults("garage-sdm630", clock)
    )
    inverter = VirtualSunSpecInverter(PvInverterSource(site, pv), MeterFaults("pv-inverter", clock))
    ports = []
    for device in (sdm630, inverter):
        server = MeterModbusServer(device, port=0)
        await server.start()
        stack.push_async_callback(server.close)
        ports.append(server.port)
    return ports[0], ports[1]


def _charger_config(bay: DemoBay, rest: int, mb: int, ocpp_password: str) -> dict[str, Any]:
    common: dict[str, Any] = {
        "id": bay.id,
        "evse_uuid": bay.evse_uuid,
        "rotation": bay.rotation.value,
        "circuit": bay.circuit,
        "max_current_a": bay.max_current_a,
        "safe_current_a": 6,
        "plugs": [{"uuid": bay.plug_uuid, "label": "Plug 1"}],
    }
    if bay.driver == "ocpp":
        return common | {
            "driver": "ocpp",
            "ocpp_id": DEMO_OCPP_ID,
            "ocpp_password": ocpp_password,
        }
    return common | {
        "driver": "bender",
        "host": "127.0.0.1",
        "rest_port": rest,
        "modbus_port": mb,
        "safe_timeout_s": 30,
    }


def integrations_config(
    mqtt_url: str | None, mqtt_prefix: str, ha_prefix: str, metrics_port: int | None
) -> dict[str, Any]:
    """The ``[mqtt]`` section and ``[api.metrics]`` block of the demo (``--mqtt``, ...)."""
    extra: dict[str, Any] = {}
    if mqtt_url is not None:
        extra["mqtt"] = {
            "url": mqtt_url,
            "topic_prefix": mqtt_prefix,
            "discovery_prefix": ha_prefix,
            "client_id": f"fuseguard-demo-{secrets.token_hex(4)}",
        }
    if metrics_port is not None:
        extra["api"] = {"metrics": {"enabled": True, "host": "127.0.0.1", "port": metrics_port}}
    return extra


def _loopback(host: str) -> bool:
    return host in ("127.0.0.1", "localhost", "::1")


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
    site = SiteModel(clock)
    site.add(BaseLoad(demo_base_load()))
    pv = PvPlant(peak_w=6000.0, sunrise_s=0.0, sunset_s=1200.0)
    site.add(pv)
    cemm = CemmModel.for_site(site, pv=pv)
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


async def _serve_bays(
    clock: Clock, site: SiteModel, stack: contextlib.AsyncExitStack
) -> tuple[list[tuple[DemoBay, Any]], list[tuple[int, int]]]:
    """One virtual Bender charger per bay on loopback: (bay, connector) and (REST, Modbus) ports."""
    bays: list[tuple[DemoBay, Any]] = []
    ports: list[tuple[int, int]] = []
    for bay in BAYS:
        if bay.driver == "ocpp":
            bays.append((bay, None))  # the OCPP charge point comes with the edge's port
            ports.append((0, 0))
            continue
        ctrl = BenderController(
            clock=clock,
            config=BenderDeviceConfig(
                firmware=bay.firmware,
                max_current_a=bay.max_current_a,
                free_charging=True,
                cp_id=f"+49*839*0000000000{BAYS.index(bay) + 1}",
            ),
            rotations=(bay.rotation,),
            circuit=bay.circuit,
        )
        for connector in ctrl.connectors:
            site.add(connector)
        handle = await serve_bender(ctrl, "127.0.0.1", rest_port=0, modbus_port=0)
        stack.push_async_callback(handle.close)
        bays.append((bay, ctrl.connector(1)))
        ports.append((handle.rest_port, handle.modbus_port))
    return bays, ports


def _free_loopback_port() -> int:
    """A free loopback TCP port for the edge's OCPP central system (which the charge point must
    know before the edge starts)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _simulation_tasks(
    clock: Clock,
    site: SiteModel,
    bays: list[tuple[DemoBay, Any]],
    rng: random.Random,
    ocpp: VirtualOcppStation,
) -> list[asyncio.Task[Any]]:
    """The site, the car traffic and the OCPP charge point (which connects, with backoff, once
    the edge's central system listens)."""
    return [
        asyncio.create_task(site.run(), name="site"),
        asyncio.create_task(car_traffic(clock, bays, rng), name="cars"),
        asyncio.create_task(ocpp.run(), name="ocpp-charge-point"),
    ]


def _ocpp_info(cfg: OcppSimConfig) -> dict[str, Any]:
    """The ``ocpp`` block of demo.json."""
    return {"url": cfg.url, "charge_points": [{"id": cfg.identity, "password": cfg.password}]}


def _ocpp_station(
    clock: Clock, site: SiteModel, bays: list[tuple[DemoBay, Any]]
) -> VirtualOcppStation:
    """The virtual OCPP charge point of the OCPP bay (a free loopback port for the edge's
    central system, a fresh password), on the site; its slot in ``bays`` gets the plug the car
    traffic uses."""
    index, bay = next((i, b) for i, (b, _) in enumerate(bays) if b.driver == "ocpp")
    station = VirtualOcppStation(
        OcppSimConfig(
            url=f"ws://127.0.0.1:{_free_loopback_port()}/ocpp",
            identity=DEMO_OCPP_ID,
            password=secrets.token_urlsafe(12),
            max_current_a=float(bay.max_current_a),
            profile_delay_s=2.0,
            meter_interval_s=5,
        ),
        clock,
        site_time=lambda: site.t_s,
    )
    core = station.connector(1)
    core.rewire(bay.rotation)
    site.add(core)
    bays[index] = (bay, OcppPlug(station, 1))
    return station


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
