"""The edge end to end over loopback: virtual CEMM + virtual Bender chargers on their real wire
protocols, the real drivers, the control loop and the local API over HTTPS (real time, short
timeouts)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from fuseguard.config import FuseguardConfig
from fuseguard.edge import Edge
from fuseguard.model.clock import RealClock
from fuseguard.model.phases import Phases, Rotation
from fuseguard.model.status import PlugStatus
from fuseguard.sim.bender import BenderConnector, BenderController, BenderDeviceConfig
from fuseguard.sim.bender_serve import serve_bender
from fuseguard.sim.cemm_model import CemmModel
from fuseguard.sim.cemm_server import serve_cemm
from fuseguard.sim.site import BaseLoad, SiteModel
from fuseguard.sim.vehicle import SimVehicle

from .timing import shorten_raise_hold

PASSWORD = "e2e-secret-password"
UUIDS = [("25104c56d7f848af830af4300193efb3", "6bbf9fd56dc24f9697b078d5d8ccda84"),
         ("8e0c4f7a1b2d4c6e9f0a1b2c3d4e5f60", "c99838f9eb5b423d8e1f2a3b4c5d6e7f")]  # fmt: skip


@dataclass
class Rig:
    site: SiteModel
    cemm: CemmModel
    connectors: list[BenderConnector]
    edge: Edge
    config: FuseguardConfig
    session: aiohttp.ClientSession

    @property
    def local_url(self) -> str:
        return self.edge.urls["local_api"]

    async def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.session.request(
            method,
            self.local_url + path,
            json=body,
            headers={"Authorization": aiohttp.encode_basic_auth("ems", PASSWORD)},
            ssl=False,
        ) as resp:
            text = await resp.text()
            return resp.status, (json.loads(text) if text else None)

    def hems(self) -> list[float | None]:
        return [c.hems_limit_a for c in self.connectors]

    def plug(self, pid: str) -> Any:
        assert self.edge.controller is not None
        return next(p for p in self.edge.controller.status().plugs if p.id == pid)


async def eventually(check: Callable[[], bool], timeout_s: float = 8.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while not check():
        if loop.time() > end:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)


async def keep_alive_until(rig: Rig, check: Callable[[], bool], timeout_s: float = 15.0) -> None:
    """Wait for ``check`` (looked at every 0.1 s) like an EMS that calls keep-alive every 1 s
    meanwhile."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    next_keep_alive = loop.time()
    while not check():
        if loop.time() > end:
            raise AssertionError("condition not reached in time")
        if loop.time() >= next_keep_alive:
            status, _ = await rig.api("POST", "/v1/keep-alive")
            assert status == 200
            next_keep_alive = loop.time() + 1.0
        await asyncio.sleep(0.1)


def make_config(data_dir: Path, meter_port: int, ports: list[tuple[int, int]]) -> FuseguardConfig:
    return FuseguardConfig.model_validate(
        {
            "data_dir": str(data_dir),
            "site": {"edge_id": "e2e", "main_fuse_a": 32},
            "meter": {"driver": "cemm", "port": meter_port, "stale_after_s": 3,
                      "phase_assumption": "balanced"},
            "chargers": [
                {
                    "id": f"cp{i + 1}",
                    "evse_uuid": evse,
                    "rest_port": rest,
                    "modbus_port": mb,
                    "rotation": ["L1L2L3", "L2L3L1"][i],
                    "max_current_a": 16,
                    "safe_current_a": 6,
                    "safe_timeout_s": 30,
                    "plugs": [{"uuid": plug, "label": "Plug 1"}],
                }
                for i, ((evse, plug), (rest, mb)) in enumerate(zip(UUIDS, ports, strict=True))
            ],
            "control": {"charger_timeout_s": 3, "min_run_s": 10, "min_pause_s": 1},
            "api": {
                "local": {"host": "127.0.0.1", "port": 0, "user": "ems", "password": PASSWORD,
                          "keepalive_timeout_s": 4},
                "modbus": {"host": "127.0.0.1", "port": 0},
                "evse": {"host": "127.0.0.1", "port": 0},
            },
        }
    )  # fmt: skip


@pytest.fixture
async def rig_factory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[[], Awaitable[Rig]]]:
    shorten_raise_hold(monkeypatch)
    stack = contextlib.AsyncExitStack()
    clock = RealClock()
    site = SiteModel(clock, period_s=0.5)
    site.add(BaseLoad(lambda _t: Phases(6, 6, 6)))
    cemm = CemmModel.for_site(site)
    site_task = asyncio.create_task(site.run())
    meter = await serve_cemm(cemm, "127.0.0.1", 0, discovery_port=None)
    stack.push_async_callback(meter.close)
    connectors: list[BenderConnector] = []
    ports: list[tuple[int, int]] = []
    for rot in (Rotation.L1L2L3, Rotation.L2L3L1):
        ctrl = BenderController(
            clock=clock,
            config=BenderDeviceConfig(max_current_a=16, free_charging=True),
            rotations=(rot,),
        )
        site.add(ctrl.connector(1))
        handle = await serve_bender(ctrl, "127.0.0.1", rest_port=0, modbus_port=0)
        stack.push_async_callback(handle.close)
        connectors.append(ctrl.connector(1))
        ports.append((handle.rest_port, handle.modbus_port))
        ctrl.connector(1).plug_in(SimVehicle(phases=3, max_current_a=16, response_delay_s=0.2))
    session = aiohttp.ClientSession()
    stack.push_async_callback(session.close)
    edge_tasks: list[asyncio.Task[None]] = []

    async def make() -> Rig:
        config = make_config(tmp_path / "data", meter.port, ports)
        edge = Edge(config, clock)
        task = asyncio.create_task(edge.run())
        edge_tasks.append(task)
        waiter = asyncio.create_task(edge.ready.wait())
        await asyncio.wait({task, waiter}, timeout=15, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
        assert edge.ready.is_set()
        return Rig(site, cemm, connectors, edge, config, session)

    make.stop_edges = stop_edges = edge_tasks  # type: ignore[attr-defined]
    del stop_edges
    yield make
    for t in edge_tasks:
        t.cancel()
    await asyncio.gather(*edge_tasks, return_exceptions=True)
    site_task.cancel()
    await asyncio.gather(site_task, return_exceptions=True)
    await stack.aclose()


async def test_limit_change_keepalive_expiry_and_restart(rig_factory, tmp_path: Path) -> None:
    rig = await rig_factory()
    # 32 A fuse, 6 A non-EV on each phase: two 3-phase cars get 13 A each
    await eventually(lambda: rig.hems() == [13, 13], timeout_s=15)
    status, body = await rig.api("GET", "/v1/live/data")
    assert status == 200
    assert set(body) >= {"ActualActivePower", "ActualCurrentL1", "ActualCurrentSum", "Status"}
    assert (
        body["Status"] == PlugStatus.CHARGING.value or body["Status"] == "recently_started_charging"
    )
    # the EMS lowers the limit: 20 A - 6 A -> 7 A each, within a meter period or two
    status, _ = await rig.api(
        "POST",
        "/v1/flex_management/setting",
        {"ActivePowerActivation": True, "CurrentLimit": 20, "FallbackCurrentLimit": 12},
    )
    assert status == 200
    await eventually(lambda: rig.hems() == [7, 7], timeout_s=3)
    # the EMS goes silent: after 4 s the fallback (12 A - 6 A -> one car at 6 A) applies
    await eventually(lambda: sorted(rig.hems()) == [0, 6], timeout_s=12)
    status, body = await rig.api("GET", "/v1/flex_management/setting")
    assert body["CurrentLimit"] == 12
    assert rig.edge.controller is not None
    assert rig.edge.controller.status().flex_fallback
    # bad input: a clear 422 naming the field, nothing changed
    status, body = await rig.api("POST", "/v1/flex_management/setting", {"CurrentLimit": "lots"})
    assert status == 422
    assert "CurrentLimit" in json.dumps(body)
    status, _ = await rig.api("POST", "/v1/flex_management/setting", {"CurrentLimit": 26})
    assert status == 200
    # back to normal operation: 26 A in force again; the car paused by the fallback returns
    # after its minimum pause and the two share 20 A
    await keep_alive_until(rig, lambda: rig.hems() == [10, 10], timeout_s=20)
    assert rig.edge.controller is not None
    assert rig.edge.controller.status().main_limit_a == Phases.uniform(26)
    assert rig.site.current_a().all_le(Phases.uniform(26), tolerance=0.5)
    # restart: the settings survive
    for t in rig_factory.stop_edges:  # type: ignore[attr-defined]
        t.cancel()
    await asyncio.gather(*rig_factory.stop_edges, return_exceptions=True)  # type: ignore[attr-defined]
    rig2 = await rig_factory()
    status, body = await rig2.api("GET", "/v1/flex_management/setting")
    assert body["ActivePowerActivation"] is True
    assert body["CurrentLimit"] == 26
    assert body["FallbackCurrentLimit"] == 12
    await keep_alive_until(rig2, lambda: rig2.hems() == [10, 10])


async def test_meter_loss_charger_loss_and_stuck_contactor(rig_factory) -> None:
    rig = await rig_factory()
    await eventually(lambda: rig.hems() == [13, 13], timeout_s=15)
    status, _ = await rig.api("POST", "/v1/flex_management/setting", {"FallbackCurrentLimit": 6})
    assert status == 200
    # meter offline: after 3 s the EVs together are held at the 6 A fallback
    rig.cemm.set_fault("offline")
    await eventually(lambda: sorted(rig.hems()) == [0, 6], timeout_s=8)
    assert rig.edge.controller is not None
    assert rig.edge.controller.status().meter_fallback
    rig.cemm.clear_fault()
    await eventually(lambda: rig.hems() == [13, 13], timeout_s=15)
    # charger cp2 goes silent: it is reported offline and its last setpoint is reserved
    rig.connectors[1].set_fault("offline")
    await eventually(lambda: rig.plug("cp2").status is PlugStatus.OFFLINE, timeout_s=10)
    assert "offline" in rig.plug("cp2").reason
    # cp2's last setpoint is reserved on top of all the meter sees (cp2's real draw
    # included): cp1 is reduced, and the site stays under its fuse
    assert (rig.connectors[0].hems_limit_a or 0) <= 13
    assert rig.site.current_a().all_le(Phases.uniform(32), tolerance=0.5)
    rig.connectors[1].clear_fault()
    await eventually(lambda: rig.plug("cp2").online, timeout_s=10)
    # stuck contactor on cp2, paused by a target: its real draw counts, cp1 is reduced
    assert rig.edge.targets is not None
    rig.connectors[1].set_fault("stuck_contactor")
    await rig.edge.targets.set(UUIDS[1][0], 0, 600)
    await eventually(lambda: rig.plug("cp2").stuck, timeout_s=15)
    assert "stuck" in rig.plug("cp2").reason
    # within a few meter periods cp1 is reduced so that the real draw fits under the fuse
    await eventually(
        lambda: rig.site.current_a().all_le(Phases.uniform(32), tolerance=0.5), timeout_s=5
    )
