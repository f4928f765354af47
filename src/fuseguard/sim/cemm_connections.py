"""Which connections (aliases) a virtual CEMM has and what each one meters (no I/O).

A connection set is a comma-separated list of aliases, each optionally with the role it meters
(``alias=role``): ``p1,pulse-1,mb1,usage`` (the default) or ``emucs-usb,mb3=pv,s01=pv,pulse-2=gas``.
Every alias family of the Local Open API is accepted (``devices.md`` §5, seed 004):

========================  ===========  =================  =========================================
Family                    Aliases      Default role       Channels (realtime ``data`` / ``totals``)
========================  ===========  =================  =========================================
smart meter               ``p1``, ``p1-usb``, ``emucs``, ``emucs-usb``, ``han``, ``dlms-usb``
                                       ``grid``           t1-t4, electric_power, rate, gas /
                                                          electric_energy(_high), t1-t4, gas
gas register              ``p1-gas``, ``emucs-gas``
                                       ``gas``            gas / gas
S0 pulse (electricity)    ``s01``-``s03``
                                       ``pv``             t1, electric_power / t1, electric_energy
pulse (water, gas)        ``pulse-1``-``pulse-3``
                                       ``water``          flow (L/min) / volume (m³)
Modbus kWh meter          ``mb1``-``mb247``
                                       ``pv``             t1, t2, electric_power / t1-t4,
                                                          electric_energy(_high)
usage                     ``usage``    ``usage``          electric_power / electric_energy
========================  ===========  =================  =========================================

Roles: ``grid`` = the site's grid connection (signed, negative = feed-in); ``pv`` = the PV plant
(a Modbus meter measures production negative, as the site sign convention; an S0 pulse counter has
no direction and counts production positive); ``usage`` = household consumption (grid + PV,
never negative); ``water`` = a household water draw profile (L/min); ``gas`` = the constant gas
draw (a gas-register alias, or a pulse meter counting gas in L/min).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo

from fuseguard.model.clock import Clock
from fuseguard.wire.cemm import ELECTRIC_KINDS, AliasKind, alias_kind

#: The default connection set: a P1 meter, a water pulse meter, a PV meter on Modbus 1, usage.
DEFAULT_CONNECTIONS: Final = ("p1", "pulse-1", "mb1", "usage")
#: Most connections one virtual CEMM carries (a real box has a handful of ports).
MAX_CONNECTIONS: Final = 32


class Role(StrEnum):
    """What a connection meters."""

    GRID = "grid"
    PV = "pv"
    USAGE = "usage"
    WATER = "water"
    GAS = "gas"


_DEFAULT_ROLE: Final[dict[AliasKind, Role]] = {
    AliasKind.SMART_METER: Role.GRID,
    AliasKind.GAS: Role.GAS,
    AliasKind.S0: Role.PV,
    AliasKind.PULSE: Role.WATER,
    AliasKind.MODBUS: Role.PV,
    AliasKind.USAGE: Role.USAGE,
}
_ELECTRIC_ROLES: Final = frozenset({Role.GRID, Role.PV, Role.USAGE})
#: Physical port per alias family (``/io`` ``port``): P1 on 3, Modbus on 4, pulse inputs on
#: connection 2 (``s01``/``pulse-1``) and connection 1.x (``s02``/``s03``, ``pulse-2``/``pulse-3``).
_PORTS: Final[dict[str, int]] = {
    "s01": 2,
    "pulse-1": 2,
    "s02": 1,
    "pulse-2": 1,
    "s03": 1,
    "pulse-3": 1,
}
_KIND_PORT: Final[dict[AliasKind, int]] = {
    AliasKind.SMART_METER: 3,
    AliasKind.GAS: 3,
    AliasKind.MODBUS: 4,
    AliasKind.USAGE: 0,
}


@dataclass(frozen=True, slots=True)
class ConnectionSpec:
    """One connection: the alias and what it meters."""

    alias: str
    role: Role

    @property
    def kind(self) -> AliasKind:
        """The alias family."""
        return alias_kind(self.alias)

    @property
    def port(self) -> int:
        """The physical port ``/io`` reports."""
        return _PORTS.get(self.alias, _KIND_PORT.get(self.kind, 0))


def _allowed(kind: AliasKind, role: Role) -> bool:
    if kind in ELECTRIC_KINDS:
        return role in _ELECTRIC_ROLES
    if kind is AliasKind.PULSE:
        return role in (Role.WATER, Role.GAS)
    return role is Role.GAS


def parse_connections(spec: str | Iterable[str]) -> list[ConnectionSpec]:
    """``"p1,pulse-1,mb1=pv,usage"`` (or a list of items) -> connections; ValueError if invalid."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[ConnectionSpec] = []
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        alias, _, role_name = item.partition("=")
        alias = alias.strip()
        kind = alias_kind(alias)  # ValueError for a name a CEMM does not use
        try:
            role = Role(role_name.strip()) if role_name else _DEFAULT_ROLE[kind]
        except ValueError:
            roles = ", ".join(r.value for r in Role)
            msg = f"connection {item!r}: unknown role {role_name!r} ({roles})"
            raise ValueError(msg) from None
        if not _allowed(kind, role):
            msg = f"connection {item!r}: a {kind.value} alias cannot meter {role.value}"
            raise ValueError(msg)
        if any(c.alias == alias for c in out):
            msg = f"connection {alias!r} given twice"
            raise ValueError(msg)
        out.append(ConnectionSpec(alias, role))
    if not out:
        msg = "a CEMM needs at least one connection"
        raise ValueError(msg)
    if len(out) > MAX_CONNECTIONS:
        msg = f"at most {MAX_CONNECTIONS} connections, got {len(out)}"
        raise ValueError(msg)
    return out


@dataclass(slots=True)
class WaterDraw:
    """A household water draw in L/min from local clock time (showers, taps, a dishwasher).

    Deterministic: 8 L/min showers 07:00-07:10 and 21:00-21:08, 6 L/min taps for the first two
    minutes of every hour from 07:00 to 22:00, otherwise nothing.
    """

    clock: Clock
    tz: ZoneInfo

    def flow_l_min(self) -> float:
        """Current flow."""
        local = self.clock.now().astimezone(self.tz)
        minute = local.hour * 60 + local.minute
        if 420 <= minute < 430 or 1260 <= minute < 1268:
            return 8.0
        if 7 <= local.hour <= 22 and local.minute < 2:
            return 6.0
        return 0.0


@dataclass(frozen=True, slots=True)
class Sources:
    """The physical quantities a connection can meter."""

    grid_w: Callable[[], float]
    pv_w: Callable[[], float]  # production, >= 0
    water_l_min: Callable[[], float]
    gas_m3_per_h: float = 0.0

    def for_role(self, role: Role, kind: AliasKind) -> Callable[[], float]:
        """The signed source of one connection (W, or L/min for pulse meters)."""
        if role is Role.GRID:
            return self.grid_w
        if role is Role.PV:
            if kind is AliasKind.S0:
                return lambda: abs(self.pv_w())
            return lambda: -self.pv_w()
        if role is Role.USAGE:
            return lambda: max(0.0, self.grid_w() + self.pv_w())
        if role is Role.WATER:
            return self.water_l_min
        gas_l_min = self.gas_m3_per_h * 1000.0 / 60.0
        return lambda: gas_l_min


__all__ = [
    "DEFAULT_CONNECTIONS",
    "MAX_CONNECTIONS",
    "ConnectionSpec",
    "Role",
    "Sources",
    "WaterDraw",
    "parse_connections",
]
