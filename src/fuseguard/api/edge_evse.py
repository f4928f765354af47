"""The edge's own backend of the EVSE API: targets in EvseTargets, status from the controller.

A single site needs no cloud: the edge serves :func:`fuseguard.api.evse.create_evse_app` on
:class:`EdgeEvseBackend` for its own ``edge_device_id``. The plug status records come from the
controller's last cycle (:func:`fuseguard.api.live.status_records`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from fuseguard.api.evse_models import EvseInfo, PlugStatusRecord
from fuseguard.control.targets import EvseTargets, Target

if TYPE_CHECKING:
    from fuseguard.config import FuseguardConfig


class EdgeEvseBackend:
    """:class:`fuseguard.api.evse.EvseBackend` for one edge device and its EVSEs."""

    def __init__(
        self,
        edge_device_id: str,
        evses: Mapping[str, EvseInfo],
        targets: EvseTargets,
        status_source: Callable[[str], list[PlugStatusRecord]],
    ) -> None:
        self.edge_device_id = edge_device_id
        self._evses = evses
        self._targets = targets
        self._status_source = status_source

    def _known(self, edge_device_id: str, evse_uuid: str) -> EvseInfo | None:
        if edge_device_id != self.edge_device_id:
            return None
        return self._evses.get(evse_uuid)

    async def evse(self, edge_device_id: str, evse_uuid: str) -> EvseInfo | None:
        """The EVSE when it belongs to this edge."""
        return self._known(edge_device_id, evse_uuid)

    async def set_target(
        self, edge_device_id: str, evse_uuid: str, current_a: int, duration_s: int
    ) -> Literal["received", "rejected"]:
        """Store the target (persisted); the controller applies it on its next cycle."""
        if self._known(edge_device_id, evse_uuid) is None:
            return "rejected"
        await self._targets.set(evse_uuid, current_a, duration_s)
        return "received"

    async def get_target(self, edge_device_id: str, evse_uuid: str) -> Target | None:
        """The target in force."""
        if self._known(edge_device_id, evse_uuid) is None:
            return None
        return self._targets.get(evse_uuid)

    async def clear_target(self, edge_device_id: str, evse_uuid: str) -> Target | None:
        """Clear; returns what was valid before."""
        if self._known(edge_device_id, evse_uuid) is None:
            return None
        return await self._targets.clear(evse_uuid)

    async def status(self, edge_device_id: str, evse_uuid: str) -> list[PlugStatusRecord]:
        """The controller's current view of the EVSE's plugs."""
        if self._known(edge_device_id, evse_uuid) is None:
            return []
        return self._status_source(evse_uuid)


def evse_api_block(
    url: str,
    edge_device_id: str,
    evses: Mapping[str, EvseInfo],
    tokens: Mapping[str, str],
) -> dict[str, Any]:
    """The ``"evse_api"`` entry of ``demo.json`` (``tokens``: plaintext token by EVSE uuid)."""
    return {
        "url": url,
        "edge_device_id": edge_device_id,
        "evses": [
            {
                "uuid": uuid,
                "token": tokens[uuid],
                "plugs": [{"uuid": p, "label": label} for p, label in info.plugs],
            }
            for uuid, info in evses.items()
        ],
    }


def evse_infos_from_config(cfg: FuseguardConfig) -> dict[str, EvseInfo]:
    """The EVSEs of an edge config, by uuid (min/max current and plugs from each charger)."""
    return {
        ch.evse_uuid: EvseInfo(
            evse_uuid=ch.evse_uuid,
            min_current_a=ch.min_current_a,
            max_current_a=ch.max_current_a,
            plugs=tuple((p.uuid, p.label) for p in ch.plugs),
        )
        for ch in cfg.chargers
    }
