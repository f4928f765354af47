"""The fleet as the cloud stores it: one :class:`FleetEdge` per known edge.

Read from the database (``cloud_edges`` and the newest status of every EVSE in ``cloud_evses``),
so every replica shows the same fleet. Used by the fleet page (:mod:`fuseguard.cloud.web`) and by
the scrape-time gauges of :mod:`fuseguard.cloud.metrics`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from fuseguard.api.evse_models import PlugStatusOut, parse_iso_datetime
from fuseguard.cloud.store import CloudStore
from fuseguard.model.status import PlugStatus

#: Plug states that count as "charging" on the fleet page and in the metrics.
CHARGING = frozenset({PlugStatus.CHARGING, PlugStatus.RECENTLY_STARTED_CHARGING})
#: Plug states of an EVSE that is not usable right now (its plugs report nothing useful).
UNAVAILABLE = frozenset(
    {PlugStatus.OFFLINE, PlugStatus.CLOUD_OFFLINE, PlugStatus.ERROR, PlugStatus.UNKNOWN}
)


@dataclass(frozen=True, slots=True)
class FleetEdge:
    """One edge: presence and a summary of its EVSEs' newest statuses."""

    edge_device_id: str
    online: bool
    evses: int
    evses_online: int
    plugs: int
    plugs_charging: int
    last_seen: datetime | None


def _last_seen(statuses: Sequence[PlugStatusOut]) -> datetime | None:
    times: list[datetime] = []
    for s in statuses:
        try:
            times.append(parse_iso_datetime(s.time))
        except ValueError:
            continue
    return max(times, default=None)


def summarize(
    edge_device_id: str, online: bool, evses: Sequence[Sequence[PlugStatusOut]]
) -> FleetEdge:
    """The summary of one edge from its presence and each EVSE's newest plug statuses."""
    plugs = [s for statuses in evses for s in statuses]
    evses_online = 0
    if online:
        evses_online = sum(
            1 for statuses in evses if any(s.status not in UNAVAILABLE for s in statuses)
        )
    seen = [t for t in (_last_seen(statuses) for statuses in evses) if t is not None]
    return FleetEdge(
        edge_device_id=edge_device_id,
        online=online,
        evses=len(evses),
        evses_online=evses_online,
        plugs=len(plugs),
        plugs_charging=sum(1 for s in plugs if s.status in CHARGING),
        last_seen=max(seen, default=None),
    )


async def load_fleet(store: CloudStore) -> list[FleetEdge]:
    """Every edge the cloud knows (sorted by id), with its EVSE summary."""
    presence = await store.edges()
    statuses = await store.evse_statuses()
    by_edge: dict[str, list[list[PlugStatusOut]]] = {}
    for (edge_device_id, _evse_uuid), plug_statuses in statuses.items():
        by_edge.setdefault(edge_device_id, []).append(plug_statuses)
    ids = sorted(set(presence) | set(by_edge))
    return [summarize(e, presence.get(e, False), by_edge.get(e, [])) for e in ids]
