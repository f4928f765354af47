"""``ModbusMeter``: any Modbus energy meter described by a register map (``wire/meters/maps``).

One request per read block of the map (``MeterMap.blocks()``: SDM630 one, EM24 three, ...),
decoded with the one codec the virtual meters encode with. The sample has per-phase current and
per-phase active power with sign (consumption positive, export negative; for a map with
``current_sign = "from_power"`` the device sends magnitudes and the phase's power sign applies),
total power (the map's total, else the phase sum), voltage, frequency and import/export energy.

Missing and garbage: a value the device marks "not available" (the map's integer markers, NaN in a
float register) is ``None`` (voltage, frequency,
energy) or an error (per-phase current and power: the controller cannot work without them); a
value that is not finite or outside the quantity's plausibility bounds is garbage ->
``DeviceResponseError``. Garbage never becomes numbers.

Staleness: Modbus meters carry no timestamp. A meter whose registers have not changed at all for
``frozen_after_s`` (voltage and energy of a live meter always move) is reported ``stale``, so the
controller's meter-loss policy applies (0 disables the check).
"""

from __future__ import annotations

import math
from types import TracebackType
from typing import Self

import structlog

from fuseguard.devices.meters.checks import checked, garbage, required
from fuseguard.devices.meters.transport import ModbusTransport
from fuseguard.model.clock import Clock, RealClock
from fuseguard.model.phases import Phases
from fuseguard.model.samples import MeterSample
from fuseguard.wire.meters import MeterMap, Quantity, decode_from
from fuseguard.wire.modbus import RegisterDecodeError

log = structlog.get_logger(__name__)

PHASES = ("L1", "L2", "L3")


def signed_current(current_a: float, power_w: float) -> float:
    """A current magnitude with the sign of its phase's active power (0 W keeps it positive)."""
    return -abs(current_a) if power_w < 0 else abs(current_a)


class ModbusMeter:
    """Implements ``GridMeter`` (and ``SupportsLifecycle``) for a mapped Modbus meter."""

    def __init__(
        self,
        transport: ModbusTransport,
        meter_map: MeterMap,
        *,
        clock: Clock | None = None,
        frozen_after_s: float = 10.0,
        name: str | None = None,
    ) -> None:
        self.transport = transport
        self.meter_map = meter_map
        self.frozen_after_s = frozen_after_s
        self.name = (
            name or f"{meter_map.name}@{transport.host}:{transport.port}/{transport.unit_id}"
        )
        self._clock: Clock = clock or RealClock()
        self._blocks = meter_map.blocks()
        self._last_words: dict[int, dict[int, int]] | None = None
        self._unchanged_since: float = 0.0

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Read once, so a wrong address or model fails at start-up, not in the loop."""
        await self.read()
        log.info(
            "modbus meter started",
            device=self.name,
            reason="start",
            model=self.meter_map.name,
            requests_per_read=len(self._blocks),
        )

    async def close(self) -> None:
        """Close the connection."""
        await self.transport.close()

    async def read_words(self) -> dict[int, dict[int, int]]:
        """Every read block: ``{function_code: {address: word}}``."""
        words: dict[int, dict[int, int]] = {}
        for block in self._blocks:
            registers = await self.transport.request(block.function_code, block.start, block.count)
            space = words.setdefault(block.function_code, {})
            for i, word in enumerate(registers):
                space[block.start + i] = word
        return words

    def _value(
        self, words: dict[int, dict[int, int]], q: Quantity, phase: str | None
    ) -> float | None:
        entry = self.meter_map.entry(q, phase)
        if entry is None:
            return None
        try:
            value = decode_from(self.meter_map, entry, words[self.meter_map.fc_of(entry)])
        except RegisterDecodeError as err:
            raise garbage(self.name, str(err)) from err
        if value is not None and math.isnan(value):
            value = None  # a float register's "not available"
        return checked(self.name, q, f"{q.value} {phase or 'total'}", value)

    def _phases(self, words: dict[int, dict[int, int]], q: Quantity) -> Phases | None:
        values = [self._value(words, q, p) for p in PHASES]
        if any(v is None for v in values):
            return None
        return Phases.of(v for v in values if v is not None)

    def _stale(self, words: dict[int, dict[int, int]]) -> bool:
        now = self._clock.monotonic()
        if words != self._last_words:
            self._last_words = words
            self._unchanged_since = now
            return False
        return self.frozen_after_s > 0 and now - self._unchanged_since >= self.frozen_after_s

    async def read(self) -> MeterSample:
        """One sample; ``DeviceError`` when the meter cannot be read or answers garbage."""
        words = await self.read_words()
        power = [
            required(self.name, Quantity.ACTIVE_POWER_W, f"active power {p}", v)
            for p, v in ((p, self._value(words, Quantity.ACTIVE_POWER_W, p)) for p in PHASES)
        ]
        current = [
            required(self.name, Quantity.CURRENT_A, f"current {p}", v)
            for p, v in ((p, self._value(words, Quantity.CURRENT_A, p)) for p in PHASES)
        ]
        if self.meter_map.current_sign == "from_power":
            current = [signed_current(i, w) for i, w in zip(current, power, strict=True)]
        total = self._value(words, Quantity.ACTIVE_POWER_W, None)
        return MeterSample(
            timestamp=self._clock.now(),
            power_w=math.fsum(power) if total is None else total,
            current_a=Phases.of(current),
            power_per_phase_w=Phases.of(power),
            voltage_v=self._phases(words, Quantity.VOLTAGE_V),
            frequency_hz=self._value(words, Quantity.FREQUENCY_HZ, None),
            energy_import_wh=self._value(words, Quantity.ENERGY_IMPORT_WH, None),
            energy_export_wh=self._value(words, Quantity.ENERGY_EXPORT_WH, None),
            stale=self._stale(words),
        )


__all__ = ["ModbusMeter", "signed_current"]
