"""Helpers for the cloud tests: settings, virtual edges, polling, an in-process API client."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx2

from fuseguard.api.edge_evse import EdgeEvseBackend
from fuseguard.api.evse_models import EvseInfo, PlugStatusRecord
from fuseguard.cloud.app import CloudService
from fuseguard.cloud.config import ApiSection, BrokerSection, CloudSettings, DatabaseSection
from fuseguard.cloud.edge_agent import EdgeCloudAgent
from fuseguard.cloud.link import MqttLink, TlsSettings
from fuseguard.control.targets import EvseTargets
from fuseguard.model.clock import Clock, RealClock
from fuseguard.model.ids import new_hex_uuid
from fuseguard.model.phases import Phases
from fuseguard.model.status import PlugStatus


def cloud_settings(
    mqtt_url: str,
    prefix: str,
    db_url: str,
    *,
    ack_timeout_s: float = 2.0,
    replica_id: str | None = None,
) -> CloudSettings:
    """Settings for one test replica."""
    return CloudSettings(
        database=DatabaseSection(url=db_url),
        broker=BrokerSection(url=mqtt_url, topic_prefix=prefix),
        api=ApiSection(ack_timeout_s=ack_timeout_s, max_duration_s=86_400),
        replica_id=replica_id or uuid.uuid4().hex[:8],
    )


@dataclass
class VirtualEdge:
    """An edge with virtual EVSEs: the edge's own backend plus its cloud agent."""

    edge_device_id: str
    evses: list[EvseInfo]
    clock: Clock
    targets: EvseTargets
    backend: EdgeEvseBackend
    agent: EdgeCloudAgent
    plug_status: dict[str, PlugStatus] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None

    def records(self, evse_uuid: str) -> list[PlugStatusRecord]:
        info = next(e for e in self.evses if e.evse_uuid == evse_uuid)
        cap = self.targets.cap_a(evse_uuid)
        out = []
        for plug_uuid, label in info.plugs:
            status = self.plug_status.get(plug_uuid, PlugStatus.IDLE)
            charging = status in (PlugStatus.CHARGING, PlugStatus.RECENTLY_STARTED_CHARGING)
            limit = float(info.max_current_a if cap is None else cap)
            current = Phases.uniform(limit if charging else 0.0)
            out.append(
                PlugStatusRecord(
                    time=self.clock.now(),
                    plug_uuid=plug_uuid,
                    plug_label=label,
                    evse_uuid=evse_uuid,
                    status=status,
                    current_a=current,
                    power_w=230.0 * current.total,
                    dyn_current_limit_a=limit,
                )
            )
        return out

    async def start(self) -> None:
        await self.targets.load()
        self.task = asyncio.create_task(self.agent.run())
        await self.agent.wait_connected(10)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None


def make_edge(
    mqtt_url: str,
    prefix: str,
    *,
    edge_device_id: str | None = None,
    evse_count: int = 1,
    plugs_per_evse: int = 2,
    clock: Clock | None = None,
    targets: EvseTargets | None = None,
    tls: TlsSettings | None = None,
    username: str | None = None,
    password: str | None = None,
) -> VirtualEdge:
    """An edge with ``evse_count`` EVSEs of ``plugs_per_evse`` plugs each (6..32 A)."""
    clk = clock if clock is not None else RealClock()
    edge_id = edge_device_id or f"edge-{uuid.uuid4().hex[:8]}"
    evses = [
        EvseInfo(
            evse_uuid=new_hex_uuid(),
            min_current_a=6,
            max_current_a=32,
            plugs=tuple((new_hex_uuid(), f"Plug {i + 1}") for i in range(plugs_per_evse)),
        )
        for _ in range(evse_count)
    ]
    tgts = targets if targets is not None else EvseTargets(clk)
    holder: list[VirtualEdge] = []
    backend = EdgeEvseBackend(
        edge_id,
        {e.evse_uuid: e for e in evses},
        tgts,
        lambda u: holder[0].records(u),  # noqa: PLW0108
    )
    agent = EdgeCloudAgent(
        mqtt_url, edge_id, username, password, backend, evses, clk,
        status_interval_s=3600.0, topic_prefix=prefix, tls=tls,
    )  # fmt: skip
    edge = VirtualEdge(edge_id, evses, clk, tgts, backend, agent)
    holder.append(edge)
    return edge


def crash_connection(link: MqttLink) -> None:
    """Drop the link's TCP connection without DISCONNECT, as a crash would.

    The broker then publishes the link's last will; the link's reconnect loop connects again.
    (Reaches into aiomqtt's paho client for the socket: a failure drill, not an API.)
    """
    client = link._client
    if client is None:
        return
    paho: Any = getattr(client, "_client", None)
    sock: Any = paho.socket() if paho is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


async def wait_for(predicate: Callable[[], Awaitable[object]], timeout_s: float = 5.0) -> None:
    """Poll an async predicate until it is truthy."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await predicate()
        if result:
            return
        if time.monotonic() > deadline:
            msg = "condition not met in time"
            raise AssertionError(msg)
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def api_client(service: CloudService) -> AsyncIterator[httpx2.AsyncClient]:
    """An HTTP client on the service's app (in process)."""
    transport = httpx2.ASGITransport(app=service.app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://cloud") as client:
        yield client
