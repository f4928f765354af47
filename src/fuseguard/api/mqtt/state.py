"""Topic names and the state messages of one edge (``docs/mqtt.md`` lists every one).

Everything lives below ``<topic_prefix>/<edge_id>``: ``status`` (``online``/``offline``, the last
will), ``site/...`` and ``plug/<plug>/...`` (state, retained), ``set/...`` and
``plug/<plug>/set/...`` (commands) and ``result`` (the answer to every command). Payloads are
plain UTF-8 text: numbers in SI-style units named in the topic (``_a``, ``_w``, ``_kwh``),
booleans as ``true``/``false``, enums as their lower-case values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo

from fuseguard.api.site_state import explained_reason, limit_source
from fuseguard.control.departure_time import localized
from fuseguard.control.flex import FlexManagement
from fuseguard.control.types import ChargerSpec, ControllerStatus
from fuseguard.model.circuits import MAIN
from fuseguard.model.phases import Phase, Phases

ONLINE = "online"
OFFLINE = "offline"
_PHASES = tuple(p.value.lower() for p in Phase)


@dataclass(frozen=True, slots=True)
class Topics:
    """Topic names below ``base`` (= ``<topic_prefix>/<edge_id>``)."""

    base: str

    @property
    def availability(self) -> str:
        """``online`` / ``offline`` (retained; the last will)."""
        return f"{self.base}/status"

    @property
    def result(self) -> str:
        """The answer to every command (not retained)."""
        return f"{self.base}/result"

    def site(self, name: str) -> str:
        """A site state topic."""
        return f"{self.base}/site/{name}"

    def plug(self, key: str, name: str) -> str:
        """A plug state topic."""
        return f"{self.base}/plug/{key}/{name}"

    def command(self, name: str) -> str:
        """A site command topic (``set/ems_limit``, ``set/keep_alive``)."""
        return f"{self.base}/set/{name}"

    def plug_command(self, key: str, name: str) -> str:
        """A plug command topic (``plug/<key>/set/mode``, ``.../priority``)."""
        return f"{self.base}/plug/{key}/set/{name}"

    @property
    def command_filters(self) -> tuple[str, ...]:
        """What the edge subscribes to for commands."""
        return (f"{self.base}/set/+", f"{self.base}/plug/+/set/+")


@dataclass(frozen=True, slots=True)
class DepartureView:
    """A plug's departure as published: the one in force, or the pending half of one (the
    other half None), or none (both None)."""

    at: datetime | None = None
    need_wh: float | None = None


@dataclass(frozen=True, slots=True)
class PlugSettingsView:
    """Mode and priority of a plug as published, and its departure (None: the edge has no
    runtime plug settings, so no departure topics)."""

    mode: str
    priority: int
    departure: DepartureView | None = None


def amps(value: float) -> str:
    """Current with 0.1 A resolution (finer is meter noise and only costs traffic)."""
    return f"{value:.1f}"


def watts(value: float) -> str:
    """Power with 1 W resolution."""
    return f"{value:.0f}"


def flag(value: bool) -> str:
    """``true`` / ``false``."""
    return "true" if value else "false"


def departure_payloads(view: DepartureView, tz: tzinfo | None = None) -> dict[str, str]:
    """``departure_at`` (ISO 8601 with the local offset, seconds), ``departure_time`` (``HH:MM``
    local) and ``departure_need_kwh`` (kWh, 1 Wh resolution); ``""`` for a missing half. Local is
    ``tz``, None: the process's local zone."""
    local = localized(view.at, tz) if view.at is not None else None
    return {
        "departure_at": local.isoformat(timespec="seconds") if local is not None else "",
        "departure_time": f"{local:%H:%M}" if local is not None else "",
        "departure_need_kwh": f"{view.need_wh / 1000.0:.3f}" if view.need_wh is not None else "",
    }


def _phases(out: dict[str, str], topic: str, values: Phases) -> None:
    for phase, value in zip(_PHASES, values, strict=True):
        out[f"{topic}/{phase}"] = amps(value)


def site_messages(
    topics: Topics, status: ControllerStatus, flex: FlexManagement | None
) -> dict[str, str]:
    """Site state: grid current and power, limit and its source, non-EV load, EMS settings."""
    out: dict[str, str] = {}
    _phases(out, topics.site("grid_current_a"), status.grid_current_a)
    out[topics.site("grid_power_w")] = watts(status.grid_power_w)
    _phases(out, topics.site("limit_a"), status.main_limit_a)
    non_ev = status.non_ev_load_a.get(MAIN)
    if non_ev is not None:
        _phases(out, topics.site("non_ev_current_a"), non_ev)
    out[topics.site("limit_source")] = limit_source(flex).value
    out[topics.site("meter_ok")] = flag(status.meter_ok)
    out[topics.site("meter_fallback")] = flag(status.meter_fallback)
    out[topics.site("ems_fallback")] = flag(status.flex_fallback)
    if flex is not None:
        settings = flex.settings()
        out[topics.site("ems_active")] = flag(settings.activation)
        out[topics.site("ems_limit_a")] = amps(settings.current_limit_a)
        out[topics.site("ems_fallback_limit_a")] = amps(settings.fallback_current_limit_a)
        out[topics.site("fuse_a")] = amps(flex.fuse_a)
    return out


def plug_messages(
    topics: Topics,
    status: ControllerStatus,
    keys: Mapping[str, str],
    settings: Mapping[str, PlugSettingsView],
    tz: tzinfo | None = None,
) -> dict[str, str]:
    """Per plug: status, availability, currents, setpoint, power, energy, mode, priority, reason
    and (with runtime plug settings) the departure, its time of day in ``tz``."""
    out: dict[str, str] = {}
    for plug in status.plugs:
        key = keys.get(plug.id)
        if key is None:
            continue
        out[topics.plug(key, "status")] = plug.status.value
        out[topics.plug(key, "availability")] = ONLINE if plug.online else OFFLINE
        _phases(out, topics.plug(key, "current_a"), plug.current_a)
        out[topics.plug(key, "setpoint_a")] = str(plug.setpoint_a)
        out[topics.plug(key, "power_w")] = watts(plug.power_w)
        if plug.energy_wh is not None:
            out[topics.plug(key, "energy_kwh")] = f"{plug.energy_wh / 1000.0:.3f}"
        out[topics.plug(key, "reason")] = explained_reason(plug.reason, status) or "-"
        view = settings.get(plug.id)
        if view is not None:
            out[topics.plug(key, "mode")] = view.mode
            out[topics.plug(key, "priority")] = str(view.priority)
            if view.departure is not None:
                for name, payload in departure_payloads(view.departure, tz).items():
                    out[topics.plug(key, name)] = payload
    return out


def settings_from_specs(specs: Mapping[str, ChargerSpec]) -> dict[str, PlugSettingsView]:
    """Mode and priority per plug id, as configured."""
    return {pid: PlugSettingsView(spec.mode.value, spec.priority) for pid, spec in specs.items()}


__all__ = [
    "OFFLINE",
    "ONLINE",
    "DepartureView",
    "PlugSettingsView",
    "Topics",
    "amps",
    "departure_payloads",
    "flag",
    "plug_messages",
    "settings_from_specs",
    "site_messages",
    "watts",
]
