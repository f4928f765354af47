"""The demo's virtual site: bays, meters, the OCPP charge point, building load, car traffic."""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from fuseguard.model.circuits import MAIN
from fuseguard.model.clock import Clock
from fuseguard.model.phases import Phases, Rotation
from fuseguard.sim.bender import BenderController, BenderDeviceConfig, Firmware
from fuseguard.sim.bender_serve import serve_bender
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
    """A building load that changes every few minutes (repeats every 10 minutes).

    Half of what it was before round 11: the demo's grid meter (CEMM) gives total power only,
    so the allocator assumes all of the non-EV load on every phase (``phase_assumption =
    "worst"``), and with the old load the cars were paused most of the time (the demo as a 1 h
    scenario, three seeds: 68-72 % of the samples with a car plugged in had less than 6 A
    offered; with this one 32-35 %).
    """
    profile = PiecewiseLinear(
        [
            (0, Phases(3, 1.5, 2)),
            (90, Phases(6, 2, 3)),
            (180, Phases(4.5, 5.5, 2.5)),
            (300, Phases(7.5, 3, 6)),
            (420, Phases(3.5, 2.5, 2)),
            (600, Phases(3, 1.5, 2)),
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
