"""Composition root of an edge: drivers + control loop + northbound services, from one config.

``fuseguard run`` builds an :class:`Edge` from the site config and the real-time clock;
``fuseguard demo`` builds the same edge against virtual devices on loopback. Drivers come from
:mod:`fuseguard.devices.factory`, the controller's config from the one translation in
:mod:`fuseguard.config.controller`, and every northbound service is an
:data:`~fuseguard.runtime.EdgeService` in :data:`SERVICES`, started in order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import structlog

from fuseguard.api.metrics import start_metrics
from fuseguard.api.mqtt.service import start_mqtt
from fuseguard.api.services import start_evse_api, start_local_api, start_modbus_twin
from fuseguard.api.web import start_history, start_web
from fuseguard.cloud.edge_agent import start_cloud_agent
from fuseguard.config import FuseguardConfig
from fuseguard.config.controller import controller_config_of
from fuseguard.control.controller import Controller
from fuseguard.control.flex import FlexManagement, JsonFileFlexStore
from fuseguard.control.plug_settings import RUNTIME_KEY, PlugSettings
from fuseguard.control.ports import Charger, GridMeter, SupportsLifecycle
from fuseguard.control.targets import EvseTargets
from fuseguard.control.types import ControllerStatus
from fuseguard.devices.factory import (
    build_chargers,
    build_circuit_meters,
    build_meter,
    build_pv_meter,
)
from fuseguard.model.clock import Clock, RealClock
from fuseguard.runtime import EdgeRuntime, EdgeService

log = structlog.get_logger(__name__)

#: Northbound services, started in this order (the cloud agent uses the EVSE API's backend).
SERVICES: Sequence[EdgeService] = (
    start_local_api,
    start_modbus_twin,
    start_evse_api,
    start_cloud_agent,
    start_metrics,
    start_history,
    start_web,
    start_mqtt,
)


@dataclass
class Edge:
    """A running edge. ``meter``/``chargers``/``circuit_meters``/``pv_meter`` override the
    drivers built from the config."""

    config: FuseguardConfig
    clock: Clock = field(default_factory=RealClock)
    meter: GridMeter | None = None
    chargers: Mapping[str, Charger] | None = None
    circuit_meters: Mapping[str, GridMeter] | None = None
    pv_meter: GridMeter | None = None
    dump_snapshot: Path | None = None
    controller: Controller | None = None
    flex: FlexManagement | None = None
    targets: EvseTargets | None = None
    urls: dict[str, str] = field(default_factory=dict)
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        """Start everything, run until cancelled, then stop cleanly."""
        cfg = self.config
        if cfg.api.local.enabled:
            from fuseguard.api.local import check_password_strength

            # before any device is touched: a bad password never starts anything
            check_password_strength(cfg.api.local.password.get_secret_value())
        data_dir = Path(cfg.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, at start-up
        async with aiohttp.ClientSession() as session, contextlib.AsyncExitStack() as stack:
            meter = self.meter or build_meter(cfg, session)
            chargers = (
                dict(self.chargers)
                if self.chargers is not None
                else build_chargers(cfg, session, self.clock, ocpp_cert=_ocpp_cert(cfg, data_dir))
            )
            circuit_meters = (
                dict(self.circuit_meters)
                if self.circuit_meters is not None
                else build_circuit_meters(cfg, session, self.clock)
            )
            pv_meter = self.pv_meter or build_pv_meter(cfg, session, self.clock)
            extra = [*circuit_meters.values(), *([pv_meter] if pv_meter is not None else [])]
            await _start_drivers([meter, *extra, *chargers.values()], stack)
            rt = await self._runtime(stack, data_dir, meter, chargers, circuit_meters, pv_meter)
            for start in SERVICES:
                await start(rt)
            self.urls = rt.urls
            task = asyncio.create_task(rt.controller.run(), name="controller")
            self.ready.set()
            log.info("edge_started", device=cfg.site.edge_id, reason="run", **self.urls)
            try:
                await task
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _runtime(
        self,
        stack: contextlib.AsyncExitStack,
        data_dir: Path,
        meter: GridMeter,
        chargers: Mapping[str, Charger],
        circuit_meters: Mapping[str, GridMeter],
        pv_meter: GridMeter | None,
    ) -> EdgeRuntime:
        """Storage, flex management, targets and the controller."""
        cfg = self.config
        from fuseguard.store.db import create_engine, init_schema
        from fuseguard.store.targets import SqlTargetStore

        engine = create_engine(cfg.storage_url)
        stack.push_async_callback(engine.dispose)
        await init_schema(engine)
        self.flex = FlexManagement(
            self.clock,
            fuse_a=cfg.site.main_fuse.min,
            timeout_s=cfg.api.local.keepalive_timeout_s,
            default_fallback_a=cfg.api.local.default_fallback_a,
            store=JsonFileFlexStore(data_dir / "flex_settings.json"),
        )
        self.targets = EvseTargets(self.clock, SqlTargetStore(engine, cfg.site.edge_id))
        await self.targets.load()
        controller_cfg = controller_config_of(cfg)
        plug_settings = PlugSettings(controller_cfg.chargers, data_dir / "plug_settings.json")
        self.controller = Controller(
            clock=self.clock,
            config=controller_cfg,
            meter=meter,
            chargers=chargers,
            flex=self.flex,
            targets=self.targets,
            plug_settings=plug_settings,
            circuit_meters=circuit_meters,
            pv_meter=pv_meter,
        )
        if self.dump_snapshot is not None:
            self.controller.subscribe(snapshot_dumper(self.controller, self.dump_snapshot))
        return EdgeRuntime(
            config=cfg,
            clock=self.clock,
            controller=self.controller,
            flex=self.flex,
            targets=self.targets,
            engine=engine,
            data_dir=data_dir,
            stack=stack,
            urls=self.urls,
            shared={RUNTIME_KEY: plug_settings},
        )


def _ocpp_cert(cfg: FuseguardConfig, data_dir: Path) -> tuple[str, str] | None:
    """The OCPP central system's certificate for ``[api.ocpp] tls``: the configured pair or the
    edge's self-signed one, by the same SAN rule as the local API (its host, its ``tls_names``)."""
    oc = cfg.api.ocpp
    if not oc.tls or not any(ch.driver == "ocpp" for ch in cfg.chargers):
        return None
    from fuseguard.api.services import edge_cert

    return edge_cert(data_dir, oc.cert_file, oc.key_file, oc.host, cfg.api.local.tls_names)


async def _start_drivers(drivers: Sequence[object], stack: contextlib.AsyncExitStack) -> None:
    """Start every driver that needs it and close it on the way out."""
    for drv in drivers:
        if isinstance(drv, SupportsLifecycle):
            await drv.start()
            stack.push_async_callback(drv.close)


def snapshot_dumper(controller: Controller, path: Path) -> Callable[[ControllerStatus], None]:
    """A cycle listener that writes the allocator's input of the last cycle to ``path``."""
    from fuseguard.allocation.snapshot import snapshot_to_json

    def dump(_: ControllerStatus) -> None:
        snapshot = controller.last_snapshot
        if snapshot is not None:
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_text(snapshot_to_json(snapshot) + "\n")
            tmp.replace(path)

    return dump


__all__ = ["SERVICES", "Edge", "snapshot_dumper"]
