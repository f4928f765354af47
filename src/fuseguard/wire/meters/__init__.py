"""Modbus meter register maps as data (``maps/*.toml``) and their one codec."""

from fuseguard.wire.meters.codec import decode_entry, decode_from, encode_entry, encode_missing
from fuseguard.wire.meters.maps import (
    MAPS_DIR,
    MAX_READ_REGISTERS,
    MapEntry,
    MeterMap,
    MeterMapError,
    Quantity,
    ReadBlock,
    builtin_map,
    builtin_map_names,
    load_map_file,
)

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
    "decode_entry",
    "decode_from",
    "encode_entry",
    "encode_missing",
    "load_map_file",
]
