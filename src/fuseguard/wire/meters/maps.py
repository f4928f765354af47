"""Modbus meter register maps as data: one TOML file per model, validated by pydantic.

A map names, for every quantity fuseguard reads, the register, the function code (3 = holding,
4 = input registers), the number type, the word order, the scale (``raw * scale`` is the value in
``unit``) and the phase. The driver (:mod:`fuseguard.devices.meters`) and the virtual meters
(:mod:`fuseguard.sim.meters`) both read these maps through :mod:`fuseguard.wire.meters.codec`,
so the two cannot drift apart.

Built-in maps live next to this module in ``maps/<name>.toml``; a user adds a model by writing a
map file of the same shape and pointing ``[meter] map_file`` at it (``docs/devices/meters.md``).
"""

from __future__ import annotations

import itertools
import math
import tomllib
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fuseguard.wire.modbus import NumberType, WordOrder

MAPS_DIR = Path(__file__).parent / "maps"
MAX_READ_REGISTERS = 125  #: the Modbus limit for one read request


class Quantity(StrEnum):
    """What a map entry measures, in fuseguard's units."""

    CURRENT_A = "current_a"
    ACTIVE_POWER_W = "active_power_w"
    VOLTAGE_V = "voltage_v"
    FREQUENCY_HZ = "frequency_hz"
    ENERGY_IMPORT_WH = "energy_import_wh"
    ENERGY_EXPORT_WH = "energy_export_wh"

    @property
    def unit(self) -> str:
        """The unit a decoded value is in."""
        return _UNITS[self]

    @property
    def bounds(self) -> tuple[float, float]:
        """Plausibility bounds: a decoded value outside them is garbage, not a measurement."""
        return _BOUNDS[self]

    @property
    def per_phase(self) -> bool | None:
        """True: needs a phase; False: must not have one; None: either (power)."""
        return _PER_PHASE[self]


_UNITS = {
    Quantity.CURRENT_A: "A",
    Quantity.ACTIVE_POWER_W: "W",
    Quantity.VOLTAGE_V: "V",
    Quantity.FREQUENCY_HZ: "Hz",
    Quantity.ENERGY_IMPORT_WH: "Wh",
    Quantity.ENERGY_EXPORT_WH: "Wh",
}
_BOUNDS = {
    Quantity.CURRENT_A: (-10_000.0, 10_000.0),
    Quantity.ACTIVE_POWER_W: (-30e6, 30e6),
    Quantity.VOLTAGE_V: (0.0, 2_000.0),
    Quantity.FREQUENCY_HZ: (0.0, 100.0),
    Quantity.ENERGY_IMPORT_WH: (0.0, 1e13),
    Quantity.ENERGY_EXPORT_WH: (0.0, 1e13),
}
_PER_PHASE: dict[Quantity, bool | None] = {
    Quantity.CURRENT_A: True,
    Quantity.ACTIVE_POWER_W: None,
    Quantity.VOLTAGE_V: True,
    Quantity.FREQUENCY_HZ: False,
    Quantity.ENERGY_IMPORT_WH: False,
    Quantity.ENERGY_EXPORT_WH: False,
}

PhaseName = Literal["L1", "L2", "L3"]
FunctionCode = Literal[3, 4]


class MeterMapError(ValueError):
    """A map file is missing, not TOML, or not a valid register map (the message says where)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MapEntry(_Model):
    """One quantity in one register (or register pair/quad)."""

    quantity: Quantity
    phase: PhaseName | None = None
    address: int = Field(ge=0, le=0xFFFF, description="0-based register address")
    type: NumberType
    function_code: FunctionCode | None = Field(default=None, description="default: the map's")
    word_order: WordOrder | None = Field(default=None, description="default: the map's")
    scale: float = Field(default=1.0, description="raw * scale = value in unit")
    unit: str
    not_available: tuple[int, ...] = Field(
        default=(), description="raw values the device sends for 'not measured'"
    )

    @field_validator("scale")
    @classmethod
    def _scale(cls, v: float) -> float:
        if not math.isfinite(v) or v == 0:
            msg = "scale must be a finite, non-zero number"
            raise ValueError(msg)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.unit != self.quantity.unit:
            msg = f"{self.quantity} is in {self.quantity.unit}, not {self.unit!r}"
            raise ValueError(msg)
        need = self.quantity.per_phase
        if need is True and self.phase is None:
            msg = f"{self.quantity} needs a phase (L1, L2 or L3)"
            raise ValueError(msg)
        if need is False and self.phase is not None:
            msg = f"{self.quantity} is not per phase"
            raise ValueError(msg)
        if self.address + self.type.register_count > 0x10000:
            msg = f"register {self.address} + {self.type.register_count} is beyond 65535"
            raise ValueError(msg)
        if self.not_available and self.type.is_float:
            msg = "not_available is for integer types (a float's NaN is always refused)"
            raise ValueError(msg)
        return self

    @property
    def key(self) -> tuple[Quantity, str | None]:
        """(quantity, phase): unique within a map."""
        return (self.quantity, self.phase)

    @property
    def count(self) -> int:
        """Registers this entry occupies."""
        return self.type.register_count


class ReadBlock(_Model):
    """One read request: ``count`` registers from ``start`` with ``function_code``."""

    function_code: FunctionCode
    start: int
    count: int

    @property
    def stop(self) -> int:
        """One past the last register."""
        return self.start + self.count


class MeterMap(_Model):
    """The register map of one meter model."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    vendor: str
    model: str
    source: str = Field(min_length=1, description="where the register list comes from")
    function_code: FunctionCode
    word_order: WordOrder = WordOrder.BIG
    current_sign: Literal["signed", "from_power"] = Field(
        default="from_power",
        description="from_power: the device sends magnitudes; the phase's power sign applies",
    )
    max_gap: int = Field(default=16, ge=0, le=MAX_READ_REGISTERS)
    max_block: int = Field(
        default=MAX_READ_REGISTERS, ge=4, le=MAX_READ_REGISTERS, description="registers per read"
    )
    entries: tuple[MapEntry, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _complete(self) -> Self:
        seen: set[tuple[Quantity, str | None]] = set()
        for i, e in enumerate(self.entries):
            if e.key in seen:
                msg = f"entries[{i}]: {e.quantity} {e.phase or ''} is mapped twice"
                raise ValueError(msg)
            seen.add(e.key)
        missing = [
            f"{q} {p}"
            for q in (Quantity.CURRENT_A, Quantity.ACTIVE_POWER_W)
            for p in ("L1", "L2", "L3")
            if (q, p) not in seen
        ]
        if missing:
            msg = f"a meter map needs per-phase current and power; missing: {', '.join(missing)}"
            raise ValueError(msg)
        spans: dict[int, list[tuple[int, int, int]]] = {}
        for i, e in enumerate(self.entries):
            spans.setdefault(self.fc_of(e), []).append((e.address, e.address + e.count, i))
        for items in spans.values():
            items.sort()
            for (_, stop, a), (start, _, b) in itertools.pairwise(items):
                if start < stop:
                    msg = f"entries[{a}] and entries[{b}] overlap"
                    raise ValueError(msg)
        return self

    def fc_of(self, entry: MapEntry) -> int:
        """Function code of ``entry`` (its own or the map's)."""
        return entry.function_code or self.function_code

    def order_of(self, entry: MapEntry) -> WordOrder:
        """Word order of ``entry`` (its own or the map's)."""
        return entry.word_order or self.word_order

    def entry(self, quantity: Quantity, phase: str | None = None) -> MapEntry | None:
        """The entry for ``quantity`` (and ``phase``), if mapped."""
        for e in self.entries:
            if e.quantity is quantity and e.phase == phase:
                return e
        return None

    def blocks(self) -> tuple[ReadBlock, ...]:
        """The read requests that cover every entry: entries of one function code merged when
        the gap between them is at most ``max_gap`` and the request stays within ``max_block``.
        """
        result: list[ReadBlock] = []
        by_fc: dict[int, list[MapEntry]] = {}
        for e in self.entries:
            by_fc.setdefault(self.fc_of(e), []).append(e)
        for fc in sorted(by_fc):
            items = sorted(by_fc[fc], key=lambda e: e.address)
            start, stop = items[0].address, items[0].address + items[0].count
            for e in items[1:]:
                end = e.address + e.count
                if e.address - stop <= self.max_gap and end - start <= self.max_block:
                    stop = max(stop, end)
                    continue
                result.append(ReadBlock(function_code=fc, start=start, count=stop - start))
                start, stop = e.address, end
            result.append(ReadBlock(function_code=fc, start=start, count=stop - start))
        return tuple(result)


def load_map_file(path: Path) -> MeterMap:
    """Read and validate one map file; :class:`MeterMapError` names the file and the problem."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        msg = f"{path}: cannot read the meter map: {err.strerror or err}"
        raise MeterMapError(msg) from err
    except tomllib.TOMLDecodeError as err:
        msg = f"{path}: not TOML: {err}"
        raise MeterMapError(msg) from err
    try:
        return MeterMap.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}" for e in err.errors()
        )
        msg = f"{path}: not a valid meter map: {problems}"
        raise MeterMapError(msg) from err


def builtin_map_names() -> tuple[str, ...]:
    """Names of the maps shipped with fuseguard."""
    return tuple(sorted(p.stem for p in MAPS_DIR.glob("*.toml")))


@cache
def builtin_map(name: str) -> MeterMap:
    """A shipped map by name (``sdm630``, ``em24``, ...); :class:`MeterMapError` if unknown."""
    if name not in builtin_map_names():
        msg = f"unknown meter model {name!r}; built-in: {', '.join(builtin_map_names())}"
        raise MeterMapError(msg)
    meter_map = load_map_file(MAPS_DIR / f"{name}.toml")
    if meter_map.name != name:
        msg = f"{MAPS_DIR / name}.toml names itself {meter_map.name!r}"
        raise MeterMapError(msg)
    return meter_map


__all__ = [
    "MAPS_DIR",
    "MAX_READ_REGISTERS",
    "MapEntry",
    "MeterMap",
    "MeterMapError",
    "Quantity",
    "ReadBlock",
    "builtin_map",
    "builtin_map_names",
    "load_map_file",
]
