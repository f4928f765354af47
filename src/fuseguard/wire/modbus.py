"""Small Modbus register codecs shared by drivers and virtual devices (no I/O, no pymodbus).

Registers are unsigned 16-bit words. Multi-register values are big-endian: high byte first and,
for 32-bit values, high word first (the Bender/Mennekes convention). Keeping the codecs here, not
in pymodbus' ``convert_*_registers``, keeps pymodbus' API churn out of the register maps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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
