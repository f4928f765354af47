"""What the dashboard shows, derived from one controller status: pure functions, no I/O.

:func:`site_view` turns a :class:`~fuseguard.control.types.ControllerStatus` (plus the limit
source, the plug settings in force and the EVSE targets) into one JSON-ready dict. The live page
renders it server-side on first load and then receives the same dict over Server-Sent Events, so
the two can never disagree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

from fuseguard.api.site_state import (
    LimitSource,
    circuit_currents,
    explained_reason,
    total_power_only,
)
from fuseguard.control.departure_time import departure_words, localized, time_left_words
from fuseguard.control.plug_settings import Departure, PlugSetting
from fuseguard.control.targets import Target
from fuseguard.control.types import ControllerStatus, PlugView
from fuseguard.model.circuits import MAIN, CircuitTree
from fuseguard.model.phases import Phase, Phases
from fuseguard.model.status import ChargeMode, PlugStatus

#: The 13 plug status values in words.
STATUS_WORDS: Mapping[PlugStatus, str] = {
    PlugStatus.CHARGING: "Charging",
    PlugStatus.RECENTLY_STARTED_CHARGING: "Just started charging",
    PlugStatus.IDLE: "Free (no car)",
    PlugStatus.CONNECTED: "Car connected, not charging",
    PlugStatus.DISCHARGING: "Feeding back (discharging)",
    PlugStatus.ERROR: "Fault",
    PlugStatus.OFFLINE: "Charger not reachable",
    PlugStatus.CLOUD_OFFLINE: "Cloud link down",
    PlugStatus.INIT: "Starting up",
    PlugStatus.STOPPED: "Stopped",
    PlugStatus.STARTING: "About to charge",
    PlugStatus.PRODUCING: "Producing",
    PlugStatus.UNKNOWN: "Unknown",
}

MODE_WORDS: Mapping[ChargeMode, str] = {
    ChargeMode.FAST: "Now (fast)",
    ChargeMode.MINPV: "Min + PV",
    ChargeMode.PV: "PV only",
    ChargeMode.OFF: "Off",
}

#: The source of the main-circuit limit in words (the meter-loss fallback overrides the others).
SOURCE_WORDS: Mapping[str, str] = {
    LimitSource.FUSE.value: "Main fuse",
    LimitSource.EMS.value: "EMS CurrentLimit",
    LimitSource.EMS_FALLBACK.value: "Keep-alive fallback (EMS silent)",
    "meter_fallback": "Meter-loss fallback",
}

#: A status older than this (s) is stale: the control loop is not producing new cycles.
STALE_AFTER_S = 5.0


@dataclass(frozen=True, slots=True)
class ViewContext:
    """What the view needs beyond the status (all read without I/O)."""

    tree: CircuitTree
    limit_source: LimitSource
    settings: Mapping[str, PlugSetting]
    targets: Mapping[str, Target]
    now: datetime
    #: the departure in force per plug (:meth:`PlugSettings.departure_of` at ``now``)
    departures: Mapping[str, Departure] = field(default_factory=dict)
    #: the zone departures are shown in; None: the process's local zone
    tz: tzinfo | None = None


def _num(value: float, ndigits: int = 1) -> float:
    """A finite, rounded number for the page (no reading -> 0)."""
    return round(value, ndigits) if math.isfinite(value) else 0.0


def _phase_rows(
    fuse: Phases, limit: Phases, non_ev: Phases, ev: Phases, current: Phases
) -> list[dict[str, Any]]:
    """Per phase: the figures and the bar geometry (the bar spans the fuse, or more if over)."""
    rows = []
    for phase in Phase:
        lim = max(0.0, _num(limit[phase]))
        cur = _num(current[phase])
        nev = max(0.0, _num(non_ev[phase]))
        evl = max(0.0, _num(ev[phase]))
        scale = max(_num(fuse[phase]), lim, cur, nev + evl, 1.0)
        rows.append(
            {
                "phase": phase.value,
                "limit_a": lim,
                "current_a": cur,
                "non_ev_a": nev,
                "ev_a": evl,
                "headroom_a": _num(lim - cur),
                "non_ev_pct": round(100.0 * nev / scale, 1),
                "ev_pct": round(100.0 * evl / scale, 1),
                "limit_pct": round(100.0 * lim / scale, 1),
                "over": cur > lim + 1e-6,
            }
        )
    return rows


def _ev_by_circuit(status: ControllerStatus, tree: CircuitTree) -> dict[str, Phases]:
    ev = {cid: Phases.uniform(0.0) for cid in tree.ids}
    for plug in status.plugs:
        if plug.circuit not in tree:
            continue
        for cid in tree.path(plug.circuit):
            ev[cid] = ev[cid] + plug.grid_current_a.map(lambda v: v if math.isfinite(v) else 0.0)
    return ev


def circuit_views(status: ControllerStatus, tree: CircuitTree) -> list[dict[str, Any]]:
    """The circuit tree in depth-first order with per-phase limit / non-EV / EV / headroom."""
    currents = circuit_currents(status, tree)
    ev = _ev_by_circuit(status, tree)
    assumed_main = total_power_only(status) and MAIN in status.non_ev_load_a
    zero = Phases.uniform(0.0)
    out: list[dict[str, Any]] = []

    def visit(cid: str, depth: int) -> None:
        spec = tree[cid]
        current = currents.get(cid, zero)
        ev_a = ev.get(cid, zero)
        if cid == MAIN and assumed_main:
            # total power only: show the per-phase load the allocator assumes and limits, not
            # the total spread evenly (which looked like headroom the allocator does not see)
            non_ev = status.non_ev_load_a.get(cid, zero)
            current = non_ev + ev_a
        elif cid == MAIN:  # the meter sees everything: what is not EV is non-EV
            non_ev = (current - ev_a).maximum(0.0)
        else:
            non_ev = status.non_ev_load_a.get(cid, zero)
        limit = status.limits_a.get(cid, spec.fuse)
        out.append(
            {
                "id": cid,
                "label": "Grid connection (main fuse)" if cid == MAIN else cid,
                "assumed": cid == MAIN and assumed_main,
                "depth": depth,
                "fuse_a": [_num(v) for v in spec.fuse],
                "phases": _phase_rows(spec.fuse, limit, non_ev, ev_a, current),
            }
        )
        for child in tree.children(cid):
            visit(child, depth + 1)

    visit(MAIN, 0)
    return out


def departure_view(
    dep: Departure | None, now: datetime, tz: tzinfo | None = None
) -> dict[str, Any] | None:
    """A departure in force for the pages, None when none or past: :func:`departure_card` of it
    in ``tz`` (None: the process's local zone)."""
    if dep is None or dep.at <= now:
        return None
    left_s = int((dep.at - now).total_seconds())
    return departure_card(localized(dep.at, tz), round(dep.need_wh / 1000.0, 3), left_s, tz)


def departure_card(
    at: datetime, need_kwh: float, left_s: int, tz: tzinfo | None = None
) -> dict[str, Any]:
    """``at`` (ISO 8601, seconds, the local offset), ``need_kwh``, ``left_s`` and ``words``
    ("07:30 tomorrow (2026-12-02) · 20 kWh · 9 h 30 min left", local in ``tz``). Built from these
    three numbers only, so the cloud relay rebuilds the same words from the wire (with ``at``'s
    own offset as ``tz``)."""
    try:
        now = at - timedelta(seconds=left_s)
    except OverflowError:  # the start of the calendar: say "0 min left" rather than fail
        now = at
    when, left = departure_words(at, now, tz), time_left_words(at, now)
    return {
        "at": at.isoformat(timespec="seconds"),
        "need_kwh": need_kwh,
        "left_s": left_s,
        "words": f"{when} · {need_kwh:g} kWh · {left} left",
    }


def plug_view(
    plug: PlugView,
    setting: PlugSetting | None,
    target: Target | None,
    status: ControllerStatus | None = None,
    departure: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One plug card (``status``: the reason says when the grid's per-phase load is assumed;
    ``departure``: :func:`departure_view` of the departure in force)."""
    mode = setting.mode if setting is not None else None
    return {
        "id": plug.id,
        "label": f"{plug.id} · {plug.plug_label}",
        "status": plug.status.value,
        "status_words": STATUS_WORDS.get(plug.status, plug.status.value),
        "online": plug.online,
        "current_a": [_num(v) for v in plug.current_a],
        "setpoint_a": plug.setpoint_a,
        "reason": (explained_reason(plug.reason, status) if status else plug.reason) or "-",
        "power_w": round(_num(plug.power_w, 0)),
        "energy_kwh": None if plug.energy_wh is None else _num(plug.energy_wh / 1000.0, 2),
        "mode": None if mode is None else mode.value,
        "mode_words": "-" if mode is None else MODE_WORDS[mode],
        "priority": None if setting is None else setting.priority,
        "target": None
        if target is None
        else {"current_a": target.current_a, "valid_until": target.valid_until.isoformat()},
        "error": plug.error,
        "evse_uuid": plug.evse_uuid,
        "departure": departure,
        "departure_words": "none" if departure is None else departure["words"],
    }


def site_view(status: ControllerStatus, ctx: ViewContext) -> dict[str, Any]:
    """Everything the live page shows, JSON-ready."""
    source = "meter_fallback" if status.meter_fallback else ctx.limit_source.value
    age_s = (ctx.now - status.time).total_seconds()
    return {
        "time": status.time.isoformat(),
        "time_text": status.time.strftime("%H:%M:%S UTC"),
        "age_s": round(age_s, 1),
        "stale": status.cycles == 0 or age_s > STALE_AFTER_S,
        "cycles": status.cycles,
        "meter_ok": status.meter_ok,
        "grid_power_w": round(_num(status.grid_power_w, 0)),
        "limit_source": source,
        "limit_source_words": SOURCE_WORDS[source],
        "main_limit_a": [_num(v) for v in status.main_limit_a],
        "circuits": circuit_views(status, ctx.tree),
        "plugs": [
            plug_view(
                p,
                ctx.settings.get(p.id),
                ctx.targets.get(p.evse_uuid) if p.evse_uuid is not None else None,
                status,
                departure_view(ctx.departures.get(p.id), ctx.now, ctx.tz),
            )
            for p in status.plugs
        ],
    }


__all__ = [
    "MODE_WORDS",
    "SOURCE_WORDS",
    "STALE_AFTER_S",
    "STATUS_WORDS",
    "ViewContext",
    "circuit_views",
    "departure_card",
    "departure_view",
    "plug_view",
    "site_view",
]
