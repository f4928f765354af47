"""Real backends behind real servers, in this process, on an event loop of their own.

Schemathesis calls an app synchronously; its ASGI transport starts a fresh event loop per call,
which the real backends (async SQLAlchemy engines, the controller task, timers, the MQTT link)
cannot live with. So each app under test runs with uvicorn on a loopback port (port 0) on one
background loop that owns every backend, and the cases travel over loopback HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import uvicorn
from fastapi import FastAPI

from fuseguard.config import FuseguardConfig

T = TypeVar("T")

EDGE_ID = "faults-edge"
PASSWORD = "faults-Secret-password-1"
USER = "ems"
EVSES = [("6a0c4f7a1b2d4c6e9f0a1b2c3d4e5f61", "7b0c4f7a1b2d4c6e9f0a1b2c3d4e5f62"),
         ("8c0c4f7a1b2d4c6e9f0a1b2c3d4e5f63", "9d0c4f7a1b2d4c6e9f0a1b2c3d4e5f64")]  # fmt: skip


class LoopThread:
    """An asyncio loop in a daemon thread; ``run(coro)`` waits for a result from this thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._cleanups: list[Callable[[], Awaitable[object]]] = []

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def on_close(self, cleanup: Callable[[], Awaitable[object]]) -> None:
        self._cleanups.append(cleanup)

    def close(self) -> None:
        async def _cleanup() -> None:
            for fn in reversed(self._cleanups):
                with contextlib.suppress(Exception):
                    await fn()

        self.run(_cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


async def serve(app: FastAPI, loop_thread: LoopThread) -> str:
    """Serve ``app`` with uvicorn on 127.0.0.1:<free port>; returns the base URL."""
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=0, lifespan="off", log_level="warning", access_log=False
        )
    )
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]

    async def stop() -> None:
        server.should_exit = True
        await task

    loop_thread.on_close(stop)
    return f"http://127.0.0.1:{port}"


def edge_config(data_dir: Path, **control: object) -> FuseguardConfig:
    """A two-charger edge config (devices are injected, so no device ports are used)."""
    return FuseguardConfig.model_validate(
        {
            "data_dir": str(data_dir),
            "site": {"edge_id": EDGE_ID, "main_fuse_a": 32},
            "meter": {"driver": "cemm", "port": 1, "stale_after_s": 3},
            "chargers": [
                {
                    "id": f"cp{i + 1}",
                    "evse_uuid": evse,
                    "rest_port": 1,
                    "modbus_port": 1,
                    "max_current_a": 16,
                    "plugs": [{"uuid": plug, "label": "Plug 1"}],
                }
                for i, (evse, plug) in enumerate(EVSES)
            ],
            "control": dict(control),
            "api": {"local": {"user": USER, "password": PASSWORD}},
        }
    )


class EdgeApps:
    """The edge's local API and EVSE API apps on the edge's real backends.

    Assembled like :mod:`fuseguard.edge` does: ``FlexManagement`` on the JSON file store, the
    SQLite target store and token repository, the controller (running, on in-memory devices)
    as the live-data and status source.
    """

    def __init__(self, local_app: FastAPI, evse_app: FastAPI, tokens: dict[str, str]) -> None:
        self.local_app = local_app
        self.evse_app = evse_app
        self.tokens = tokens


async def build_edge_apps(cfg: FuseguardConfig, loop_thread: LoopThread) -> EdgeApps:
    """Build (on ``loop_thread``'s loop) the real backends and both edge apps."""
    from fuseguard.api.edge_evse import EdgeEvseBackend, evse_infos_from_config
    from fuseguard.api.evse import create_evse_app
    from fuseguard.api.live import ControllerLiveData, status_records
    from fuseguard.api.local import create_local_app
    from fuseguard.config.controller import controller_config_of
    from fuseguard.control.controller import Controller
    from fuseguard.control.flex import FlexManagement, JsonFileFlexStore
    from fuseguard.control.targets import EvseTargets
    from fuseguard.model.clock import RealClock
    from fuseguard.model.phases import Phases
    from fuseguard.store.db import create_engine, init_schema
    from fuseguard.store.targets import SqlTargetStore
    from fuseguard.store.tokens import TokenRepository
    from tests.control.fakes import FakeCharger, FakeMeter

    clock = RealClock()
    data_dir = Path(cfg.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(cfg.storage_url)
    loop_thread.on_close(engine.dispose)
    await init_schema(engine)
    flex = FlexManagement(
        clock,
        fuse_a=cfg.site.main_fuse.min,
        timeout_s=cfg.api.local.keepalive_timeout_s,
        default_fallback_a=cfg.api.local.default_fallback_a,
        store=JsonFileFlexStore(data_dir / "flex_settings.json"),
    )
    loop_thread.on_close(_async(flex.close))
    targets = EvseTargets(clock, SqlTargetStore(engine, cfg.site.edge_id))
    await targets.load()
    chargers = {ch.id: FakeCharger(car_max_a=16.0) for ch in cfg.chargers}
    meter = FakeMeter(clock, list(chargers.values()), base_a=Phases(5.0, 3.0, 4.0))
    controller = Controller(
        clock=clock,
        config=controller_config_of(cfg),
        meter=meter,
        chargers=chargers,
        flex=flex,
        targets=targets,
    )
    task = asyncio.create_task(controller.run(), name="controller")

    async def stop_controller() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    loop_thread.on_close(stop_controller)
    live = ControllerLiveData(controller, cfg.site.voltage_v)
    local_app = create_local_app(
        flex, live, user=cfg.api.local.user, password=cfg.api.local.password.get_secret_value()
    )
    backend = EdgeEvseBackend(
        cfg.site.edge_id,
        evse_infos_from_config(cfg),
        targets,
        lambda uuid: status_records(controller.status(), uuid),
    )
    repo = TokenRepository(engine)
    evse_app = create_evse_app(backend, repo, max_duration_s=cfg.api.evse.max_duration_s)
    tokens = {
        ch.evse_uuid: await repo.create(cfg.site.edge_id, ch.evse_uuid) for ch in cfg.chargers
    }
    return EdgeApps(local_app, evse_app, tokens)


def _async(fn: Callable[[], object]) -> Callable[[], Awaitable[None]]:
    async def call() -> None:
        fn()

    return call


def schema_apps() -> EdgeApps:
    """Both edge apps on stand-in backends, for their OpenAPI only (no I/O, nothing runs)."""
    from fuseguard.api.edge_evse import EdgeEvseBackend, evse_infos_from_config
    from fuseguard.api.evse import create_evse_app
    from fuseguard.api.local import create_local_app
    from fuseguard.control.flex import FlexManagement, MemoryFlexStore
    from fuseguard.control.targets import EvseTargets
    from fuseguard.model.clock import VirtualClock

    cfg = edge_config(Path("/nonexistent"))
    clock = VirtualClock()
    flex = FlexManagement(clock, fuse_a=32.0, store=MemoryFlexStore())
    local_app = create_local_app(flex, None, user=USER, password=PASSWORD)  # type: ignore[arg-type]
    backend = EdgeEvseBackend(EDGE_ID, evse_infos_from_config(cfg), EvseTargets(clock), list)
    evse_app = create_evse_app(backend, None, max_duration_s=cfg.api.evse.max_duration_s)  # type: ignore[arg-type]
    return EdgeApps(local_app, evse_app, {})
