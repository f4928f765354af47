"""Topic layout and message payloads between edges and the cloud (JSON over MQTT 3.1.1).

Topics, for ``prefix`` (default ``fuseguard``) and one edge ``E``::

    {prefix}/edges/E/state                  edge -> cloud, retained, QoS 1; also the last will
    {prefix}/edges/E/evses/{uuid}/status    edge -> cloud, retained, QoS 1; EVSE info, target, plugs
    {prefix}/edges/E/cmd                    cloud -> edge, QoS 1; set / clear, with a correlation id
    {prefix}/edges/E/ack/{replica}          edge -> the cloud replica that sent the command, QoS 1

Every topic an edge writes or reads lies below its own ``{prefix}/edges/E/``, so one ACL pattern
per edge (see :mod:`fuseguard.cloud.acl`) keeps an edge from speaking for another.

Ordering: each edge stamps its messages with ``seq``, strictly increasing across restarts (its
clock in microseconds, bumped by one when needed). The cloud writes a target or a status only if
its ``seq`` is newer than the stored one, so replicas that see messages at different times still
converge on the same rows. Online/offline messages carry the connection's ``session`` stamp; within
one session ``offline`` wins over ``online``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from fuseguard.api.evse_models import PlugStatusOut

DEFAULT_PREFIX = "fuseguard"


class Topics:
    """Topic names for one prefix."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        if not prefix or any(c in prefix for c in "+#") or prefix.endswith("/"):
            msg = f"invalid topic prefix {prefix!r}"
            raise ValueError(msg)
        self.prefix = prefix

    def edge_root(self, edge_device_id: str) -> str:
        """``{prefix}/edges/{edge}``."""
        _check_level(edge_device_id)
        return f"{self.prefix}/edges/{edge_device_id}"

    def state(self, edge_device_id: str) -> str:
        """Online/offline topic of one edge (retained, last will)."""
        return f"{self.edge_root(edge_device_id)}/state"

    def status(self, edge_device_id: str, evse_uuid: str) -> str:
        """Status topic of one EVSE (retained)."""
        _check_level(evse_uuid)
        return f"{self.edge_root(edge_device_id)}/evses/{evse_uuid}/status"

    def command(self, edge_device_id: str) -> str:
        """Commands to one edge."""
        return f"{self.edge_root(edge_device_id)}/cmd"

    def ack(self, edge_device_id: str, replica_id: str) -> str:
        """Acknowledgements from one edge to one cloud replica."""
        _check_level(replica_id)
        return f"{self.edge_root(edge_device_id)}/ack/{replica_id}"

    # --- filters the cloud subscribes to -------------------------------------------------------

    def all_states(self) -> str:
        """``{prefix}/edges/+/state``."""
        return f"{self.prefix}/edges/+/state"

    def all_statuses(self) -> str:
        """``{prefix}/edges/+/evses/+/status``."""
        return f"{self.prefix}/edges/+/evses/+/status"

    def all_acks(self, replica_id: str) -> str:
        """``{prefix}/edges/+/ack/{replica}``."""
        _check_level(replica_id)
        return f"{self.prefix}/edges/+/ack/{replica_id}"

    def parse(self, topic: str) -> tuple[str, str, tuple[str, ...]] | None:
        """Split a topic into ``(edge, kind, rest)``; None when it is not ours."""
        head = f"{self.prefix}/edges/"
        if not topic.startswith(head):
            return None
        parts = topic[len(head) :].split("/")
        if len(parts) < 2 or not parts[0]:
            return None
        edge, kind, rest = parts[0], parts[1], tuple(parts[2:])
        if kind == "evses" and len(rest) == 2 and rest[1] == "status":
            return edge, "status", (rest[0],)
        if kind in ("state", "cmd") and not rest:
            return edge, kind, ()
        if kind == "ack" and len(rest) == 1:
            return edge, "ack", rest
        return None


def _check_level(value: str) -> None:
    if not value or any(c in value for c in "/+#\x00"):
        msg = f"{value!r} cannot be used as an MQTT topic level"
        raise ValueError(msg)


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    def to_bytes(self) -> bytes:
        """Compact JSON."""
        return self.model_dump_json().encode()


class EdgeState(_Wire):
    """Online/offline of an edge; ``session`` identifies one broker connection."""

    state: Literal["online", "offline"]
    session: int = Field(ge=0)


class TargetWire(_Wire):
    """A current target as the edge holds it."""

    current: int = Field(ge=0)
    valid_until: datetime


class PlugInfoWire(_Wire):
    """A plug of an EVSE (identity only)."""

    uuid: str
    label: str


class EvseStatusMessage(_Wire):
    """Retained status of one EVSE: its limits, its target and its plugs."""

    seq: int = Field(ge=0)
    evse_uuid: str
    min_current_a: int
    max_current_a: int
    plugs: list[PlugInfoWire]
    target: TargetWire | None = None
    statuses: list[PlugStatusOut] = Field(default_factory=list)


class CommandMessage(_Wire):
    """Cloud -> edge: set or clear one EVSE's target. ``id`` is the correlation id."""

    id: str
    reply_to: str
    op: Literal["set", "clear"]
    evse_uuid: str
    current: int | None = None
    duration: int | None = None


class AckMessage(_Wire):
    """Edge -> cloud: what happened to command ``id``."""

    id: str
    seq: int = Field(ge=0)
    evse_uuid: str
    state: Literal["received", "rejected"]
    target: TargetWire | None = None
    previous: TargetWire | None = None
    reason: str | None = None
