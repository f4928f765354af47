"""Small Modbus register codecs shared by drivers and virtual devices (no I/O, no pymodbus).

Registers are unsigned 16-bit words. Multi-register values are big-endian: high byte first and,
for 32-bit values, high word first (the Bender/Mennekes convention). Keeping the codecs here, not
in pymodbus' ``convert_*_registers``, keeps pymodbus' API churn out of the register maps.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from enum import StrEnum

U16_MAX = 0xFFFF
U32_MAX = 0xFFFF_FFFF
#: What a Bender controller reads for a 32-bit meter value its meter does not provide.
NOT_AVAILABLE_U32 = U32_MAX


class RegisterDecodeError(ValueError):
    """A register block does not hold a value of the expected shape."""


def encode_u16(value: int) -> list[int]:
    """One register; raises ValueError outside 0..65535."""
    if not 0 <= value <= U16_MAX:
        msg = f"{value} does not fit in an unsigned 16-bit register"
        raise ValueError(msg)
    return [value]


def encode_u32(value: int) -> list[int]:
    """Two registers, high word first; raises ValueError outside 0..2**32-1."""
    if not 0 <= value <= U32_MAX:
        msg = f"{value} does not fit in an unsigned 32-bit register pair"
        raise ValueError(msg)
    return [(value >> 16) & U16_MAX, value & U16_MAX]


def decode_u32(registers: Sequence[int]) -> int:
    """Inverse of :func:`encode_u32`."""
    if len(registers) != 2:
        msg = f"a 32-bit value needs 2 registers, got {len(registers)}"
        raise RegisterDecodeError(msg)
    _check_words(registers)
    return (registers[0] << 16) | registers[1]


def encode_ascii(text: str, register_count: int) -> list[int]:
    """``text`` as ASCII, two characters per register (first character in the high byte).

    Padded with NUL bytes to ``register_count`` registers; raises ValueError when too long or not
    ASCII.
    """
    raw = text.encode("ascii")
    if len(raw) > 2 * register_count:
        msg = f"{text!r} does not fit in {register_count} registers"
        raise ValueError(msg)
    raw = raw.ljust(2 * register_count, b"\0")
    return [(raw[i] << 8) | raw[i + 1] for i in range(0, len(raw), 2)]


def decode_ascii(registers: Sequence[int]) -> str:
    """Inverse of :func:`encode_ascii` (trailing NULs and spaces stripped)."""
    _check_words(registers)
    raw = b"".join(bytes(((r >> 8) & 0xFF, r & 0xFF)) for r in registers)
    text = raw.rstrip(b"\0 ").split(b"\0", 1)[0]
    try:
        return text.decode("ascii")
    except UnicodeDecodeError as err:
        msg = f"registers do not hold ASCII text: {raw!r}"
        raise RegisterDecodeError(msg) from err


def _check_words(registers: Sequence[int]) -> None:
    for r in registers:
        if not 0 <= r <= U16_MAX:
            msg = f"register value {r} is not a 16-bit word"
            raise RegisterDecodeError(msg)


class RegisterBlock:
    """A contiguous run of registers read in one request, addressed by absolute register number."""

    __slots__ = ("registers", "start")

    def __init__(self, start: int, registers: Sequence[int]) -> None:
        self.start = start
        self.registers = list(registers)

    def _slice(self, address: int, count: int) -> list[int]:
        offset = address - self.start
        if offset < 0 or offset + count > len(self.registers):
            msg = (
                f"register {address}+{count} is outside the block "
                f"{self.start}..{self.start + len(self.registers) - 1}"
            )
            raise RegisterDecodeError(msg)
        return self.registers[offset : offset + count]

    def u16(self, address: int) -> int:
        """One unsigned 16-bit register."""
        return self._slice(address, 1)[0]

    def u32(self, address: int) -> int:
        """Two registers, high word first."""
        return decode_u32(self._slice(address, 2))

    def u32_or_none(self, address: int) -> int | None:
        """Like :meth:`u32`, but ``None`` for the not-available marker 0xFFFFFFFF."""
        value = self.u32(address)
        return None if value == NOT_AVAILABLE_U32 else value

    def ascii(self, address: int, count: int) -> str:
        """``count`` registers of ASCII text."""
        return decode_ascii(self._slice(address, count))


def fill_registers(
    target: list[int], start_address: int, values: Mapping[int, int], *, first: int, last: int
) -> None:
    """Copy ``values`` (address -> word) for addresses in ``first..last`` into ``target``.

    ``target[0]`` holds register ``start_address`` (the layout of a pymodbus simulator block).
    """
    for address in range(first, last + 1):
        index = address - start_address
        if 0 <= index < len(target):
            target[index] = values.get(address, 0)


# --- typed numbers in registers (meter maps, SunSpec) -------------------------------------------


class NumberType(StrEnum):
    """How a number sits in one, two or four registers."""

    U16 = "u16"
    S16 = "s16"
    U32 = "u32"
    S32 = "s32"
    U64 = "u64"
    S64 = "s64"
    FLOAT32 = "float32"

    @property
    def register_count(self) -> int:
        """1, 2 or 4 registers."""
        return _WORDS[self]

    @property
    def is_float(self) -> bool:
        """True for IEEE 754 types."""
        return self is NumberType.FLOAT32

    @property
    def int_range(self) -> tuple[int, int]:
        """Smallest and largest raw integer (ValueError for float types)."""
        if self.is_float:
            msg = f"{self} has no integer range"
            raise ValueError(msg)
        bits = 16 * self.register_count
        if self in (NumberType.S16, NumberType.S32, NumberType.S64):
            return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
        return (0, (1 << bits) - 1)


class WordOrder(StrEnum):
    """Order of the 16-bit words of a multi-register value (bytes in a word are big-endian)."""

    BIG = "big"  #: high word first (Modbus convention, SunSpec, Eastron, Janitza, ABB)
    LITTLE = "little"  #: low word first (Carlo Gavazzi "LSW first")


_WORDS = {
    NumberType.U16: 1,
    NumberType.S16: 1,
    NumberType.U32: 2,
    NumberType.S32: 2,
    NumberType.U64: 4,
    NumberType.S64: 4,
    NumberType.FLOAT32: 2,
}


def encode_number(
    value: int | float, kind: NumberType, order: WordOrder = WordOrder.BIG
) -> list[int]:
    """``value`` as registers. Integers must fit the type (ValueError); floats are packed as
    IEEE 754 single precision (NaN and infinities are allowed: they are what a device may send).
    """
    if kind.is_float:
        raw = struct.pack(">f", float(value))
    else:
        if isinstance(value, float):
            if not value.is_integer():
                msg = f"{value} is not an integer for {kind}"
                raise ValueError(msg)
            value = int(value)
        lo, hi = kind.int_range
        if not lo <= value <= hi:
            msg = f"{value} does not fit in {kind}"
            raise ValueError(msg)
        raw = value.to_bytes(2 * kind.register_count, "big", signed=lo < 0)
    words = [(raw[i] << 8) | raw[i + 1] for i in range(0, len(raw), 2)]
    return words if order is WordOrder.BIG else words[::-1]


def decode_number(
    registers: Sequence[int], kind: NumberType, order: WordOrder = WordOrder.BIG
) -> int | float:
    """Inverse of :func:`encode_number` (a float may come back NaN or infinite: check it)."""
    if len(registers) != kind.register_count:
        msg = f"{kind} needs {kind.register_count} registers, got {len(registers)}"
        raise RegisterDecodeError(msg)
    _check_words(registers)
    words = list(registers) if order is WordOrder.BIG else list(registers)[::-1]
    raw = b"".join(bytes(((w >> 8) & 0xFF, w & 0xFF)) for w in words)
    if kind.is_float:
        return float(struct.unpack(">f", raw)[0])
    return int.from_bytes(raw, "big", signed=kind.int_range[0] < 0)
