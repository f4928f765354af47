"""SunSpec over Modbus: base addresses, the model chain, point layouts, scale factors (no I/O).

A SunSpec device holds the marker "SunS" (0x5375 0x6E53) at a base address (40000, 0 or 50000),
then a chain of models: each model is its id, its length ``L`` (registers after the header) and
``L`` registers of points, until the end marker id 0xFFFF. Values are integers scaled by a scale
factor point (``value * 10**SF``); a point the device does not implement holds its type's
unimplemented marker (0x8000, 0xFFFF, 0x80000000, ..., NaN) and is *missing*, never a number.
An accumulator (acc16/32/64) of 0 is also "not implemented" (SunSpec model definitions).

Offsets below count from the model's first register (the id), as in the SunSpec JSON model
definitions (sunspec/models ``json/model_<id>.json``): meters 201-204 (integer + scale factor,
all four share one layout), inverters 101-103 (one layout), DER AC measurement 701, and the
common model 1. Only the points fuseguard reads are listed.

Used by the driver (:mod:`fuseguard.devices.meters.sunspec`) and the virtual SunSpec devices
(:mod:`fuseguard.sim.meters`), so both read and write the same offsets.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from fuseguard.wire.modbus import (
    NumberType,
    RegisterDecodeError,
    decode_ascii,
    decode_number,
    encode_ascii,
    encode_number,
)

SUNS_MARKER: tuple[int, int] = (0x5375, 0x6E53)  #: "SunS"
BASE_ADDRESSES: tuple[int, ...] = (40000, 0, 50000)  #: probed in this order
END_MODEL_ID = 0xFFFF
COMMON_MODEL_ID = 1
METER_MODEL_IDS = frozenset({201, 202, 203, 204})
INVERTER_MODEL_IDS = frozenset({101, 102, 103})
DER_AC_MODEL_ID = 701
#: ``L`` (registers after id and length) of the models fuseguard knows
MODEL_LENGTHS: dict[int, int] = {
    1: 66,
    101: 50,
    102: 50,
    103: 50,
    201: 105,
    202: 105,
    203: 105,
    204: 105,
    701: 153,
}
SF_MIN, SF_MAX = -10, 10  #: the range SunSpec allows for a scale factor


class PointType(StrEnum):
    """SunSpec point types (those the listed points use)."""

    INT16 = "int16"
    UINT16 = "uint16"
    ACC16 = "acc16"
    ENUM16 = "enum16"
    BITFIELD16 = "bitfield16"
    SUNSSF = "sunssf"
    INT32 = "int32"
    UINT32 = "uint32"
    ACC32 = "acc32"
    BITFIELD32 = "bitfield32"
    UINT64 = "uint64"
    ACC64 = "acc64"
    FLOAT32 = "float32"
    STRING = "string"


_NUMBER: dict[PointType, NumberType] = {
    PointType.INT16: NumberType.S16,
    PointType.SUNSSF: NumberType.S16,
    PointType.UINT16: NumberType.U16,
    PointType.ACC16: NumberType.U16,
    PointType.ENUM16: NumberType.U16,
    PointType.BITFIELD16: NumberType.U16,
    PointType.INT32: NumberType.S32,
    PointType.UINT32: NumberType.U32,
    PointType.ACC32: NumberType.U32,
    PointType.BITFIELD32: NumberType.U32,
    PointType.UINT64: NumberType.U64,
    PointType.ACC64: NumberType.U64,
    PointType.FLOAT32: NumberType.FLOAT32,
}
#: raw values that mean "not implemented"
UNIMPLEMENTED: dict[PointType, int] = {
    PointType.INT16: -0x8000,
    PointType.SUNSSF: -0x8000,
    PointType.UINT16: 0xFFFF,
    PointType.ACC16: 0,
    PointType.ENUM16: 0xFFFF,
    PointType.BITFIELD16: 0xFFFF,
    PointType.INT32: -0x8000_0000,
    PointType.UINT32: 0xFFFF_FFFF,
    PointType.ACC32: 0,
    PointType.BITFIELD32: 0xFFFF_FFFF,
    PointType.UINT64: 0xFFFF_FFFF_FFFF_FFFF,
    PointType.ACC64: 0,
}


@dataclass(frozen=True, slots=True)
class Point:
    """A point of a model: offset from the model id register, type, scale factor point."""

    name: str
    offset: int
    type: PointType
    size: int = 0  #: registers (strings only; numbers take their type's size)
    sf: str | None = None

    @property
    def count(self) -> int:
        """Registers this point occupies."""
        if self.type is PointType.STRING:
            return self.size
        return _NUMBER[self.type].register_count


def _layout(points: Iterable[Point]) -> dict[str, Point]:
    return {p.name: p for p in points}


T = PointType
COMMON = _layout(
    [
        Point("Mn", 2, T.STRING, size=16),
        Point("Md", 18, T.STRING, size=16),
        Point("Vr", 42, T.STRING, size=8),
        Point("SN", 50, T.STRING, size=16),
        Point("DA", 66, T.UINT16),
    ]
)
#: models 201 (single phase), 202 (split phase), 203 (wye), 204 (delta): one layout
METER = _layout(
    [
        Point("A", 2, T.INT16, sf="A_SF"),
        Point("AphA", 3, T.INT16, sf="A_SF"),
        Point("AphB", 4, T.INT16, sf="A_SF"),
        Point("AphC", 5, T.INT16, sf="A_SF"),
        Point("A_SF", 6, T.SUNSSF),
        Point("PhV", 7, T.INT16, sf="V_SF"),
        Point("PhVphA", 8, T.INT16, sf="V_SF"),
        Point("PhVphB", 9, T.INT16, sf="V_SF"),
        Point("PhVphC", 10, T.INT16, sf="V_SF"),
        Point("V_SF", 15, T.SUNSSF),
        Point("Hz", 16, T.INT16, sf="Hz_SF"),
        Point("Hz_SF", 17, T.SUNSSF),
        Point("W", 18, T.INT16, sf="W_SF"),
        Point("WphA", 19, T.INT16, sf="W_SF"),
        Point("WphB", 20, T.INT16, sf="W_SF"),
        Point("WphC", 21, T.INT16, sf="W_SF"),
        Point("W_SF", 22, T.SUNSSF),
        Point("VAR", 28, T.INT16, sf="VAR_SF"),
        Point("VAR_SF", 32, T.SUNSSF),
        Point("TotWhExp", 38, T.ACC32, sf="TotWh_SF"),
        Point("TotWhImp", 46, T.ACC32, sf="TotWh_SF"),
        Point("TotWh_SF", 54, T.SUNSSF),
    ]
)
#: models 101 (single phase), 102 (split phase), 103 (three phase): one layout
INVERTER = _layout(
    [
        Point("A", 2, T.UINT16, sf="A_SF"),
        Point("AphA", 3, T.UINT16, sf="A_SF"),
        Point("AphB", 4, T.UINT16, sf="A_SF"),
        Point("AphC", 5, T.UINT16, sf="A_SF"),
        Point("A_SF", 6, T.SUNSSF),
        Point("PhVphA", 10, T.UINT16, sf="V_SF"),
        Point("PhVphB", 11, T.UINT16, sf="V_SF"),
        Point("PhVphC", 12, T.UINT16, sf="V_SF"),
        Point("V_SF", 13, T.SUNSSF),
        Point("W", 14, T.INT16, sf="W_SF"),
        Point("W_SF", 15, T.SUNSSF),
        Point("Hz", 16, T.UINT16, sf="Hz_SF"),
        Point("Hz_SF", 17, T.SUNSSF),
        Point("VA", 18, T.INT16, sf="VA_SF"),
        Point("VA_SF", 19, T.SUNSSF),
        Point("VAr", 20, T.INT16, sf="VAr_SF"),
        Point("VAr_SF", 21, T.SUNSSF),
        Point("PF", 22, T.INT16, sf="PF_SF"),
        Point("PF_SF", 23, T.SUNSSF),
        Point("WH", 24, T.ACC32, sf="WH_SF"),
        Point("WH_SF", 26, T.SUNSSF),
        Point("DCA", 27, T.UINT16, sf="DCA_SF"),
        Point("DCA_SF", 28, T.SUNSSF),
        Point("DCV", 29, T.UINT16, sf="DCV_SF"),
        Point("DCV_SF", 30, T.SUNSSF),
        Point("DCW", 31, T.INT16, sf="DCW_SF"),
        Point("DCW_SF", 32, T.SUNSSF),
        Point("TmpCab", 33, T.INT16, sf="Tmp_SF"),
        Point("Tmp_SF", 37, T.SUNSSF),
        Point("St", 38, T.ENUM16),
    ]
)
#: model 701, DER AC measurement (W positive for generation, negative for absorption)
DER_AC = _layout(
    [
        Point("ACType", 2, T.ENUM16),
        Point("St", 3, T.ENUM16),
        Point("InvSt", 4, T.ENUM16),
        Point("ConnSt", 5, T.ENUM16),
        Point("W", 10, T.INT16, sf="W_SF"),
        Point("VA", 11, T.INT16, sf="VA_SF"),
        Point("Var", 12, T.INT16, sf="Var_SF"),
        Point("PF", 13, T.INT16, sf="PF_SF"),
        Point("A", 14, T.INT16, sf="A_SF"),
        Point("LLV", 15, T.UINT16, sf="V_SF"),
        Point("LNV", 16, T.UINT16, sf="V_SF"),
        Point("Hz", 17, T.UINT32, sf="Hz_SF"),
        Point("TotWhInj", 19, T.UINT64, sf="TotWh_SF"),
        Point("TotWhAbs", 23, T.UINT64, sf="TotWh_SF"),
        Point("WL1", 41, T.INT16, sf="W_SF"),
        Point("AL1", 45, T.INT16, sf="A_SF"),
        Point("VL1", 47, T.UINT16, sf="V_SF"),
        Point("WL2", 64, T.INT16, sf="W_SF"),
        Point("AL2", 68, T.INT16, sf="A_SF"),
        Point("VL2", 70, T.UINT16, sf="V_SF"),
        Point("WL3", 87, T.INT16, sf="W_SF"),
        Point("AL3", 91, T.INT16, sf="A_SF"),
        Point("VL3", 93, T.UINT16, sf="V_SF"),
        Point("A_SF", 113, T.SUNSSF),
        Point("V_SF", 114, T.SUNSSF),
        Point("Hz_SF", 115, T.SUNSSF),
        Point("W_SF", 116, T.SUNSSF),
        Point("PF_SF", 117, T.SUNSSF),
        Point("VA_SF", 118, T.SUNSSF),
        Point("Var_SF", 119, T.SUNSSF),
        Point("TotWh_SF", 120, T.SUNSSF),
    ]
)
del T


def layout_of(model_id: int) -> dict[str, Point]:
    """The point layout of ``model_id``; KeyError for a model fuseguard does not read."""
    if model_id in METER_MODEL_IDS:
        return METER
    if model_id in INVERTER_MODEL_IDS:
        return INVERTER
    if model_id == DER_AC_MODEL_ID:
        return DER_AC
    if model_id == COMMON_MODEL_ID:
        return COMMON
    raise KeyError(model_id)


def decode_point(registers: Sequence[int], point_type: PointType) -> int | float | None:
    """The raw value of a numeric point, or None when it holds the unimplemented marker."""
    raw = decode_number(registers, _NUMBER[point_type])
    if isinstance(raw, float):
        return None if math.isnan(raw) else raw
    if raw == UNIMPLEMENTED[point_type]:
        return None
    return raw


def encode_point(value: int | None, point_type: PointType) -> list[int]:
    """Registers for a raw value (None: the unimplemented marker)."""
    kind = _NUMBER[point_type]
    if value is None:
        if point_type is PointType.FLOAT32:
            return encode_number(float("nan"), kind)
        return encode_number(UNIMPLEMENTED[point_type], kind)
    return encode_number(value, kind)


def apply_sf(raw: int | float | None, sf: int | None) -> float | None:
    """``raw * 10**sf``; None when either is missing or the scale factor is out of range."""
    if raw is None or sf is None or not SF_MIN <= sf <= SF_MAX:
        return None
    return float(raw) * 10.0**sf


def choose_sf(values: Iterable[float], point_type: PointType, *, finest: int = -3) -> int:
    """The finest scale factor (from ``finest`` up) at which every value fits ``point_type``."""
    lo, hi = _NUMBER[point_type].int_range
    if point_type in UNIMPLEMENTED:  # keep clear of the marker
        lo, hi = (lo + 1, hi) if UNIMPLEMENTED[point_type] == lo else (lo, hi - 1)
    items = list(values)
    for sf in range(finest, SF_MAX + 1):
        if all(lo <= round(v / 10.0**sf) <= hi for v in items):
            return sf
    msg = f"values {items} do not fit {point_type} at any scale factor"
    raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class ModelBlock:
    """One model's registers as read: ``words[0]`` is the id register at address ``start``."""

    model_id: int
    start: int
    words: tuple[int, ...]

    def _point(self, name: str) -> Point:
        layout = layout_of(self.model_id)
        point = layout[name]
        if point.offset + point.count > len(self.words):
            msg = f"model {self.model_id}: point {name} is beyond the model's length"
            raise RegisterDecodeError(msg)
        return point

    def raw(self, name: str) -> int | float | None:
        """The raw value of a numeric point (None: not implemented)."""
        point = self._point(name)
        return decode_point(self.words[point.offset : point.offset + point.count], point.type)

    def value(self, name: str) -> float | None:
        """The scaled value (None when the point or its scale factor is not implemented)."""
        point = self._point(name)
        raw = self.raw(name)
        if point.sf is None:
            return None if raw is None else float(raw)
        sf = self.raw(point.sf)
        return apply_sf(raw, None if sf is None else int(sf))

    def text(self, name: str) -> str:
        """A string point."""
        point = self._point(name)
        return decode_ascii(self.words[point.offset : point.offset + point.count])


def encode_model(model_id: int, values: Mapping[str, int | str | None]) -> list[int]:
    """A whole model (id, L, points) as registers: listed points from ``values`` (raw ints,
    strings for string points, None for "not implemented"); every other register of the model
    reads 0xFFFF (the virtual devices implement only the listed points).
    """
    length = MODEL_LENGTHS[model_id]
    words = [model_id, length] + [0xFFFF] * length
    layout = layout_of(model_id)
    for name, point in layout.items():
        value = values.get(name)
        if point.type is PointType.STRING:
            encoded = encode_ascii(str(value or ""), point.count)
        else:
            if isinstance(value, str):
                msg = f"point {name} is numeric"
                raise TypeError(msg)
            encoded = encode_point(value, point.type)
        words[point.offset : point.offset + point.count] = encoded
    return words


__all__ = [
    "BASE_ADDRESSES",
    "COMMON",
    "COMMON_MODEL_ID",
    "DER_AC",
    "DER_AC_MODEL_ID",
    "END_MODEL_ID",
    "INVERTER",
    "INVERTER_MODEL_IDS",
    "METER",
    "METER_MODEL_IDS",
    "MODEL_LENGTHS",
    "SUNS_MARKER",
    "UNIMPLEMENTED",
    "ModelBlock",
    "Point",
    "PointType",
    "apply_sf",
    "choose_sf",
    "decode_point",
    "encode_model",
    "encode_point",
    "layout_of",
]
