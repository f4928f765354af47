"""A cloud replica and one edge agent on the machine's Mosquitto, served over HTTP on loopback.

Runs in a thread with its own event loop, so that both asyncio tests and Playwright's sync API
(which blocks the test thread's loop) can use it. The edge's live page data comes from
:attr:`CloudRig.setpoint_a` (change it and the relayed page follows).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fuseguard.api.edge_evse import EdgeEvseBackend
from fuseguard.api.site_state import LimitSource
from fuseguard.api.web.view import ViewContext, site_view
from fuseguard.cloud.app import CloudService
from fuseguard.cloud.config import BrokerSection, CloudSettings, DatabaseSection, WebSection
from fuseguard.cloud.edge_agent import EdgeCloudAgent
from fuseguard.control.targets import EvseTargets
from fuseguard.model.clock import RealClock
from fuseguard.serving import serve_app

from .webkit import TREE, plug_view, status

ADMIN = ("admin", "fleet-password-1")


@dataclass
class CloudRig:
    """The running cloud (``url``) and the edge it knows (``edge_id``)."""

    mqtt_url: str
    db_path: Path
    prefix: str = field(default_factory=lambda: f"fglive-{uuid.uuid4().hex[:10]}")
    edge_id: str = field(default_factory=lambda: f"edge-{uuid.uuid4().hex[:8]}")
    setpoint_a: int = 16
    #: The edge's control loop stopped this many seconds ago (0: it runs).
    stopped_s: float = 0.0
    url: str = ""
    error: BaseException | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = None
    _ready: threading.Event = field(default_factory=threading.Event)

    def view(self) -> dict[str, Any]:
        """The edge's live page data now (fresh, so not stale)."""
        now = datetime.now(UTC)
        ctx = ViewContext(TREE, LimitSource.FUSE, {}, {}, now)
        cycle = now - timedelta(seconds=self.stopped_s)
        return site_view(status(cycle, plugs=(plug_view(setpoint_a=self.setpoint_a),)), ctx)

    async def _main(self) -> None:
        settings = CloudSettings(
            database=DatabaseSection(url=f"sqlite+aiosqlite:///{self.db_path}"),
            broker=BrokerSection(url=self.mqtt_url, topic_prefix=self.prefix),
            web=WebSection(admin_user=ADMIN[0], admin_password=ADMIN[1]),  # type: ignore[arg-type]
            replica_id=uuid.uuid4().hex[:8],
        )
        clock = RealClock()
        backend = EdgeEvseBackend(self.edge_id, {}, EvseTargets(clock), lambda _u: [])
        agent = EdgeCloudAgent(
            self.mqtt_url, self.edge_id, None, None, backend, [], clock,
            status_interval_s=3600.0, topic_prefix=self.prefix,
            live_view=self.view, site_name="Garage test site",
        )  # fmt: skip
        self._stop = asyncio.Event()
        async with CloudService(settings) as service:
            handle = await serve_app(service.app, "127.0.0.1", 0)
            task = asyncio.create_task(agent.run())
            try:
                await agent.wait_connected(10)
                async with asyncio.timeout(10):
                    while self.edge_id not in await service.store.edges():
                        await asyncio.sleep(0.05)
                self.url = handle.url.rstrip("/")
                self._ready.set()
                await self._stop.wait()
            finally:
                service.live.close()
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await handle.close()

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as err:  # reported by start()
            self.error = err
            self._ready.set()
        finally:
            self._loop.close()

    def stop(self) -> None:
        """Stop the cloud and the edge (from the test thread)."""
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)


@contextlib.contextmanager
def running_cloud(mqtt_url: str, tmp: Path) -> Iterator[CloudRig]:
    """Start the rig in its thread; stop it on exit."""
    rig = CloudRig(mqtt_url, tmp / "cloud.db")
    thread = threading.Thread(target=rig._run, name="cloud-rig", daemon=True)
    thread.start()
    try:
        if not rig._ready.wait(30) or rig.error is not None:
            msg = f"cloud rig did not start: {rig.error!r}"
            raise RuntimeError(msg)
        yield rig
    finally:
        rig.stop()
        thread.join(20)
