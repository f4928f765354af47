"""What the integrations (Prometheus metrics, MQTT) derive from the controller's status.

One place for the few figures that are not read straight off a
:class:`~fuseguard.control.types.ControllerStatus`: the current through every circuit, the source
of the limit in force, and topic/label-safe plug keys. Pure functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from enum import StrEnum

from fuseguard.control.flex import FlexManagement
from fuseguard.control.types import ControllerStatus, PlugView
from fuseguard.model.circuits import MAIN, CircuitTree
from fuseguard.model.phases import Phases

_ZERO = Phases.uniform(0.0)
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class LimitSource(StrEnum):
    """Where the main-circuit limit in force comes from."""

    FUSE = "fuse"  # no EMS limit active (or the EMS limit is above the fuse)
    EMS = "ems"  # the EMS CurrentLimit (flex management), watchdog alive
    EMS_FALLBACK = "ems_fallback"  # the EMS went silent: FallbackCurrentLimit


#: said after a plug's reason that names a phase of the main circuit while the grid meter gives
#: total power only: the per-phase load the allocator limits is then an assumption
#: (``[meter] phase_assumption``), not a measurement
TOTAL_POWER_NOTE = "(per-phase load assumed: the grid meter gives total power only)"


def total_power_only(status: ControllerStatus) -> bool:
    """True when the grid meter's sample has no per-phase currents (a CEMM P1 meter)."""
    sample = status.meter_sample
    return sample is not None and sample.current_a is None


def explained_reason(reason: str, status: ControllerStatus) -> str:
    """``reason`` with :data:`TOTAL_POWER_NOTE` where it names a phase of the main circuit
    (``limited by circuit main on L2``, ``paused: less than 6 A available on circuit main on
    L1``) and the grid meter gives total power only."""
    if f"circuit {MAIN} on L" in reason and total_power_only(status):
        return f"{reason} {TOTAL_POWER_NOTE}"
    return reason


def limit_source(flex: FlexManagement | None) -> LimitSource:
    """The source of the main-circuit limit right now."""
    if flex is None:
        return LimitSource.FUSE
    settings = flex.settings()
    if not settings.activation:
        return LimitSource.FUSE
    if flex.in_fallback:
        return LimitSource.EMS_FALLBACK
    return LimitSource.EMS if settings.current_limit_a < flex.fuse_a else LimitSource.FUSE


def circuit_currents(status: ControllerStatus, tree: CircuitTree) -> dict[str, Phases]:
    """Grid-phase current through every circuit.

    ``main`` is what the meter measures; a sub-circuit is its non-EV load plus the measured draw
    of every plug in its subtree (the same sum the allocator limits).
    """
    out: dict[str, Phases] = {}
    for circuit_id in tree.ids:
        if circuit_id == MAIN:
            out[MAIN] = status.grid_current_a
            continue
        total = status.non_ev_load_a.get(circuit_id, _ZERO)
        for plug in status.plugs:
            if plug.circuit in tree and tree.in_subtree(plug.circuit, circuit_id):
                total = total + plug.grid_current_a
        out[circuit_id] = total
    return out


def plug_keys(plug_ids: Iterable[str]) -> Mapping[str, str]:
    """A topic level / HA object id per plug id (``wb1/2`` -> ``wb1_2``), unique.

    Plug ids may contain ``/`` (second connector of a charger), which is a topic separator; every
    character outside ``[A-Za-z0-9_-]`` becomes ``_``, and a collision gets a numeric suffix.
    """
    keys: dict[str, str] = {}
    used: set[str] = set()
    for pid in plug_ids:
        base = _UNSAFE.sub("_", pid) or "plug"
        key, n = base, 2
        while key in used:
            key, n = f"{base}_{n}", n + 1
        used.add(key)
        keys[pid] = key
    return keys


def safe_id(text: str) -> str:
    """``text`` with every character outside ``[A-Za-z0-9_-]`` replaced by ``_``."""
    return _UNSAFE.sub("_", text) or "_"


def plug_failed(plug: PlugView) -> bool:
    """The plug's last read (or write) failed, or it is not reachable."""
    return (not plug.online) or plug.error is not None


__all__ = [
    "LimitSource",
    "circuit_currents",
    "limit_source",
    "plug_failed",
    "plug_keys",
    "safe_id",
]
