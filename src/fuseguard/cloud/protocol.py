"""Topic layout and message payloads between edges and the cloud (JSON over MQTT 3.1.1).

Topics, for ``prefix`` (default ``fuseguard``) and one edge ``E``::

    {prefix}/edges/E/state                  edge -> cloud, retained, QoS 1; also the last will
    {prefix}/edges/E/evses/{uuid}/status    edge -> cloud, retained, QoS 1; EVSE info, target, plugs
    {prefix}/edges/E/cmd                    cloud -> edge, QoS 1; set / clear, with a correlation id
    {prefix}/edges/E/ack/{replica}          edge -> the cloud replica that sent the command, QoS 1
    {prefix}/edges/E/live                   edge -> cloud, QoS 0, not retained; the live page's
                                            data, while a cloud viewer asks (``op: live`` on cmd)

Every topic an edge writes or reads lies below its own ``{prefix}/edges/E/``, so one ACL pattern
per edge (see :mod:`fuseguard.cloud.acl`) keeps an edge from speaking for another.

Ordering: each edge stamps its messages with ``seq``, strictly increasing across restarts (its
clock in microseconds, bumped by one when needed). The cloud writes a target or a status only if
its ``seq`` is newer than the stored one, so replicas that see messages at different times still
converge on the same rows. Online/offline messages carry the connection's ``session`` stamp; within
one session ``offline`` wins over ``online``.

Every payload comes from a party that may be broken or hostile (an edge speaks only for itself,
but it may say anything). So every integer, string, list and number in these models is bounded to
what the cloud's columns hold and what makes sense (:data:`INT64_MAX` for stamps, amperes up to
:data:`MAX_WIRE_CURRENT_A`, 32 plugs, finite measurements, times that convert to UTC), and a
payload longer than :data:`MAX_PAYLOAD_BYTES` is dropped before it is parsed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)

from fuseguard.api.evse_models import JsonInt, PlugStatusOut, parse_iso_datetime
from fuseguard.model.numbers import finite

DEFAULT_PREFIX = "fuseguard"

#: The largest value of a signed 64-bit column (``BigInteger``: ``seq``, ``session``).
INT64_MAX = 2**63 - 1
#: The largest value of a signed 32-bit column (``Integer``).
INT32_MAX = 2**31 - 1
#: No EVSE takes more; well inside an ``Integer`` column.
MAX_WIRE_CURRENT_A = 1000
#: Longest accepted message; anything longer is dropped unparsed (a status of 32 plugs is ~12 KB).
MAX_PAYLOAD_BYTES = 64 * 1024
#: Longest MQTT topic level the cloud accepts as an edge id (``cloud_edges.edge_device_id``).
MAX_EDGE_ID_LEN = 128


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

    def live(self, edge_device_id: str) -> str:
        """Live snapshots of one edge (see :mod:`fuseguard.cloud.live_wire`)."""
        return f"{self.edge_root(edge_device_id)}/live"

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

    def all_lives(self) -> str:
        """``{prefix}/edges/+/live``."""
        return f"{self.prefix}/edges/+/live"

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
        if kind in ("state", "cmd", "live") and not rest:
            return edge, kind, ()
        if kind == "ack" and len(rest) == 1:
            return edge, "ack", rest
        return None


def _check_level(value: str) -> None:
    if not value or any(c in value for c in "/+#\x00"):
        msg = f"{value!r} cannot be used as an MQTT topic level"
        raise ValueError(msg)


def describe_error(err: Exception) -> str:
    """One short log line for why a message was dropped (never the whole payload)."""
    if isinstance(err, ValidationError):
        where = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()[:3]
        )
        return f"{err.error_count()} validation error(s): {where}"[:500]
    return f"{type(err).__name__}: {err}"[:500]


def _utc(value: datetime) -> datetime:
    """An aware datetime in UTC; one that cannot be expressed in UTC is invalid."""
    try:
        return value.astimezone(UTC)
    except OverflowError as err:
        msg = "time out of range"
        raise ValueError(msg) from err


def _iso_time(value: str) -> str:
    """A status time that parses (ISO-8601 with an offset) and converts to UTC."""
    try:
        parse_iso_datetime(value)
    except (ValueError, OverflowError) as err:
        msg = "not an ISO-8601 time with an offset"
        raise ValueError(msg) from err
    return value


def _finite(lo: float, hi: float) -> BeforeValidator:
    def check(value: object) -> float:
        return finite(value, "value", lo=lo, hi=hi)

    return BeforeValidator(check)


Stamp = Annotated[JsonInt, Field(ge=0, le=INT64_MAX)]
CurrentA = Annotated[JsonInt, Field(ge=0, le=MAX_WIRE_CURRENT_A)]
UtcTime = Annotated[AwareDatetime, AfterValidator(_utc)]
WireId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
Label = Annotated[str, Field(max_length=64)]
Reason = Annotated[str, Field(max_length=500)]
MeasuredA = Annotated[float, _finite(-MAX_WIRE_CURRENT_A, MAX_WIRE_CURRENT_A)]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    def to_bytes(self) -> bytes:
        """Compact JSON."""
        return self.model_dump_json().encode()


class EdgeState(_Wire):
    """Online/offline of an edge; ``session`` identifies one broker connection."""

    state: Literal["online", "offline"]
    session: Stamp


class TargetWire(_Wire):
    """A current target as the edge holds it (``valid_until`` in UTC)."""

    current: CurrentA
    valid_until: UtcTime


class PlugInfoWire(_Wire):
    """A plug of an EVSE (identity only)."""

    uuid: WireId
    label: Label


class PlugStatusWire(PlugStatusOut):
    """A plug status as an edge reports it: the API's element, every field bounded."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    time: Annotated[str, Field(max_length=40), AfterValidator(_iso_time)]
    plug_uuid: WireId
    plug_label: Label
    evse_uuid: WireId
    current_l1: MeasuredA
    current_l2: MeasuredA
    current_l3: MeasuredA
    power: Annotated[float, _finite(-1e6, 1e6)]
    dyn_current_limit: Annotated[float, _finite(0, MAX_WIRE_CURRENT_A)]


class EvseStatusMessage(_Wire):
    """Retained status of one EVSE: its limits, its target and its plugs."""

    seq: Stamp
    evse_uuid: WireId
    min_current_a: CurrentA
    max_current_a: CurrentA
    plugs: list[PlugInfoWire] = Field(max_length=32)
    target: TargetWire | None = None
    statuses: list[PlugStatusWire] = Field(default_factory=list, max_length=32)


class CommandMessage(_Wire):
    """Cloud -> edge: set or clear one EVSE's target. ``id`` is the correlation id.

    ``current`` and ``duration`` are only bounded to sane integers here; the edge checks them
    against the EVSE's range and its ``max_duration_s`` and acknowledges ``rejected`` with a reason.
    """

    id: WireId
    reply_to: Annotated[str, Field(max_length=512)]
    op: Literal["set", "clear"]
    evse_uuid: WireId
    current: Annotated[JsonInt, Field(ge=0, le=INT32_MAX)] | None = None
    duration: Annotated[JsonInt, Field(ge=0, le=INT32_MAX)] | None = None


#: Longest a cloud viewer's request keeps an edge publishing live snapshots (renewed while open).
MAX_LIVE_LEASE_S = 600


class LiveRequest(_Wire):
    """Cloud -> edge on the command topic: publish live snapshots for ``for_s`` seconds."""

    op: Literal["live"]
    for_s: Annotated[JsonInt, Field(ge=1, le=MAX_LIVE_LEASE_S)]


#: What arrives on an edge's command topic: a target command or a live request, by ``op``.
EdgeCommand = TypeAdapter(
    Annotated[CommandMessage | LiveRequest, Field(discriminator="op")],
)


class AckMessage(_Wire):
    """Edge -> cloud: what happened to command ``id``."""

    id: WireId
    seq: Stamp
    evse_uuid: WireId
    state: Literal["received", "rejected"]
    target: TargetWire | None = None
    previous: TargetWire | None = None
    reason: Reason | None = None
