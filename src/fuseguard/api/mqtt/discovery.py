"""Home Assistant MQTT discovery: one HA device per edge, one per charger (``via_device``).

Topics are ``<discovery_prefix>/<component>/<node_id>/<object_id>/config`` (retained), with
``node_id = fuseguard_<edge_id>`` and ``object_id``/``node_id`` of ``[a-zA-Z0-9_-]`` only.
Payloads use Home Assistant's documented abbreviations (``stat_t``, ``uniq_id``, ``dev``,
``ids``, ...; ``via_device`` has none). Every entity has a stable ``uniq_id`` (plug entities are
keyed by the plug's uuid, so renaming a charger keeps its history) and is ``unavailable`` when
the edge's last will says ``offline`` (plug entities also when the charger is unreachable).

An entity whose charger left the config is removed by an empty retained config: the edge
subscribes to its own node's config topics and clears every retained one it no longer publishes
(:meth:`Discovery.is_stale`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fuseguard import __version__
from fuseguard.api.mqtt.state import Topics
from fuseguard.api.site_state import LimitSource, safe_id
from fuseguard.config import FuseguardConfig
from fuseguard.config.controller import plug_ids
from fuseguard.control.departure_time import HHMM
from fuseguard.control.plug_settings import NEED_MAX_WH
from fuseguard.model.status import ChargeMode, PlugStatus

ORIGIN = {"name": "fuseguard", "sw": __version__}
_PHASES = ("l1", "l2", "l3")
#: What Home Assistant's text entity accepts (and shows) for the departure: ``H:MM``/``HH:MM``,
#: or empty (clears; also the state when there is none). HA checks the state against it too.
DEPARTURE_TIME_PATTERN = f"^$|^{HHMM.pattern}$"
#: An empty state payload means "none": HA's number ignores an empty payload and its timestamp
#: sensor logs it as invalid, both take ``None`` as unknown.
EMPTY_IS_NONE = "{{ value if value else 'None' }}"


def _current(name: str, stat_t: str) -> dict[str, Any]:
    return {
        "name": name,
        "stat_t": stat_t,
        "dev_cla": "current",
        "stat_cla": "measurement",
        "unit_of_meas": "A",
    }


def _power(name: str, stat_t: str) -> dict[str, Any]:
    return {
        "name": name,
        "stat_t": stat_t,
        "dev_cla": "power",
        "stat_cla": "measurement",
        "unit_of_meas": "W",
    }


def _enum(name: str, stat_t: str, options: Sequence[str]) -> dict[str, Any]:
    return {"name": name, "stat_t": stat_t, "dev_cla": "enum", "ops": list(options)}


def _problem(name: str, stat_t: str) -> dict[str, Any]:
    return {
        "name": name,
        "stat_t": stat_t,
        "dev_cla": "problem",
        "pl_on": "true",
        "pl_off": "false",
    }


@dataclass(frozen=True, slots=True)
class Entity:
    """One discovered entity."""

    component: str  # sensor, binary_sensor, number, select, text, button
    object_id: str
    config: dict[str, Any]


@dataclass(eq=False)
class Discovery:
    """The discovery configs of one edge (see module docstring)."""

    config: FuseguardConfig
    topics: Topics
    keys: Mapping[str, str]  # plug id -> topic key (the state topics' own, site-wide)
    prefix: str = "homeassistant"
    writable_plug_settings: bool = False
    _entities: list[Entity] = field(init=False)
    _messages: dict[str, bytes] = field(init=False)

    def __post_init__(self) -> None:
        self.node_id = safe_id(f"fuseguard_{self.config.site.edge_id}")
        self.edge_ident = self.node_id
        self._entities = self._build()
        self._messages = {
            self.topic(e): json.dumps(e.config, separators=(",", ":")).encode()
            for e in self._entities
        }

    @property
    def birth_topic(self) -> str:
        """Home Assistant's status topic (``online`` after HA starts: republish)."""
        return f"{self.prefix}/status"

    @property
    def node_filter(self) -> str:
        """Every config topic of this edge's node (to find stale retained ones)."""
        return f"{self.prefix}/+/{self.node_id}/+/config"

    def topic(self, entity: Entity) -> str:
        """The config topic of ``entity``."""
        return f"{self.prefix}/{entity.component}/{self.node_id}/{entity.object_id}/config"

    def messages(self) -> dict[str, bytes]:
        """Config topic -> JSON payload, for every entity."""
        return dict(self._messages)

    def is_stale(self, topic: str) -> bool:
        """A config topic of this node that is not (any longer) published."""
        parts = topic.split("/")
        ours = (
            topic.startswith(self.prefix + "/")
            and topic.endswith("/config")
            and len(parts) >= 4
            and parts[-3] == self.node_id
        )
        return ours and topic not in self._messages

    # --- building --------------------------------------------------------------------------------

    def _edge_device(self) -> dict[str, Any]:
        site = self.config.site
        return {
            "ids": [self.edge_ident],
            "name": site.name or f"fuseguard {site.edge_id}",
            "mf": "fuseguard",
            "mdl": "fuseguard edge",
            "sw": __version__,
        }

    def _entity(
        self, component: str, object_id: str, body: dict[str, Any], dev: dict[str, Any]
    ) -> Entity:
        cfg = {
            **body,
            "uniq_id": f"{self.node_id}_{object_id}",
            "avty_t": self.topics.availability,
            "dev": dev,
            "o": ORIGIN,
        }
        return Entity(component, object_id, cfg)

    def _build(self) -> list[Entity]:
        t = self.topics
        dev = self._edge_device()
        out: list[Entity] = []
        for phase in _PHASES:
            up = phase.upper()
            for obj, name, topic in (
                ("grid_current", "Grid current", "grid_current_a"),
                ("limit", "Limit", "limit_a"),
                ("non_ev_current", "Non-EV current", "non_ev_current_a"),
            ):
                body = _current(f"{name} {up}", f"{t.site(topic)}/{phase}")
                out.append(self._entity("sensor", f"{obj}_{phase}", body, dev))
        out.append(
            self._entity("sensor", "grid_power", _power("Grid power", t.site("grid_power_w")), dev)
        )
        sources = [s.value for s in LimitSource]
        out.append(
            self._entity(
                "sensor",
                "limit_source",
                _enum("Limit source", t.site("limit_source"), sources),
                dev,
            )
        )
        out.append(
            self._entity(
                "binary_sensor",
                "meter_fallback",
                _problem("Meter fallback", t.site("meter_fallback")),
                dev,
            )
        )
        out.append(
            self._entity(
                "binary_sensor",
                "ems_fallback",
                _problem("EMS fallback", t.site("ems_fallback")),
                dev,
            )
        )
        number = {
            **_current("EMS current limit", t.site("ems_limit_a")),
            "cmd_t": t.command("ems_limit"),
            "min": 0,
            "max": float(self.config.site.main_fuse.max),
            "step": 0.1,
            "mode": "box",
        }
        del number["stat_cla"]
        out.append(self._entity("number", "ems_limit", number, dev))
        for charger in self.config.chargers:
            out.extend(self._charger(charger))
        return out

    def _charger(self, charger: Any) -> list[Entity]:
        t = self.topics
        dev = {
            "ids": [f"{self.node_id}_{charger.evse_uuid}"],
            "name": charger.id,
            "mf": "fuseguard",
            "mdl": "Bender CC612/613" if charger.driver == "bender" else "CLEMAP edge (cascaded)",
            "via_device": self.edge_ident,
        }
        pids = plug_ids(charger)
        keys = self.keys
        several = len(pids) > 1
        out: list[Entity] = []
        for pid, plug in zip(pids, charger.plugs, strict=True):
            key = keys[pid]
            label = f"{plug.label} " if several else ""
            statuses = [s.value for s in PlugStatus]
            reason = {"name": f"{label}Reason", "stat_t": t.plug(key, "reason")}
            bodies: list[tuple[str, str, dict[str, Any]]] = [
                ("sensor", "status", _enum(f"{label}Status", t.plug(key, "status"), statuses)),
                ("sensor", "setpoint", _current(f"{label}Setpoint", t.plug(key, "setpoint_a"))),
                ("sensor", "power", _power(f"{label}Power", t.plug(key, "power_w"))),
                ("sensor", "energy", {
                    "name": f"{label}Session energy",
                    "stat_t": t.plug(key, "energy_kwh"),
                    "dev_cla": "energy",
                    "stat_cla": "total_increasing",
                    "unit_of_meas": "kWh",
                }),
                ("sensor", "reason", {**reason, "ent_cat": "diagnostic"}),
            ]  # fmt: skip
            for phase in _PHASES:
                body = _current(
                    f"{label}Current {phase.upper()}", f"{t.plug(key, 'current_a')}/{phase}"
                )
                bodies.append(("sensor", f"current_{phase}", body))
            bodies.extend(self._plug_settings(key, label))
            for component, suffix, body in bodies:
                object_id = f"{safe_id(plug.uuid)}_{suffix}"
                ent = self._entity(component, object_id, body, dev)
                del ent.config["avty_t"]
                ent.config["avty"] = [{"t": t.availability}, {"t": t.plug(key, "availability")}]
                ent.config["avty_mode"] = "all"
                out.append(ent)
        return out

    def _plug_settings(self, key: str, label: str) -> list[tuple[str, str, dict[str, Any]]]:
        t = self.topics
        modes = [m.value for m in ChargeMode]
        if not self.writable_plug_settings:
            return [
                ("sensor", "mode", _enum(f"{label}Mode", t.plug(key, "mode"), modes)),
                ("sensor", "priority", {"name": f"{label}Priority",
                                        "stat_t": t.plug(key, "priority")}),
            ]  # fmt: skip
        return [
            ("select", "mode", {
                "name": f"{label}Mode", "stat_t": t.plug(key, "mode"),
                "cmd_t": t.plug_command(key, "mode"), "ops": modes,
            }),
            ("number", "priority", {
                "name": f"{label}Priority", "stat_t": t.plug(key, "priority"),
                "cmd_t": t.plug_command(key, "priority"), "min": -100, "max": 100, "step": 1,
                "mode": "box",
            }),
            ("text", "departure_time", {
                "name": f"{label}Departure", "stat_t": t.plug(key, "departure_time"),
                "cmd_t": t.plug_command(key, "departure_time"),
                "pattern": DEPARTURE_TIME_PATTERN, "max": 5,
            }),
            ("number", "departure_need", {
                "name": f"{label}Energy need", "stat_t": t.plug(key, "departure_need_kwh"),
                "cmd_t": t.plug_command(key, "departure_need"), "val_tpl": EMPTY_IS_NONE,
                "min": 0.1, "max": NEED_MAX_WH / 1000.0, "step": 0.1, "mode": "box",
                "dev_cla": "energy", "unit_of_meas": "kWh",
            }),
            ("button", "departure_clear", {
                "name": f"{label}Clear departure", "cmd_t": t.plug_command(key, "departure"),
                "pl_prs": "null",
            }),
            ("sensor", "departure_at", {
                "name": f"{label}Departure", "stat_t": t.plug(key, "departure_at"),
                "dev_cla": "timestamp", "val_tpl": EMPTY_IS_NONE,
            }),
        ]  # fmt: skip


__all__ = ["DEPARTURE_TIME_PATTERN", "EMPTY_IS_NONE", "ORIGIN", "Discovery", "Entity"]
