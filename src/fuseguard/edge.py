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
import gc
import os
import signal
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

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
from fuseguard.devices.http import device_session
from fuseguard.model.clock import Clock, RealClock
from fuseguard.runtime import (
    STOP_DEADLINE_S,
    BoundedExitStack,
    EdgeRuntime,
    EdgeService,
    stop_within,
    task_names,
)

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
    #: How long each part (controller, every service, every driver) may take to stop.
    stop_deadline_s: float = STOP_DEADLINE_S
    #: For a process that ends with the edge (``fuseguard run``): when the stop has not
    #: finished this long after it was requested, log what still runs and exit the process.
    hard_exit_s: float | None = None
    #: For a process that runs only this edge (``fuseguard run``): once started, move every
    #: object made so far (modules, drivers, the controller's state: ~160 000 at 100
    #: chargers) out of the garbage collector's reach (``gc.freeze``): its full collections
    #: (~0.2 s of CPU each there) and the one at interpreter exit then scan only what the
    #: running edge allocated (an exit under load spent seconds in that collection).
    freeze_gc: bool = False

    async def run(self) -> None:
        """Start everything, run until cancelled, then stop cleanly."""
        cfg = self.config
        if cfg.api.local.enabled:
            from fuseguard.api.local import check_password_strength

            # before any device is touched: a bad password never starts anything
            check_password_strength(cfg.api.local.password.get_secret_value())
        data_dir = Path(cfg.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, at start-up
        stack = BoundedExitStack(self.stop_deadline_s)
        with _sigterm_cancels() as sigterm:
            try:
                await self._run(stack)
            except asyncio.CancelledError:
                if not sigterm.is_set():
                    raise
                # SIGTERM is the ordinary way to stop a service: a clean return, not an error
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
            finally:
                log.info("edge_stopped", device=cfg.site.edge_id, reason="run ended")

    async def _run(self, stack: BoundedExitStack) -> None:
        cfg = self.config
        data_dir = Path(cfg.data_dir)
        async with device_session() as session, stack:
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
            await _start_drivers([meter, *extra, *chargers.values()], stack, self.stop_deadline_s)
            rt = await self._runtime(stack, data_dir, meter, chargers, circuit_meters, pv_meter)
            for start in SERVICES:
                await start(rt)
            self.urls = rt.urls
            if self.freeze_gc:
                gc.collect()  # once: what start-up left as garbage is not frozen with the rest
                gc.freeze()
            task = asyncio.create_task(rt.controller.run(), name="controller")
            self.ready.set()
            log.info("edge_started", device=cfg.site.edge_id, reason="run", **self.urls)
            try:
                # not ``await task``: a cancelled awaiter waits until the task has ended, so a
                # controller part that does not stop would hold the whole edge (and its stop)
                await asyncio.wait({task})
                task.result()  # the controller ends only by failing: re-raise it
            finally:
                log.info("edge_stopping", device=cfg.site.edge_id, reason="stop requested")
                if self.hard_exit_s is not None:
                    _arm_hard_exit(self.hard_exit_s)
                task.cancel()
                await stop_within("controller", _quietly(task), self.stop_deadline_s)

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


async def _start_drivers(
    drivers: Sequence[object], stack: contextlib.AsyncExitStack, deadline_s: float
) -> None:
    """Start every driver that needs it; on the way out close them all at once, each within
    ``deadline_s`` (a driver whose close hangs is cancelled and logged by name)."""
    started: list[SupportsLifecycle] = []

    async def close_all() -> None:
        parts = [stop_within(_driver_name(d), d.close(), deadline_s) for d in reversed(started)]
        await asyncio.gather(*parts)

    for drv in drivers:
        if isinstance(drv, SupportsLifecycle):
            await drv.start()
            started.append(drv)
    # each close is bounded above; the plain push keeps a second deadline off the whole
    contextlib.AsyncExitStack.push_async_callback(stack, close_all)


def _driver_name(driver: object) -> str:
    return str(getattr(driver, "device", None) or getattr(driver, "name", None) or driver)


#: Exit status of a process whose edge did not stop within ``hard_exit_s``.
EXIT_STOP_OVERRUN = 3


def _arm_hard_exit(deadline_s: float) -> None:
    """A daemon timer that ends the process ``deadline_s`` from now (the stop hangs: a thread,
    a task that ignores its cancellation), logging the tasks still running."""
    loop = asyncio.get_running_loop()

    def overrun() -> None:
        try:
            tasks = task_names({t for t in asyncio.all_tasks(loop) if not t.done()})
        except RuntimeError:  # the set changed under us: this is another thread
            tasks = ["?"]
        log.error(
            "edge_stop_overrun",
            device="edge",
            reason=f"not stopped within {deadline_s:g} s of the stop request: exiting",
            running=tasks[:20],
        )
        os._exit(EXIT_STOP_OVERRUN)

    timer = threading.Timer(deadline_s, overrun)
    timer.daemon = True
    timer.start()


async def _quietly(task: asyncio.Task[None]) -> None:
    """Wait for a cancelled ``task``; its cancellation is the expected end."""
    with contextlib.suppress(asyncio.CancelledError):
        await task


@contextlib.contextmanager
def _sigterm_cancels() -> Iterator[threading.Event]:
    """SIGTERM stops the edge like SIGINT (cancels the running task, hence a clean stop), when
    the edge runs in the main thread and nobody else handles SIGTERM; restored afterwards.
    Yields an event that is set once SIGTERM came."""
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    received = threading.Event()
    installed = False
    if (
        task is not None
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    ):

        def on_sigterm() -> None:
            log.info("edge_signal", device="edge", reason="SIGTERM: stopping")
            received.set()
            task.cancel()

        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
        installed = True
    try:
        yield received
    finally:
        if installed:
            loop.remove_signal_handler(signal.SIGTERM)


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


__all__ = ["EXIT_STOP_OVERRUN", "SERVICES", "Edge", "snapshot_dumper"]
