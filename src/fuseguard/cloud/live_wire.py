"""The live snapshot an edge relays to the cloud: the live page's data, bounded for the wire.

An edge publishes :class:`LiveSnapshot` on ``{prefix}/edges/E/live`` while a cloud viewer asks
for it (:class:`~fuseguard.cloud.protocol.LiveRequest`). Its ``site`` is the dict the edge's own
live page renders (:func:`fuseguard.api.web.view.site_view`), so the cloud shows it with the same
template and script. Like every message from an edge it is hostile until validated: ids and
labels are bounded strings, every number finite and in range, lists capped (:data:`MAX_PLUGS`,
:data:`MAX_CIRCUITS`), enums closed; whatever the cloud shows in words (status, mode, limit
source, a plug's departure from its time, need and time left) it derives itself from the
closed values and numbers, never from the edge's text. A message that
does not validate is dropped (and logged) by the relay; it never ends the link.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from fuseguard.api.evse_models import JsonInt
from fuseguard.api.web.view import (
    MODE_WORDS,
    SOURCE_WORDS,
    STALE_AFTER_S,
    STATUS_WORDS,
    departure_card,
)
from fuseguard.cloud.protocol import INT64_MAX, MAX_PAYLOAD_BYTES, Stamp, UtcTime, _finite
from fuseguard.control.plug_settings import NEED_MAX_WH
from fuseguard.model.status import ChargeMode, PlugStatus

#: Plug cards and circuits one snapshot carries at most (more plugs: ``plugs_omitted``).
MAX_PLUGS = 128
MAX_CIRCUITS = 32
#: Largest amperes / watts a snapshot may state.
MAX_AMPS = 10_000.0
MAX_WATTS = 10_000_000

#: the furthest ahead a relayed departure may be (s): what a ``timedelta`` holds
MAX_LEFT_S = 86_400 * 999_999_999

Watts = Annotated[JsonInt, Field(ge=-MAX_WATTS, le=MAX_WATTS)]

Amps = Annotated[float, _finite(-MAX_AMPS, MAX_AMPS)]
Pct = Annotated[float, _finite(0.0, 100.0)]
Triple = Annotated[list[Amps], Field(min_length=3, max_length=3)]
Text = Annotated[str, Field(max_length=500)]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
SourceKey = Literal["fuse", "ems", "ems_fallback", "meter_fallback"]


class _View(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class PhaseRowWire(_View):
    """One phase of one circuit: figures and bar geometry (percent of the bar)."""

    phase: Literal["L1", "L2", "L3"]
    limit_a: Amps
    current_a: Amps
    non_ev_a: Amps
    ev_a: Amps
    headroom_a: Amps
    non_ev_pct: Pct
    ev_pct: Pct
    limit_pct: Pct
    over: bool


class CircuitWire(_View):
    """One circuit of the tree, depth-first."""

    id: Name
    label: Annotated[str, Field(max_length=128)]
    depth: Annotated[JsonInt, Field(ge=0, le=MAX_CIRCUITS)]
    fuse_a: Triple
    phases: Annotated[list[PhaseRowWire], Field(max_length=3)]
    #: the main circuit's per-phase load is the allocator's assumption (a total-power meter)
    assumed: bool = False


class TargetView(_View):
    """An EVSE target in force."""

    current_a: Annotated[JsonInt, Field(ge=0, le=1000)]
    valid_until: UtcTime


class DepartureWire(_View):
    """The departure in force on a plug (the cloud rebuilds its words from these)."""

    at: AwareDatetime  # with the edge's local offset
    need_kwh: Annotated[float, _finite(0.0, NEED_MAX_WH / 1000.0)]
    left_s: Annotated[JsonInt, Field(ge=0, le=MAX_LEFT_S)]


class PlugCardWire(_View):
    """One plug card (the words are the cloud's own, from ``status`` and ``mode``)."""

    id: Name
    label: Annotated[str, Field(max_length=200)]
    status: PlugStatus
    online: bool
    current_a: Triple
    setpoint_a: Annotated[JsonInt, Field(ge=0, le=1000)]
    reason: Text
    power_w: Watts
    energy_kwh: Annotated[float, _finite(0.0, 1e9)] | None = None
    mode: ChargeMode | None = None
    priority: Annotated[JsonInt, Field(ge=-1_000_000, le=1_000_000)] | None = None
    target: TargetView | None = None
    error: Text | None = None
    evse_uuid: Name | None = None
    #: absent from older edges (then the cloud shows no departure row)
    departure: DepartureWire | None = None


class SiteWire(_View):
    """The live page's data (:func:`fuseguard.api.web.view.site_view`), bounded."""

    time: UtcTime
    age_s: Annotated[float, _finite(-1e9, 1e9)]
    stale: bool
    cycles: Annotated[JsonInt, Field(ge=0, le=INT64_MAX)]
    meter_ok: bool
    grid_power_w: Watts
    limit_source: SourceKey
    main_limit_a: Triple
    circuits: Annotated[list[CircuitWire], Field(max_length=MAX_CIRCUITS)]
    plugs: Annotated[list[PlugCardWire], Field(max_length=MAX_PLUGS)]


class LiveSnapshot(_View):
    """Edge -> cloud: one live snapshot."""

    seq: Stamp
    site_name: Annotated[str, Field(max_length=128)]
    plugs_omitted: Annotated[JsonInt, Field(ge=0, le=INT64_MAX)] = 0
    site: SiteWire


def snapshot_bytes(seq: int, site_name: str, site: Mapping[str, Any]) -> bytes:
    """The wire form of the edge's live page data (plugs and circuits capped, size checked).

    Raises ``ValueError`` (a pydantic ``ValidationError`` included) when the data would not pass
    the cloud's validation or the message would exceed :data:`MAX_PAYLOAD_BYTES`.
    """
    plugs = list(site.get("plugs", []))
    body = {
        "seq": seq,
        "site_name": site_name[:128],
        "plugs_omitted": max(0, len(plugs) - MAX_PLUGS),
        "site": {
            **site,
            "plugs": plugs[:MAX_PLUGS],
            "circuits": list(site.get("circuits", []))[:MAX_CIRCUITS],
        },
    }
    LiveSnapshot.model_validate(body)  # what the cloud will refuse is not sent
    data = json.dumps(body, separators=(",", ":")).encode()
    if len(data) > MAX_PAYLOAD_BYTES:
        msg = f"live snapshot of {len(data)} bytes (limit {MAX_PAYLOAD_BYTES})"
        raise ValueError(msg)
    return data


def relay_view(
    snapshot: LiveSnapshot, received_s_ago: float, online: bool | None
) -> dict[str, Any]:
    """The live page's dict from a validated snapshot, with the cloud's own words and staleness.

    ``received_s_ago``: how long ago the cloud received it; ``online``: the edge's presence.
    """
    site = snapshot.site
    age_s = max(site.age_s, 0.0) + max(received_s_ago, 0.0)
    stale = site.stale or age_s > STALE_AFTER_S or online is False
    if online is False:
        stale_text = f"Edge offline: the data is {age_s:.0f} s old"
    elif site.stale:
        stale_text = "Data is stale: the edge runs no new control cycle"
    else:
        stale_text = f"Data is stale: no snapshot from the edge for {age_s:.0f} s"
    out: dict[str, Any] = site.model_dump(mode="json")
    out.update(
        time=site.time.isoformat(),
        time_text=site.time.strftime("%H:%M:%S UTC"),
        age_s=round(age_s, 1),
        stale=stale,
        stale_text=stale_text if stale else "",
        limit_source_words=SOURCE_WORDS[site.limit_source],
        plugs_omitted=snapshot.plugs_omitted,
    )
    for card, plug in zip(out["plugs"], site.plugs, strict=True):
        card["status_words"] = STATUS_WORDS.get(plug.status, plug.status.value)
        card["mode_words"] = "-" if plug.mode is None else MODE_WORDS[plug.mode]
        if plug.target is not None:
            card["target"]["valid_until"] = plug.target.valid_until.isoformat()
        _relay_departure(card, plug)
    return out


def _relay_departure(card: dict[str, Any], plug: PlugCardWire) -> None:
    """The departure as the edge's page shows it, its words rebuilt here (at ``at``'s offset)."""
    dep = plug.departure
    if "departure" not in plug.model_fields_set:  # an edge from before departures were relayed
        card.pop("departure", None)
        return
    card["departure"] = (
        None if dep is None else departure_card(dep.at, dep.need_kwh, dep.left_s, dep.at.tzinfo)
    )
    card["departure_words"] = "none" if dep is None else card["departure"]["words"]


def waiting_view(now: datetime, text: str) -> dict[str, Any]:
    """The page's dict before the first snapshot arrived (empty tree, stale, with ``text``)."""
    return {
        "time": now.isoformat(),
        "time_text": "-",
        "age_s": 0.0,
        "stale": True,
        "stale_text": text,
        "cycles": 0,
        "meter_ok": False,
        "grid_power_w": "-",
        "limit_source": "fuse",
        "limit_source_words": "-",
        "main_limit_a": ["-", "-", "-"],
        "circuits": [],
        "plugs": [],
        "plugs_omitted": 0,
    }


__all__ = [
    "MAX_CIRCUITS",
    "MAX_PLUGS",
    "LiveSnapshot",
    "relay_view",
    "snapshot_bytes",
    "waiting_view",
]
