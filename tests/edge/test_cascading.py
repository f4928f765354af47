"""Cascading: a parent edge drives a child edge (another fuseguard) through its local API."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiohttp
import pytest

from fuseguard.config import FuseguardConfig
from fuseguard.edge import Edge
from fuseguard.model.clock import RealClock
from fuseguard.model.phases import Phases
from fuseguard.sim.bender import BenderController, BenderDeviceConfig
from fuseguard.sim.bender_serve import serve_bender
from fuseguard.sim.cemm_model import AliasConfig, CemmModel
from fuseguard.sim.cemm_server import serve_cemm
from fuseguard.sim.site import BaseLoad, SiteModel
from fuseguard.sim.vehicle import SimVehicle

from .test_edge_e2e import eventually
from .timing import shorten_raise_hold

PASSWORD = "child-secret-password"
#: The child's keep-alive timeout; the parent keeps it alive every quarter of it (its clemap
#: driver's ``safe_timeout_s``, the same value) and the test watches the child for longer.
KEEPALIVE_TIMEOUT_S = 5


def edge_config(
    data_dir: Path, meter_port: int, chargers: list[dict[str, object]]
) -> FuseguardConfig:
    return FuseguardConfig.model_validate(
        {
            "data_dir": str(data_dir),
            "site": {"edge_id": data_dir.name, "main_fuse_a": 32},
            "meter": {"port": meter_port, "phase_assumption": "balanced", "phase_lock": True},
            "chargers": chargers,
            "control": {"min_run_s": 0, "min_pause_s": 0},
            "api": {
                "local": {"host": "127.0.0.1", "port": 0, "user": "ems", "password": PASSWORD,
                          "keepalive_timeout_s": KEEPALIVE_TIMEOUT_S},
                "modbus": {"enabled": False},
                "evse": {"enabled": False},
            },
        }
    )  # fmt: skip


async def test_parent_edge_sets_and_keeps_the_child_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shorten_raise_hold(monkeypatch)
    clock = RealClock()
    site = SiteModel(clock, period_s=0.5)
    site.add_circuit("child")
    site.add(BaseLoad(lambda _t: Phases(4, 4, 4)))
    main_meter = CemmModel.for_site(site)
    child_meter = CemmModel(
        clock, [AliasConfig("p1", io_id=1, port=3, source=lambda: site.power_w("child"))]
    )
    site.on_tick(child_meter.on_site_tick)
    async with contextlib.AsyncExitStack() as stack:
        tasks = [asyncio.create_task(site.run())]
        ports = []
        for circuit in ("main", "child"):
            ctrl = BenderController(
                clock=clock, config=BenderDeviceConfig(max_current_a=32, free_charging=True),
                circuit=circuit,
            )  # fmt: skip
            site.add(ctrl.connector(1))
            ctrl.connector(1).plug_in(SimVehicle(phases=3, max_current_a=32, response_delay_s=0.2))
            handle = await serve_bender(ctrl, "127.0.0.1", rest_port=0, modbus_port=0)
            stack.push_async_callback(handle.close)
            ports.append((handle.rest_port, handle.modbus_port))
        meters = []
        for model in (main_meter, child_meter):
            h = await serve_cemm(model, "127.0.0.1", 0, discovery_port=None)
            stack.push_async_callback(h.close)
            meters.append(h.port)
        child = Edge(
            edge_config(
                tmp_path / "child",
                meters[1],
                [{"id": "c1", "evse_uuid": "1" * 32, "rest_port": ports[1][0],
                  "modbus_port": ports[1][1], "plugs": [{"uuid": "2" * 32, "label": "P"}]}],
            ),
            clock,
        )  # fmt: skip
        tasks.append(asyncio.create_task(child.run()))
        await asyncio.wait_for(child.ready.wait(), 15)
        child_port = int(child.urls["local_api"].rsplit(":", 1)[1])
        parent = Edge(
            edge_config(
                tmp_path / "parent",
                meters[0],
                [
                    {"id": "p1", "evse_uuid": "3" * 32, "rest_port": ports[0][0],
                     "modbus_port": ports[0][1], "plugs": [{"uuid": "4" * 32, "label": "P"}]},
                    {"id": "child", "evse_uuid": "5" * 32, "driver": "clemap",
                     "host": "127.0.0.1", "rest_port": child_port, "user": "ems",
                     "password": PASSWORD, "safe_current_a": 6,
                     "safe_timeout_s": KEEPALIVE_TIMEOUT_S,
                     "plugs": [{"uuid": "6" * 32, "label": "child edge"}]},
                ],
            ),
            clock,
        )  # fmt: skip
        tasks.append(asyncio.create_task(parent.run()))
        await asyncio.wait_for(parent.ready.wait(), 15)
        try:
            assert child.flex is not None
            assert parent.controller is not None
            # 32 A fuse, 4 A building load: the parent's own car and the child edge share 28 A
            await eventually(
                lambda: child.flex is not None and child.flex.settings().activation, timeout_s=10
            )
            controller = parent.controller

            def child_has_its_share() -> bool:
                # max-min: 14 A each; the child's draw is read through its own meter, one
                # meter period behind the parent's, so the parent may briefly count the child's
                # ramp as building load and hand it 1-4 A less; its share is reached within
                # the 1 A of that fair split and it is what the parent wrote
                assert child.flex is not None
                view = {p.id: p for p in controller.status().plugs}
                limit = child.flex.limit_a()
                return limit is not None and limit >= 13 and limit == view["child"].written_a

            await eventually(child_has_its_share, 30)
            assert child.flex.settings().fallback_current_limit_a == 6

            def child_within_its_limit() -> bool:
                assert child.flex is not None
                limit_a = child.flex.limit_a()
                return limit_a is not None and site.current_a("child").all_le(
                    Phases.uniform(limit_a), 0.5
                )

            # the child keeps its own car under the limit it was given
            await eventually(child_within_its_limit, timeout_s=10)
            assert site.current_a().all_le(Phases.uniform(32), 0.5)
            # the parent keeps the child alive: no fallback on the child while the parent runs
            await asyncio.sleep(KEEPALIVE_TIMEOUT_S + 1)
            assert not child.flex.in_fallback
            async with aiohttp.ClientSession() as session:
                headers = {"Authorization": aiohttp.encode_basic_auth("ems", PASSWORD)}
                async with session.get(
                    child.urls["local_api"] + "/v1/flex_management/setting",
                    headers=headers,
                    ssl=False,
                ) as resp:
                    body = await resp.json()
            assert body["ActivePowerActivation"] is True
            # the child's limit is what the parent allocates to it (the parent may since have
            # moved room to its own car if the child drew less than offered)
            view = {p.id: p for p in parent.controller.status().plugs}
            assert body["CurrentLimit"] == view["child"].written_a
            assert body["CurrentLimit"] >= 6
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
