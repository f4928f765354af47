"""CEMM Local Open API wire format, shared by the driver and the virtual CEMM (no I/O).

``devices.md`` section 5: paths, the UDP discovery exchange, alias names and the channels each
alias kind carries, and the JSON shape of every response as a pydantic model. The driver
(:mod:`fuseguard.devices.cemm`) parses answers with these models and the virtual device
(:mod:`fuseguard.sim.cemm`) builds its answers through the same models, so the two cannot drift.

The models are strict: numbers are JSON numbers (a boolean or a string is not), finite (``NaN``
and infinities are refused), timestamps are non-negative integer milliseconds, strings and
collections are bounded.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Final

from pydantic import AllowInfNan, BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

#: Base path of the Local Open API.
API: Final = "/open-api/v1"
#: UDP port of the discovery broadcast and its payload.
DISCOVERY_PORT: Final = 9777
DISCOVERY_QUERY: Final = b"cemm_query"

#: Latest ``time`` (epoch seconds) a history request may name: 9999-12-31T23:59:59Z.
MAX_TIME_S: Final = 253_402_300_799
MAX_TIMESTAMP_MS: Final = MAX_TIME_S * 1000 + 999
#: Most samples one history series may carry (a year of minutes is far beyond any answer).
MAX_SERIES_LENGTH: Final = 1 << 16


class Period(StrEnum):
    """The three history resolutions of ``/<alias>/data/<period>/``."""

    DAY = "day"
    MONTH = "month"
    YEAR = "year"


# --- aliases and channels -----------------------------------------------------------------------

SMART_METER_ALIASES: Final = ("p1", "p1-usb", "emucs", "emucs-usb", "han", "dlms-usb")
GAS_ALIASES: Final = ("p1-gas", "emucs-gas")
S0_ALIASES: Final = ("s01", "s02", "s03")
PULSE_ALIASES: Final = ("pulse-1", "pulse-2", "pulse-3")
USAGE_ALIAS: Final = "usage"
_MB_ALIAS = re.compile(r"^mb([0-9]{1,3})$")

#: Channel names the driver reads.
POWER_CHANNEL: Final = "electric_power"
IMPORT_CHANNELS: Final = ("t1", "t2")
EXPORT_CHANNELS: Final = ("t3", "t4")


class AliasKind(StrEnum):
    """Which channel set an alias serves."""

    SMART_METER = "smart_meter"
    GAS = "gas"
    MODBUS = "modbus"
    S0 = "s0"
    PULSE = "pulse"
    USAGE = "usage"


#: Realtime channels per kind: (``data``, ``totals``).
CHANNELS: Final[dict[AliasKind, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    AliasKind.SMART_METER: (
        ("t1", "t2", "t3", "t4", "electric_power", "rate", "gas"),
        ("electric_energy", "electric_energy_high", "t1", "t2", "t3", "t4", "gas"),
    ),
    AliasKind.GAS: (("gas",), ("gas",)),
    AliasKind.MODBUS: (
        ("t1", "t2", "electric_power"),
        ("t1", "t2", "electric_energy", "electric_energy_high", "t3", "t4"),
    ),
    AliasKind.S0: (("t1", "electric_power"), ("t1", "electric_energy")),
    AliasKind.PULSE: (("flow",), ("volume",)),
    AliasKind.USAGE: (("electric_power",), ("electric_energy",)),
}
#: The channel the day history carries, per kind.
HISTORY_CHANNEL: Final[dict[AliasKind, str]] = {
    AliasKind.SMART_METER: "electric_power",
    AliasKind.GAS: "gas",
    AliasKind.MODBUS: "electric_power",
    AliasKind.S0: "electric_power",
    AliasKind.PULSE: "flow",
    AliasKind.USAGE: "electric_power",
}
#: The channel month/year history carries (energy or volume per period), per kind.
PERIOD_CHANNEL: Final[dict[AliasKind, str]] = {
    AliasKind.SMART_METER: "electric_energy",
    AliasKind.GAS: "gas",
    AliasKind.MODBUS: "electric_energy",
    AliasKind.S0: "electric_energy",
    AliasKind.PULSE: "volume",
    AliasKind.USAGE: "electric_energy",
}
#: The ``type`` of an alias in ``/io``, per kind.
IO_TYPE: Final[dict[AliasKind, str]] = {
    AliasKind.SMART_METER: "p1",
    AliasKind.GAS: "gas",
    AliasKind.MODBUS: "modbus",
    AliasKind.S0: "s0",
    AliasKind.PULSE: "pulse",
    AliasKind.USAGE: "usage",
}


def alias_kind(alias: str) -> AliasKind:
    """Kind of a CEMM alias name; ValueError for names a CEMM does not use."""
    if alias in SMART_METER_ALIASES:
        return AliasKind.SMART_METER
    if alias in GAS_ALIASES:
        return AliasKind.GAS
    if alias in S0_ALIASES:
        return AliasKind.S0
    if alias in PULSE_ALIASES:
        return AliasKind.PULSE
    if alias == USAGE_ALIAS:
        return AliasKind.USAGE
    m = _MB_ALIAS.fullmatch(alias)
    if m and 1 <= int(m.group(1)) <= 247:
        return AliasKind.MODBUS
    msg = f"{alias!r} is not a CEMM alias"
    raise ValueError(msg)


#: Alias kinds that meter electricity (``electric_power`` in W): usable as grid or PV meter.
ELECTRIC_KINDS: Final = frozenset(
    {AliasKind.SMART_METER, AliasKind.MODBUS, AliasKind.S0, AliasKind.USAGE}
)


def electric_alias(alias: str) -> str:
    """``alias`` when it is a CEMM alias that carries ``electric_power``; ValueError otherwise.

    Every electricity family is accepted: the smart meters (``p1``, ``p1-usb``, ``emucs``,
    ``emucs-usb``, ``han``, ``dlms-usb``), the S0 pulse meters ``s01``-``s03``, the Modbus meters
    ``mb1``-``mb247`` and ``usage``. Water/gas aliases (``pulse-N``, ``p1-gas``) are refused.
    """
    kind = alias_kind(alias)
    if kind not in ELECTRIC_KINDS:
        msg = f"CEMM alias {alias!r} is a {kind.value} meter, not an electricity meter"
        raise ValueError(msg)
    return alias


# --- JSON shapes ----------------------------------------------------------------------------------

#: A finite JSON number; an integer stays an integer (the device sends ``412``, not ``412.0``).
Number = StrictInt | Annotated[StrictFloat, AllowInfNan(False)]
TimestampMs = Annotated[StrictInt, Field(ge=0, le=MAX_TIMESTAMP_MS)]
Name = Annotated[StrictStr, Field(max_length=64)]
Text = Annotated[StrictStr, Field(max_length=128)]
#: ``[timestamp_ms, value]``; ``[0, 0]`` is a channel without data.
Pair = tuple[TimestampMs, Number]
#: A history sample; the value is ``null`` only for the day's 23:59:59 sentinel.
HistoryPair = tuple[TimestampMs, Number | None]


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)


class DeviceInfo(_Wire):
    """``data`` of ``GET /open-api/v1/``."""

    mac: Text
    name: Text
    type: Text
    version: Text
    core: Text


class RootBody(_Wire):
    """``GET /open-api/v1/``."""

    data: DeviceInfo


class IoEntry(_Wire):
    """One connection in ``GET /open-api/v1/io`` (``io_id`` is an integer here)."""

    io_id: Annotated[StrictInt, Field(ge=0, le=1_000_000)]
    port: Annotated[StrictInt, Field(ge=0, le=65_535)]
    type: Name
    alias: Name


class IoBody(_Wire):
    """``GET /open-api/v1/io``."""

    data: Annotated[list[IoEntry], Field(max_length=1024)]


class RealtimeBody(_Wire):
    """``GET /open-api/v1/<alias>/realtime/``: ``totals`` is absent in the doc example."""

    data: Annotated[dict[Name, Pair], Field(max_length=64)]
    totals: Annotated[dict[Name, Pair], Field(max_length=64)] = Field(default_factory=dict)


class HistoryBody(_Wire):
    """``GET /open-api/v1/<alias>/data/<period>/``; ``io_id`` is a string here, newest first."""

    io_id: Annotated[StrictStr, Field(max_length=16)] | Annotated[StrictInt, Field(ge=0)]
    time: Annotated[StrictInt, Field(ge=0, le=MAX_TIME_S)]
    data: Annotated[
        dict[Name, Annotated[list[HistoryPair], Field(max_length=MAX_SERIES_LENGTH)]],
        Field(max_length=16),
    ]


class ErrorBody(_Wire):
    """An error answer of the virtual device (real devices document none)."""

    error: Annotated[StrictStr, Field(max_length=200)]
    status: StrictInt


class DiscoveryReply(_Wire):
    """One UDP discovery datagram (``init_state`` is absent on old cores)."""

    ip: Name
    mac: Name
    version: Name
    type: Name
    init_state: Annotated[StrictInt, Field(ge=0, le=255)] = 0


__all__ = [
    "API",
    "CHANNELS",
    "DISCOVERY_PORT",
    "DISCOVERY_QUERY",
    "ELECTRIC_KINDS",
    "EXPORT_CHANNELS",
    "GAS_ALIASES",
    "HISTORY_CHANNEL",
    "IMPORT_CHANNELS",
    "IO_TYPE",
    "MAX_TIMESTAMP_MS",
    "MAX_TIME_S",
    "PERIOD_CHANNEL",
    "POWER_CHANNEL",
    "PULSE_ALIASES",
    "S0_ALIASES",
    "SMART_METER_ALIASES",
    "USAGE_ALIAS",
    "AliasKind",
    "DeviceInfo",
    "DiscoveryReply",
    "ErrorBody",
    "HistoryBody",
    "HistoryPair",
    "IoBody",
    "IoEntry",
    "Number",
    "Pair",
    "Period",
    "RealtimeBody",
    "RootBody",
    "alias_kind",
    "electric_alias",
]
