"""The cloud service: one stateless replica of the multi-edge EVSE API.

:class:`CloudService` wires the database (:class:`~fuseguard.cloud.store.CloudStore`, tokens),
the MQTT link and :class:`~fuseguard.cloud.backend.CloudEvseBackend` under the shared API app
(:func:`fuseguard.api.evse.create_evse_app`). :func:`serve_cloud` runs it with uvicorn until
SIGINT/SIGTERM; ``fuseguard cloud`` calls it through :func:`run_cloud` (the event loop).
Start as many replicas as you like against one database and one broker (each gets its own
``replica_id``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from fuseguard.api.evse import create_evse_app
from fuseguard.api.evse_errors import error_body
from fuseguard.cloud.backend import CloudEvseBackend, EdgeUnavailableError
from fuseguard.cloud.config import CloudSettings
from fuseguard.cloud.edge_page import edge_page_endpoints
from fuseguard.cloud.link import BrokerAddress, LinkMessage, MqttLink, supervised
from fuseguard.cloud.live import LiveRelay
from fuseguard.cloud.metrics import CommandMetrics, FleetCollector, cloud_metrics_endpoint
from fuseguard.cloud.protocol import Topics
from fuseguard.cloud.store import CloudStore
from fuseguard.cloud.tokens import CloudTokens
from fuseguard.cloud.web import fleet_endpoints
from fuseguard.model.clock import Clock, RealClock
from fuseguard.serving import DEFAULT_LIMITS, ServerLimits, loop_factory, serve_app
from fuseguard.store.db import create_engine, init_schema

if TYPE_CHECKING:
    from fuseguard.cloud.pg import PgPool

log = structlog.get_logger(__name__)


class CloudService:
    """One cloud replica: ``async with CloudService(settings) as svc:`` then serve ``svc.app``."""

    def __init__(self, settings: CloudSettings, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock: Clock = clock if clock is not None else RealClock()
        # The cloud's tables are a copy of what the edges report and republish (CloudStore):
        # no commit waits for the disk.
        self.engine = create_engine(settings.database.url, synchronous_commit=False)
        self.pg = _fast_pool(self.engine, PG_FAST_POOL_SIZE)
        self.pg_write = _fast_pool(self.engine, 1)  # the replica's one database writer
        self.store = CloudStore(self.engine, self.pg, self.pg_write)
        self.tokens = CloudTokens(self.engine, self.pg)
        self.topics = Topics(settings.broker.topic_prefix)
        self.live = LiveRelay(self.topics, self.clock)
        self.registry = CollectorRegistry()
        self.command_metrics = CommandMetrics(self.registry)
        self.backend = CloudEvseBackend(
            self.store,
            self.topics,
            self.clock,
            replica_id=settings.replica_id,
            ack_timeout_s=settings.api.ack_timeout_s,
            status_linger_s=settings.api.status_linger_s,
            metrics=self.command_metrics,
        )
        password = settings.broker.password
        self.link = MqttLink(
            broker_url=settings.broker.url,
            client_id=f"fuseguard-cloud-{settings.replica_id}",
            on_message=self._on_message,
            username=settings.broker.username,
            password=password.get_secret_value() if password is not None else None,
            max_inflight=1000,
            on_connect=self.backend.on_link_connected,
            tls=settings.broker.tls,
        )
        self.app: FastAPI = create_evse_app(
            self.backend,
            self.tokens,
            max_duration_s=settings.api.max_duration_s,
            title="fuseguard cloud: Direct EVSE Control API",
        )
        self.app.add_exception_handler(EdgeUnavailableError, _edge_unavailable)
        self.fleet_collector = FleetCollector(self.store, lambda: self.link.connected)
        self.registry.register(self.fleet_collector)
        self._add_web_routes()
        self._link_task: asyncio.Task[None] | None = None

    def _add_web_routes(self) -> None:
        """``GET /metrics`` and ``GET /fleet`` when enabled in the settings."""
        mc = self.settings.metrics
        if mc.enabled:
            endpoint = cloud_metrics_endpoint(
                self.registry,
                self.fleet_collector,
                user=mc.user,
                password=mc.password.get_secret_value(),
            )
            self.app.add_route("/metrics", endpoint, methods=["GET"], include_in_schema=False)
        web = self.settings.web
        if web.enabled:
            page, css = fleet_endpoints(
                self.store,
                self.clock,
                user=web.admin_user,
                password=web.admin_password.get_secret_value(),
            )
            self.app.add_route("/fleet", page, methods=["GET"], include_in_schema=False)
            self.app.add_route("/fleet/app.css", css, methods=["GET"], include_in_schema=False)
            for path, endpoint in edge_page_endpoints(
                self.store,
                self.live,
                self.backend.edge_online,
                self.clock,
                user=web.admin_user,
                password=web.admin_password.get_secret_value(),
            ).items():
                self.app.add_route(path, endpoint, methods=["GET"], include_in_schema=False)

    async def _on_message(self, message: LinkMessage) -> None:
        """Live snapshots to the relay, everything else to the EVSE backend."""
        if not self.live.handle(message):
            await self.backend.handle_message(message)

    async def start(self, *, connect_timeout_s: float = 10.0) -> None:
        """Create the schema, connect to the broker, subscribe."""
        await init_schema(self.engine)
        self._link_task = asyncio.create_task(
            supervised("cloud-mqtt-link", self.link.run), name="cloud-mqtt-link"
        )
        await self.backend.start(self.link)
        await self.live.start(self.link)
        await self.link.wait_connected(connect_timeout_s)
        log.info(
            "cloud_started",
            replica=self.settings.replica_id,
            broker=self.settings.broker.url,
            db=self.engine.dialect.name,
            reason="service start",
        )

    async def stop(self) -> None:
        """Stop the link and flush the status writer; dispose of the engine."""
        self.live.close()
        await self.backend.stop()
        if self._link_task is not None:
            self._link_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._link_task
            self._link_task = None
        for pool in (self.pg, self.pg_write):
            if pool is not None:
                await pool.close()
        await self.engine.dispose()
        log.info("cloud_stopped", replica=self.settings.replica_id, reason="service stop")

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


#: Raw PostgreSQL connections per replica for its requests' reads (:mod:`fuseguard.cloud.pg`).
PG_FAST_POOL_SIZE = 16


def _fast_pool(engine: AsyncEngine, size: int) -> PgPool | None:
    """On PostgreSQL, raw connections for the per-request statements (:mod:`.pg`)."""
    if engine.dialect.name != "postgresql":
        return None
    from fuseguard.cloud.pg import PgPool  # psycopg is needed on PostgreSQL only

    return PgPool(engine.url.render_as_string(hide_password=False), max_size=size)


async def _edge_unavailable(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(error_body(503, str(exc)), status_code=503)


class EmbeddedBroker:
    """An in-process amqtt broker (MQTT 3.1.1, anonymous) for trying the cloud out on one box."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._broker: Any = None

    async def __aenter__(self) -> Self:
        from amqtt.broker import Broker

        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
        self._broker = Broker(config)
        await self._broker.start()
        log.info(
            "embedded_broker_started", host=self.host, port=self.port, reason="--embedded-broker"
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None


async def serve_cloud(
    settings: CloudSettings,
    *,
    embedded_broker: bool = False,
    stop: asyncio.Event | None = None,
    limits: ServerLimits | None = None,
) -> None:
    """Run one replica (optionally with an embedded broker) until SIGINT/SIGTERM or ``stop``.

    The HTTP server has the edge's bounds (:class:`~fuseguard.serving.ServerLimits`: body
    size, header and body deadlines, TLS >= 1.2) with ``server.max_connections`` connections
    (unless ``limits`` are given) and the ``server.http`` parser; a busy port raises ``OSError``.
    """
    if limits is None:
        limits = dataclasses.replace(
            DEFAULT_LIMITS, max_connections=settings.server.max_connections
        )
    stop_event = stop if stop is not None else asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop_event.set)
    async with contextlib.AsyncExitStack() as stack:
        if embedded_broker or settings.broker.embedded:
            address = BrokerAddress.parse(settings.broker.url)
            await stack.enter_async_context(EmbeddedBroker(address.host, address.port))
        service = await stack.enter_async_context(CloudService(settings))
        server = await serve_app(
            service.app,
            settings.server.host,
            settings.server.port,
            limits=limits,
            http=settings.server.http,
        )
        stack.push_async_callback(server.close)
        stop_task = asyncio.create_task(stop_event.wait())
        await asyncio.wait({server.task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        stop_task.cancel()


def run_cloud(settings: CloudSettings, *, embedded_broker: bool = False) -> None:
    """:func:`serve_cloud` in a new event loop of the kind ``server.loop`` asks for."""
    with asyncio.Runner(loop_factory=loop_factory(settings.server.loop)) as runner:
        runner.run(serve_cloud(settings, embedded_broker=embedded_broker))
