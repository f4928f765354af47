"""Composition root of an edge: drivers + control loop + northbound APIs, from one config.

``fuseguard run`` builds an :class:`Edge` from the site config and real-time clock; ``fuseguard
demo`` builds the same edge against virtual devices on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from fuseguard.config import ChargerConfig, FuseguardConfig, per_phase
from fuseguard.control.controller import (
    ChargerSpec,
    CircuitSpec,
    Controller,
    ControllerConfig,
    ControllerStatus,
)
from fuseguard.control.flex import FlexManagement, JsonFileFlexStore
from fuseguard.control.ports import Charger, GridMeter
from fuseguard.control.targets import EvseTargets
from fuseguard.model.clock import Clock, RealClock
from fuseguard.model.phases import ZERO, Phases

log = structlog.get_logger(__name__)


def plug_ids(charger: ChargerConfig) -> list[str]:
    """Controller plug ids of a charger: its id, or ``id/2`` ... for further connectors."""
    return [charger.id if i == 0 else f"{charger.id}/{i + 1}" for i in range(len(charger.plugs))]


def controller_config(cfg: FuseguardConfig) -> ControllerConfig:
    """The control loop's view of a site config."""
    circuits = [
        CircuitSpec(
            id="main", parent=None, fuse_a=cfg.site.main_fuse, power_limit_w=cfg.site.power_limit_w
        )
    ]
    circuits += [
        CircuitSpec(
            id=c.id, parent=c.parent, fuse_a=per_phase(c.fuse_a), power_limit_w=c.power_limit_w
        )
        for c in cfg.site.circuits
    ]
    chargers = []
    for ch in cfg.chargers:
        for pid, plug in zip(plug_ids(ch), ch.plugs, strict=True):
            chargers.append(
                ChargerSpec(
                    id=pid,
                    circuit=ch.circuit,
                    rotation=ch.rotation,
                    min_a=ch.min_current_a,
                    max_a=ch.max_current_a,
                    mode=ch.mode,
                    priority=ch.priority,
                    evse_uuid=ch.evse_uuid,
                    wired_phases=ch.phases,
                    plug_uuid=plug.uuid,
                    plug_label=plug.label,
                    child_edge=ch.driver == "clemap",
                )
            )
    c = cfg.control
    return ControllerConfig(
        circuits=circuits,
        chargers=chargers,
        voltage_v=cfg.site.voltage_v,
        meter_period_s=cfg.meter.period_s,
        meter_phase_assumption=cfg.meter.phase_assumption,
        meter_stale_after_s=cfg.meter.stale_after_s,
        charger_timeout_s=c.charger_timeout_s,
        min_run_s=c.min_run_s,
        min_pause_s=c.min_pause_s,
        ramp_up_a_per_s=c.ramp_up_a_per_s,
        pv_enable_delay_s=c.pv_enable_delay_s,
        pv_disable_delay_s=c.pv_disable_delay_s,
        recently_started_window_s=c.recently_started_window_s,
    )


def build_meter(cfg: FuseguardConfig, session: aiohttp.ClientSession) -> GridMeter:
    """The grid-meter driver named by ``[meter] driver``."""
    m = cfg.meter
    if m.driver == "cemm":
        from fuseguard.devices.cemm import CemmClient, CemmGridMeter

        client = CemmClient(host=m.host, port=m.port, session=session)
        return CemmGridMeter(client, alias=m.alias)
    if m.driver == "clemap":
        from fuseguard.devices.clemap import ClemapEdgeClient, ClemapGridMeter

        clemap = ClemapEdgeClient(
            host=m.host,
            port=m.port,
            user=m.user,
            password=m.password.get_secret_value(),
            session=session,
        )
        return ClemapGridMeter(clemap)
    msg = f"meter driver {m.driver!r} is only available inside the simulator"
    raise ValueError(msg)


def build_chargers(
    cfg: FuseguardConfig, session: aiohttp.ClientSession, clock: Clock
) -> dict[str, Charger]:
    """One driver per plug (a second connector is on Modbus port + 1)."""
    from fuseguard.devices.bender import BenderCharger
    from fuseguard.devices.clemap import ClemapChildCharger, ClemapEdgeClient

    drivers: dict[str, Charger] = {}
    for ch in cfg.chargers:
        if ch.driver == "clemap":
            client = ClemapEdgeClient(
                ch.host,
                user=ch.user,
                password=ch.password.get_secret_value(),
                session=session,
                clock=clock,
                port=ch.rest_port,
            )
            drivers[ch.id] = ClemapChildCharger(
                client,
                clock,
                timeout_s=float(ch.safe_timeout_s or 120),  # the child's keep-alive timeout
                fallback_current_limit_a=float(ch.safe_current_a) if ch.safe_current_a else None,
            )
            continue
        for i, pid in enumerate(plug_ids(ch)):
            drivers[pid] = BenderCharger(
                host=ch.host,
                rest_port=ch.rest_port,
                modbus_port=ch.modbus_port + i,
                unit_id=ch.unit_id,
                session=session,
                use_rest=i == 0,
                safe_current_a=ch.safe_current_a,
                safe_timeout_s=ch.safe_timeout_s,
            )
    return drivers


@dataclass
class ControllerLiveData:
    """:class:`fuseguard.api.local.LiveDataSource` over the controller's last cycle."""

    controller: Controller
    voltage_v: float

    def live_data(self) -> Any:
        """``/v1/live/data`` and Modbus 19000-19042."""
        from fuseguard.api.local import LiveData, aggregate_status

        st = self.controller.status()
        sample = st.meter_sample
        voltage = (
            sample.voltage_v
            if sample is not None and sample.voltage_v is not None
            else Phases.uniform(self.voltage_v)
        )
        return LiveData(
            active_power_w=st.grid_power_w,
            reactive_power_var=(
                sample.reactive_power_var
                if sample is not None and sample.reactive_power_var is not None
                else 0.0
            ),
            current_a=st.grid_current_a,
            voltage_v=voltage,
            status=aggregate_status(p.status for p in st.plugs),
            active_power_per_phase_w=sample.power_per_phase_w if sample is not None else None,
        )


def status_records(status: ControllerStatus, evse_uuid: str) -> list[Any]:
    """Seed-002 status records of one EVSE's plugs from the controller's last cycle."""
    from fuseguard.api.evse_models import PlugStatusRecord

    return [
        PlugStatusRecord(
            time=status.time,
            plug_uuid=p.plug_uuid or "",
            plug_label=p.plug_label,
            evse_uuid=evse_uuid,
            status=p.status,
            current_a=p.current_a if p.online else ZERO,
            power_w=p.power_w if p.online else 0.0,
            dyn_current_limit_a=float(p.setpoint_a),
        )
        for p in status.plugs
        if p.evse_uuid == evse_uuid
    ]


@dataclass
class Edge:
    """A running edge. ``meter``/``chargers`` override the drivers built from the config."""

    config: FuseguardConfig
    clock: Clock = field(default_factory=RealClock)
    meter: GridMeter | None = None
    chargers: Mapping[str, Charger] | None = None
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
                else build_chargers(cfg, session, self.clock)
            )
            for drv in chargers.values():
                start = getattr(drv, "start", None)
                if start is not None:
                    await start()
                close = getattr(drv, "close", None)
                if close is not None:
                    stack.push_async_callback(close)
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
            controller = Controller(
                clock=self.clock,
                config=controller_config(cfg),
                meter=meter,
                chargers=chargers,
                flex=self.flex,
                targets=self.targets,
            )
            self.controller = controller
            if self.dump_snapshot is not None:
                controller.subscribe(snapshot_dumper(controller, self.dump_snapshot))
            await self._start_apis(stack, engine, controller, data_dir)
            task = asyncio.create_task(controller.run(), name="controller")
            self.ready.set()
            log.info("edge_started", device=cfg.site.edge_id, reason="run", **self.urls)
            try:
                await task
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _start_apis(
        self,
        stack: contextlib.AsyncExitStack,
        engine: Any,
        controller: Controller,
        data_dir: Path,
    ) -> None:
        cfg = self.config
        assert self.flex is not None
        assert self.targets is not None
        from fuseguard.serving import serve_app

        live = ControllerLiveData(controller, cfg.site.voltage_v)
        lc = cfg.api.local
        if lc.enabled:
            from fuseguard.api.local import create_local_app

            password = lc.password.get_secret_value()
            certfile = keyfile = None
            if lc.tls:
                if lc.cert_file and lc.key_file:
                    certfile, keyfile = str(lc.cert_file), str(lc.key_file)
                else:
                    from fuseguard.api.tls import ensure_self_signed_cert

                    cert, key = ensure_self_signed_cert(data_dir, ["localhost", "127.0.0.1"])
                    certfile, keyfile = str(cert), str(key)
            app = create_local_app(self.flex, live, user=lc.user, password=password)
            handle = await serve_app(app, lc.host, lc.port, certfile, keyfile)
            stack.push_async_callback(handle.close)
            self.urls["local_api"] = _display_url(handle.url, lc.host)
        mc = cfg.api.modbus
        if mc.enabled:
            from fuseguard.api.modbus import serve_modbus_twin

            twin = await serve_modbus_twin(self.flex, live, mc.host, mc.port)
            stack.push_async_callback(twin.close)
            self.urls["modbus"] = f"{_display_host(mc.host)}:{twin.port}"
        ec = cfg.api.evse
        if ec.enabled:
            from fuseguard.api.edge_evse import EdgeEvseBackend, evse_infos_from_config
            from fuseguard.api.evse import create_evse_app
            from fuseguard.store.tokens import TokenRepository

            evses = evse_infos_from_config(cfg)
            backend = EdgeEvseBackend(
                cfg.site.edge_id,
                evses,
                self.targets,
                lambda uuid: status_records(controller.status(), uuid),
            )
            evse_app = create_evse_app(
                backend, TokenRepository(engine), max_duration_s=ec.max_duration_s
            )
            handle = await serve_app(evse_app, ec.host, ec.port)
            stack.push_async_callback(handle.close)
            self.urls["evse_api"] = _display_url(handle.url, ec.host)
            if cfg.cloud.broker:
                await self._start_cloud_agent(stack, backend, evses)

    async def _start_cloud_agent(
        self, stack: contextlib.AsyncExitStack, backend: Any, evses: Mapping[str, Any]
    ) -> None:
        from fuseguard.cloud.edge_agent import EdgeCloudAgent

        cc = self.config.cloud
        assert cc.broker is not None
        agent = EdgeCloudAgent(
            cc.broker,
            self.config.site.edge_id,
            cc.username,
            cc.password.get_secret_value(),
            backend,
            list(evses.values()),
            self.clock,
            status_interval_s=cc.status_interval_s,
        )
        task = asyncio.create_task(agent.run(), name="cloud-agent")

        async def stop() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        stack.push_async_callback(stop)


def snapshot_dumper(controller: Controller, path: Path) -> Any:
    """A cycle listener that writes the allocator's input of the last cycle to ``path``."""
    from fuseguard.allocation.snapshot import snapshot_to_json

    def dump(_: ControllerStatus) -> None:
        snapshot = controller.last_snapshot
        if snapshot is not None:
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_text(snapshot_to_json(snapshot) + "\n")
            tmp.replace(path)

    return dump


def _display_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def _display_url(url: str, host: str) -> str:
    return url.replace(f"//{host}:", f"//{_display_host(host)}:") if host else url


__all__ = ["Edge", "controller_config", "plug_ids", "status_records"]
