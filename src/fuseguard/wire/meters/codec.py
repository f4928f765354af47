"""The one codec of a meter map entry: value <-> registers (used by driver and virtual meter).

``encode_entry`` turns a value in the entry's unit into the registers a device would send;
``decode_entry`` turns registers back into a value, or ``None`` when the device sent the entry's
"not available" marker. A float register holding NaN or infinity decodes to that float: the
caller's finite check (:func:`fuseguard.model.numbers.finite`) refuses it as garbage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fuseguard.wire.meters.maps import MapEntry, MeterMap
from fuseguard.wire.modbus import RegisterDecodeError, decode_number, encode_number


def encode_entry(meter_map: MeterMap, entry: MapEntry, value: float) -> list[int]:
    """Registers for ``value`` (in ``entry.unit``); ValueError when it does not fit the type."""
    raw = value / entry.scale
    order = meter_map.order_of(entry)
    if entry.type.is_float:
        return encode_number(raw, entry.type, order)
    return encode_number(round(raw), entry.type, order)


def encode_missing(meter_map: MeterMap, entry: MapEntry) -> list[int]:
    """Registers for "not available": the entry's first marker (NaN for a float)."""
    order = meter_map.order_of(entry)
    if entry.type.is_float:
        return encode_number(float("nan"), entry.type, order)
    if entry.not_available:
        return encode_number(entry.not_available[0], entry.type, order)
    msg = f"{entry.quantity} at {entry.address} has no 'not available' marker"
    raise ValueError(msg)


def decode_entry(meter_map: MeterMap, entry: MapEntry, registers: Sequence[int]) -> float | None:
    """Value in ``entry.unit`` from exactly ``entry.count`` registers; None for "not available"."""
    raw = decode_number(registers, entry.type, meter_map.order_of(entry))
    if isinstance(raw, int) and raw in entry.not_available:
        return None
    return raw * entry.scale


def decode_from(meter_map: MeterMap, entry: MapEntry, words: Mapping[int, int]) -> float | None:
    """Like :func:`decode_entry`, reading the entry's registers from ``{address: word}``."""
    try:
        registers = [words[entry.address + i] for i in range(entry.count)]
    except KeyError as err:
        msg = f"register {err.args[0]} of {entry.quantity} was not read"
        raise RegisterDecodeError(msg) from None
    return decode_entry(meter_map, entry, registers)


__all__ = ["decode_entry", "decode_from", "encode_entry", "encode_missing"]
