"""Prometheus metrics of one cloud replica: ``GET /metrics`` on the cloud's HTTP port.

* Command counters (:class:`CommandMetrics`), counted by
  :class:`~fuseguard.cloud.backend.CloudEvseBackend` as it sends commands and gets acks:
  ``fuseguard_cloud_commands_{sent,acked,rejected,timed_out}_total{op}`` (``rejected`` has a
  ``reason``: ``edge_offline``, ``edge_refused``, ``edge_went_offline``, ``link_error``), and
  the duration of ``POST .../currentsettings`` as the backend sees it (send to ack, seconds).
* Fleet gauges (:class:`FleetCollector`) read from the database at scrape time (at most once per
  ``min_refresh_s``): edges known / online, per edge online, EVSEs, EVSEs online, plugs charging
  and the newest status time; plus whether this replica's MQTT link is up.

Counters are per replica (each replica counts the commands it sent); the fleet gauges are the
same on every replica (they come from the shared database).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Literal

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from fuseguard.api.metrics import metrics_endpoint
from fuseguard.cloud.fleet import FleetEdge, load_fleet
from fuseguard.cloud.store import CloudStore

if TYPE_CHECKING:
    from collections.abc import Awaitable

RejectReason = Literal["edge_offline", "edge_refused", "edge_went_offline", "link_error"]
#: Send-to-ack buckets (s): an ack normally takes tens of milliseconds; the default timeout is 5 s.
ACK_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class CommandMetrics:
    """Counters of the commands this replica sent (registered in ``registry``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.sent = Counter(
            "fuseguard_cloud_commands_sent",
            "Commands published to an edge",
            ["op"],
            registry=registry,
        )
        self.acked = Counter(
            "fuseguard_cloud_commands_acked",
            "Commands an edge acknowledged (accepted or refused)",
            ["op"],
            registry=registry,
        )
        self.rejected = Counter(
            "fuseguard_cloud_commands_rejected",
            "Commands answered with rejected (edge offline, refused, went offline, link error)",
            ["op", "reason"],
            registry=registry,
        )
        self.timed_out = Counter(
            "fuseguard_cloud_commands_timed_out",
            "Commands without an ack within ack_timeout_s",
            ["op"],
            registry=registry,
        )
        self.set_duration = Histogram(
            "fuseguard_cloud_currentsettings_post_duration_seconds",
            "POST currentsettings: from the command to the edge's answer",
            buckets=ACK_BUCKETS_S,
            registry=registry,
        )

    def reject(self, op: str, reason: RejectReason) -> None:
        """Count one rejected command."""
        self.rejected.labels(op=op, reason=reason).inc()


def _gauge(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


class FleetCollector(Collector):
    """Fleet gauges from a snapshot taken by :meth:`refresh` (async, before each scrape)."""

    def __init__(
        self,
        store: CloudStore,
        link_up: Callable[[], bool],
        *,
        min_refresh_s: float = 1.0,
    ) -> None:
        self._store = store
        self._link_up = link_up
        self._min_refresh_s = min_refresh_s
        self._fleet: list[FleetEdge] = []
        self._refreshed: float | None = None

    async def refresh(self) -> None:
        """Read the fleet from the database unless it was read less than ``min_refresh_s`` ago.

        (Rate limit on a monotonic clock: it bounds database load, not control behaviour.)
        """
        now = time.monotonic()
        if self._refreshed is not None and now - self._refreshed < self._min_refresh_s:
            return
        self._fleet = await load_fleet(self._store)
        self._refreshed = now

    def collect(self) -> Iterator[Metric]:
        """The gauges of the last snapshot."""
        fleet = self._fleet
        link = _gauge("fuseguard_cloud_mqtt_link_up", "1 when this replica's MQTT link is up")
        link.add_metric([], 1.0 if self._link_up() else 0.0)
        yield link
        known = _gauge("fuseguard_cloud_edges_known", "Edges that ever reported")
        known.add_metric([], float(len(fleet)))
        yield known
        online = _gauge("fuseguard_cloud_edges_online", "Edges online now")
        online.add_metric([], float(sum(1 for e in fleet if e.online)))
        yield online
        yield from self._per_edge(fleet)

    @staticmethod
    def _per_edge(fleet: list[FleetEdge]) -> Iterator[Metric]:
        labels = ["edge"]
        edge_online = _gauge("fuseguard_cloud_edge_online", "1 when the edge is online", labels)
        evses = _gauge("fuseguard_cloud_edge_evses", "EVSEs the edge reported", labels)
        evses_online = _gauge(
            "fuseguard_cloud_edge_evses_online",
            "EVSEs of an online edge with at least one plug not offline/error/unknown",
            labels,
        )
        charging = _gauge(
            "fuseguard_cloud_edge_plugs_charging", "Plugs whose newest status is charging", labels
        )
        last_seen = _gauge(
            "fuseguard_cloud_edge_last_status_timestamp_seconds",
            "Time (Unix s) of the edge's newest plug status",
            labels,
        )
        for e in fleet:
            edge_online.add_metric([e.edge_device_id], 1.0 if e.online else 0.0)
            evses.add_metric([e.edge_device_id], float(e.evses))
            evses_online.add_metric([e.edge_device_id], float(e.evses_online))
            charging.add_metric([e.edge_device_id], float(e.plugs_charging))
            if e.last_seen is not None:
                last_seen.add_metric([e.edge_device_id], e.last_seen.timestamp())
        yield from (edge_online, evses, evses_online, charging, last_seen)


def cloud_metrics_endpoint(
    registry: CollectorRegistry,
    fleet: FleetCollector,
    *,
    user: str = "",
    password: str = "",
) -> Callable[[Request], Awaitable[Response]]:
    """``GET /metrics``: refresh the fleet snapshot, then the shared handler (Basic auth)."""
    inner = metrics_endpoint(registry, user=user, password=password)

    async def metrics(request: Request) -> Response:
        await fleet.refresh()
        return await inner(request)

    return metrics
