"""In-process device adapters: the control loop's ports over the virtual site, no sockets.

:class:`SiteMeter` implements :class:`~fuseguard.control.ports.GridMeter` from the shared
:class:`~fuseguard.sim.site.SiteModel`; :class:`ConnectorCharger` implements
:class:`~fuseguard.control.ports.Charger` (and ``SupportsSafeCurrent``) over a connector model.
Both can be given a fault, as a real device would misbehave:

``offline``  -> :class:`DeviceConnectionError`
``garbage``  -> :class:`DeviceResponseError`
``slow``     -> each call takes ``slow_delay_s`` of the injected clock
``frozen``   -> (meter) the last telegram again, marked ``stale``
``stuck_contactor`` -> (charger) the vehicle keeps drawing whatever is written
"""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol

import structlog

from fuseguard.control.ports import DeviceConnectionError, DeviceResponseError
from fuseguard.model.clock import Clock
from fuseguard.model.phases import Phases
from fuseguard.model.samples import ChargerSample, MeterSample
from fuseguard.sim.site import MAIN, SiteModel

log = structlog.get_logger(__name__)

METER_FAULTS = frozenset({"offline", "slow", "garbage", "frozen"})
CHARGER_FAULTS = frozenset({"offline", "slow", "garbage", "stuck_contactor"})


class ConnectorModel(Protocol):
    """What :class:`ConnectorCharger` needs from a simulated connector."""

    id: str
    stuck: bool

    def sample(self) -> ChargerSample:
        """Current state and measurements."""

    def write_limit(self, current_a: float) -> None:
        """Offer ``current_a`` A per phase."""

    def program_safe_current(self, current_a: float, timeout_s: float) -> None:
        """Program the communication-loss fallback."""


class SiteMeter:
    """A meter at ``circuit`` of the virtual site (``mode`` "phases" or "total_power")."""

    def __init__(
        self,
        site: SiteModel,
        circuit: str = MAIN,
        mode: str = "phases",
        *,
        clock: Clock | None = None,
        slow_delay_s: float = 5.0,
        name: str = "meter",
    ) -> None:
        if mode not in ("phases", "total_power"):
            msg = f"meter mode must be 'phases' or 'total_power', got {mode!r}"
            raise ValueError(msg)
        self.site = site
        self.circuit = circuit
        self.mode = mode
        self.clock = clock if clock is not None else site.clock
        self.slow_delay_s = slow_delay_s
        self.name = name
        self.fault: str | None = None
        self.reads = 0
        self._cache_t: float | None = None
        self._cache: MeterSample | None = None
        self._last_good: MeterSample | None = None
        self._start = self.clock.now() - timedelta(seconds=self.clock.monotonic())

    def set_fault(self, kind: str | None) -> None:
        """Start (``kind``) or end (None) a fault."""
        if kind is not None and kind not in METER_FAULTS:
            msg = f"unknown meter fault {kind!r}"
            raise ValueError(msg)
        log.info("meter_fault", device=self.name, reason=kind or "cleared")
        self.fault = kind

    def _telegram(self) -> MeterSample:
        t = self.site.t_s
        if self._cache is not None and self._cache_t == t:
            return self._cache
        current = self.site.current_a(self.circuit)
        power_w = current.total * self.site.voltage_v
        stamp = self._start + timedelta(seconds=t)
        if self.mode == "phases":
            sample = MeterSample(
                timestamp=stamp,
                power_w=power_w,
                current_a=current,
                voltage_v=Phases.uniform(self.site.voltage_v),
                power_per_phase_w=current * self.site.voltage_v,
            )
        else:
            sample = MeterSample(timestamp=stamp, power_w=power_w)
        self._cache_t, self._cache = t, sample
        return sample

    async def read(self) -> MeterSample:
        """One reading of the last site tick."""
        self.reads += 1
        fault = self.fault
        if fault == "offline":
            msg = f"{self.name}: no route to meter (simulated offline)"
            raise DeviceConnectionError(msg)
        if fault == "garbage":
            msg = f"{self.name}: meter answered with invalid data (simulated garbage)"
            raise DeviceResponseError(msg)
        if fault == "slow":
            await self.clock.sleep(self.slow_delay_s)
        if fault == "frozen" and self._last_good is not None:
            old = self._last_good
            return MeterSample(
                timestamp=old.timestamp,
                power_w=old.power_w,
                current_a=old.current_a,
                voltage_v=old.voltage_v,
                power_per_phase_w=old.power_per_phase_w,
                stale=True,
            )
        sample = self._telegram()
        self._last_good = sample
        return sample


class ConnectorCharger:
    """The :class:`~fuseguard.control.ports.Charger` port over a simulated connector."""

    def __init__(
        self,
        connector: ConnectorModel,
        *,
        clock: Clock,
        slow_delay_s: float = 5.0,
        safe_current_a: int = 6,
        safe_timeout_s: int = 60,
    ) -> None:
        self.connector = connector
        # Read by the controller's setup() to program the charger-side fallback.
        self.safe_current_a = safe_current_a
        self.safe_timeout_s = safe_timeout_s
        self.clock = clock
        self.slow_delay_s = slow_delay_s
        self.fault: str | None = None
        self.writes = 0
        self.last_written_a: int | None = None

    @property
    def name(self) -> str:
        """The charger id."""
        return self.connector.id

    def set_fault(self, kind: str | None) -> None:
        """Start (``kind``) or end (None) a fault; a stuck contactor is the connector's."""
        if kind is not None and kind not in CHARGER_FAULTS:
            msg = f"unknown charger fault {kind!r}"
            raise ValueError(msg)
        log.info("charger_fault", device=self.name, reason=kind or "cleared")
        self.connector.stuck = kind == "stuck_contactor"
        self.fault = None if kind == "stuck_contactor" else kind

    async def _io(self) -> None:
        fault = self.fault
        if fault == "offline":
            msg = f"{self.name}: charger unreachable (simulated offline)"
            raise DeviceConnectionError(msg)
        if fault == "garbage":
            msg = f"{self.name}: charger answered with invalid data (simulated garbage)"
            raise DeviceResponseError(msg)
        if fault == "slow":
            await self.clock.sleep(self.slow_delay_s)

    async def read(self) -> ChargerSample:
        """State and measurements of the connector."""
        await self._io()
        return self.connector.sample()

    async def set_current_limit(self, current_a: int) -> None:
        """Offer ``current_a`` A per phase (0 pauses)."""
        await self._io()
        self.writes += 1
        self.last_written_a = int(current_a)
        self.connector.write_limit(float(current_a))

    async def set_safe_current(self, current_a: int, timeout_s: int) -> None:
        """Program the charger-side communication-loss fallback."""
        await self._io()
        self.connector.program_safe_current(float(current_a), float(timeout_s))
