"""What a virtual meter measures: readings derived from the shared site model, and its faults.

:class:`SiteMeter` meters one circuit of a :class:`~fuseguard.sim.site.SiteModel` (the grid
connection or a sub-distribution): signed per-phase current and active power (consumption
positive, export negative), voltage with a small ripple (a real meter's voltage is never
constant), frequency, and import/export energy integrated over the site's ticks (net per tick, as
a bidirectional meter counts). :class:`PvInverterSource` does the same for a PV plant's output.

:class:`MeterFaults` holds the wire faults every virtual meter shares (``DeviceFault``): offline
(requests are held until the fault is cleared), slow (answers after ``slow_delay_s`` of wall
time), garbage (implausible words), frozen (the published readings stop changing).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import structlog

from fuseguard.model.clock import Clock
from fuseguard.model.faults import METER_FAULTS, DeviceFault
from fuseguard.model.phases import ZERO, Phases
from fuseguard.sim.site import MAIN, SiteModel

log = structlog.get_logger(__name__)

#: what a meter under the ``garbage`` fault answers in every register: decodes to NaN (float32),
#: to millions of amperes (32-bit integers) or to 327 Hz (u16 x 0.01): never plausible
GARBAGE_WORD = 0x7FFF
NOMINAL_V = Phases(230.0, 230.0, 230.0)


@dataclass(frozen=True, slots=True)
class MeterReadings:
    """One published telegram of a virtual meter (signs: consumption positive)."""

    current_a: Phases = ZERO
    voltage_v: Phases = NOMINAL_V
    power_w: Phases = ZERO
    frequency_hz: float = 50.0
    energy_import_wh: float = 0.0
    energy_export_wh: float = 0.0

    @property
    def total_power_w(self) -> float:
        """Sum over the phases."""
        return self.power_w.total


def ripple_voltage(nominal_v: float, t_s: float) -> Phases:
    """Nominal voltage with a small, deterministic ripple per phase (< 1 V)."""
    return Phases.of(nominal_v + 0.6 * math.sin(2 * math.pi * t_s / 37.0 + k) for k in (0, 2, 4))


def ripple_frequency(t_s: float) -> float:
    """50 Hz with a few mHz of deterministic drift."""
    return 50.0 + 0.02 * math.sin(2 * math.pi * t_s / 53.0)


class SiteMeter:
    """Meters ``circuit`` of ``site``; the published readings change once per site tick."""

    def __init__(
        self,
        site: SiteModel,
        circuit: str = MAIN,
        *,
        energy_import_wh: float = 1_234_567.0,
        energy_export_wh: float = 345_678.0,
        attach: bool = True,
    ) -> None:
        if circuit not in site.circuits:
            msg = f"unknown circuit {circuit!r}"
            raise ValueError(msg)
        self.site = site
        self.circuit = circuit
        self.frozen = False
        self._last_t: float | None = None
        self._import_wh = energy_import_wh
        self._export_wh = energy_export_wh
        self.readings = self._measure(site.t_s)
        if attach:
            site.on_tick(self.on_tick)

    def _measure(self, t_s: float) -> MeterReadings:
        current = self.site.current_a(self.circuit)
        voltage = ripple_voltage(self.site.voltage_v, t_s)
        power = current.zip_with(voltage, lambda i, v: i * v)
        return MeterReadings(
            current_a=current,
            voltage_v=voltage,
            power_w=power,
            frequency_hz=ripple_frequency(t_s),
            energy_import_wh=self._import_wh,
            energy_export_wh=self._export_wh,
        )

    def on_tick(self, t_s: float) -> None:
        """``SiteModel.on_tick`` listener: integrate energy, publish unless frozen."""
        dt_s = 0.0 if self._last_t is None else max(0.0, t_s - self._last_t)
        self._last_t = t_s
        energy_wh = self.readings.total_power_w * dt_s / 3600.0
        if energy_wh >= 0:
            self._import_wh += energy_wh
        else:
            self._export_wh -= energy_wh
        if not self.frozen:
            self.readings = self._measure(t_s)


class PowerSource(Protocol):
    """Anything with a signed ``power_w`` attribute (e.g. ``sim.site.PvPlant``)."""

    power_w: float


@dataclass(frozen=True, slots=True)
class InverterReadings:
    """One published state of a virtual PV inverter (production positive, its own sign)."""

    power_w: float = 0.0
    current_a: Phases = ZERO  #: magnitude per phase
    voltage_v: Phases = NOMINAL_V
    frequency_hz: float = 50.0
    energy_produced_wh: float = 0.0

    @property
    def producing(self) -> bool:
        """True while it feeds in."""
        return self.power_w > 0


class PvInverterSource:
    """A three-phase PV inverter on ``plant``: balanced output, energy integrated per tick."""

    def __init__(
        self,
        site: SiteModel,
        plant: PowerSource,
        *,
        energy_produced_wh: float = 8_765_432.0,
        attach: bool = True,
    ) -> None:
        self.site = site
        self.plant = plant
        self.frozen = False
        self._last_t: float | None = None
        self._produced_wh = energy_produced_wh
        self.readings = self._measure(site.t_s)
        if attach:
            site.on_tick(self.on_tick)

    def _measure(self, t_s: float) -> InverterReadings:
        power = max(0.0, float(self.plant.power_w))
        voltage = ripple_voltage(self.site.voltage_v, t_s)
        current = voltage.map(lambda v: power / 3.0 / v)
        return InverterReadings(
            power_w=power,
            current_a=current,
            voltage_v=voltage,
            frequency_hz=ripple_frequency(t_s),
            energy_produced_wh=self._produced_wh,
        )

    def on_tick(self, t_s: float) -> None:
        """``SiteModel.on_tick`` listener."""
        dt_s = 0.0 if self._last_t is None else max(0.0, t_s - self._last_t)
        self._last_t = t_s
        self._produced_wh += self.readings.power_w * dt_s / 3600.0
        if not self.frozen:
            self.readings = self._measure(t_s)


class MeterFaults:
    """The active wire fault of one virtual meter and how its server must behave under it."""

    def __init__(self, name: str, clock: Clock, *, slow_delay_s: float = 2.0) -> None:
        self.name = name
        self.clock = clock
        self.slow_delay_s = slow_delay_s
        self.active: DeviceFault | None = None
        self._online = asyncio.Event()
        self._online.set()
        self._closing = asyncio.Event()
        self._listeners: list[Callable[[DeviceFault | None], None]] = []

    def on_change(self, listener: Callable[[DeviceFault | None], None]) -> None:
        """Call ``listener(fault)`` on every change (the frozen flag of the readings)."""
        self._listeners.append(listener)

    def set(self, kind: DeviceFault | str, *, duration_s: float | None = None) -> None:
        """Switch a fault on (replacing another); ``duration_s`` (clock time) ends it."""
        fault = DeviceFault(kind)
        if fault not in METER_FAULTS:
            msg = f"a meter cannot have the fault {fault.value!r}"
            raise ValueError(msg)
        self.active = fault
        if fault is DeviceFault.OFFLINE:
            self._online.clear()
        else:
            self._online.set()
        log.info("meter fault set", device=self.name, reason=fault.value)
        if duration_s is not None:
            self.clock.call_later(duration_s, lambda: self._expire(fault))
        self._notify()

    def clear(self) -> None:
        """Back to healthy."""
        if self.active is None:
            return
        log.info("meter fault cleared", device=self.name, reason=self.active.value)
        self.active = None
        self._online.set()
        self._notify()

    def _expire(self, fault: DeviceFault) -> None:
        if self.active is fault:
            self.clear()

    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener(self.active)

    @property
    def garbage(self) -> bool:
        """True while every register should read garbage."""
        return self.active is DeviceFault.GARBAGE

    def close(self) -> None:
        """Release every held request (the server is stopping)."""
        self._closing.set()

    async def pass_through(self) -> bool:
        """Wait as the fault demands; False when the server closes meanwhile."""
        if self.active is DeviceFault.OFFLINE:
            online = asyncio.ensure_future(self._online.wait())
            closing = asyncio.ensure_future(self._closing.wait())
            try:
                await asyncio.wait({online, closing}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                online.cancel()
                closing.cancel()
        if self.active is DeviceFault.SLOW and not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), timeout=self.slow_delay_s)
        return not self._closing.is_set()
