"""In-process device adapters: the control loop's ports over the virtual site, no sockets.

:class:`SiteMeter` implements :class:`~fuseguard.control.ports.GridMeter` from the shared
:class:`~fuseguard.sim.site.SiteModel`; :class:`ConnectorCharger` implements
:class:`~fuseguard.control.ports.Charger` (and ``SupportsSafeCurrent``) over the one charge-point
core, :class:`~fuseguard.sim.chargepoint.ChargePoint`. Both can be given a fault
(:class:`~fuseguard.model.faults.DeviceFault`), as a real device would misbehave:

``offline``  -> :class:`DeviceConnectionError`
``garbage``  -> :class:`DeviceResponseError`
``slow``     -> each call takes ``slow_delay_s`` of the injected clock (a meter reading is
              taken when asked: it arrives that much older)
``frozen``   -> (meter) the last telegram again, marked ``stale``
``stuck_contactor``, ``rcd_trip``, ``ignores_limit`` -> (charger) the charge point's own faults
``rejects_profiles`` -> (OCPP charger) every limit write refused (:class:`DeviceResponseError`)

The charger-side watchdog is armed where the edge arms it: at the driver's lifecycle start
(``SupportsLifecycle.start``, which the fuseguard policy calls before the controller runs, as
``edge.py`` does). :class:`ConnectorCharger` does what the Bender driver does
(``devices/bender/charger.py``): it programs ``safe_current_a`` after ``safe_timeout_s`` without
a write, and asks the writer to re-write its limit at least every third of that timeout
(``SupportsWatchdog.watchdog_refresh_s``).

The OCPP 1.6 stand-in (``driver = "ocpp"``) and :func:`charger_adapter`, which picks the adapter
for a scenario charger, are in :mod:`fuseguard.scenario.ocpp_adapter`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from datetime import timedelta

import structlog

from fuseguard.control.ports import DeviceConnectionError, DeviceResponseError
from fuseguard.model.circuits import MAIN
from fuseguard.model.clock import Clock
from fuseguard.model.faults import METER_FAULTS, DeviceFault
from fuseguard.model.iec import MIN_CHARGE_CURRENT_A
from fuseguard.model.phases import Phases
from fuseguard.model.samples import ChargerSample, MeterSample
from fuseguard.scenario.config import SCENARIO_CHARGER_FAULTS
from fuseguard.sim.chargepoint import ChargePoint
from fuseguard.sim.request import delayed
from fuseguard.sim.site import SiteModel

log = structlog.get_logger(__name__)


class SiteMeter:
    """A meter at ``circuit`` of the virtual site (``mode`` "phases" or "total_power").

    ``period_s`` > 0: the meter refreshes its values only that often (a sub-meter or an
    inverter slower than the site's tick); ``source`` measures something else than a circuit
    (the PV meter: the inverter's own output, production negative).
    """

    #: ``reads`` only tallies (tests): the day-jump proof does not compare it
    __fuseguard_counters__ = ("reads",)

    def __init__(
        self,
        site: SiteModel,
        circuit: str = MAIN,
        mode: str = "phases",
        *,
        clock: Clock | None = None,
        slow_delay_s: float = 5.0,
        name: str = "meter",
        period_s: float = 0.0,
        source: Callable[[], Phases] | None = None,
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
        self.period_s = period_s
        self._source = source if source is not None else functools.partial(site.current_a, circuit)
        self.fault: DeviceFault | None = None
        self.reads = 0
        self._cache_t: float | None = None
        self._cache: MeterSample | None = None
        self._last_good: MeterSample | None = None
        self._start = self.clock.now() - timedelta(seconds=self.clock.monotonic())

    def set_fault(self, kind: DeviceFault | str | None) -> None:
        """Start (``kind``, one of ``METER_FAULTS``) or end (None) a fault."""
        fault = None if kind is None else DeviceFault(kind)
        if fault is not None and fault not in METER_FAULTS:
            msg = f"unknown meter fault {kind!r}"
            raise ValueError(msg)
        log.info("meter_fault", device=self.name, reason=fault or "cleared")
        self.fault = fault

    def _telegram(self) -> MeterSample:
        t = self.site.t_s
        last = self._cache_t
        if self._cache is not None and last is not None and t - last < self.period_s - 1e-9:
            return self._cache  # not yet refreshed (period_s 0: a new value every tick)
        if self._cache is not None and last == t:
            return self._cache
        current = self._source()
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
        if fault is DeviceFault.OFFLINE:
            msg = f"{self.name}: no route to meter (simulated offline)"
            raise DeviceConnectionError(msg)
        if fault is DeviceFault.GARBAGE:
            msg = f"{self.name}: meter answered with invalid data (simulated garbage)"
            raise DeviceResponseError(msg)
        if fault is DeviceFault.SLOW:
            # the reading is taken when asked and arrives late, with its own (old) timestamp
            sample = self._telegram()
            await self.clock.sleep(self.slow_delay_s)
            self._last_good = sample
            return sample
        if fault is DeviceFault.FROZEN and self._last_good is not None:
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
    """The :class:`~fuseguard.control.ports.Charger` port over a simulated charge point.

    Its writes take effect at the charge point's own time (its last tick), like a charger that
    looks at its registers once per cycle; the controller's clock only paces ``slow`` answers.
    ``start()`` arms the charger-side watchdog (``safe_current_a`` after ``safe_timeout_s``
    without a write), as the Bender driver's start does; ``watchdog_refresh_s`` (a third of the
    timeout, at least 1 s: the Bender driver's refresh interval) tells the writer how often to
    re-write an unchanged limit so that the watchdog stays quiet while the edge is alive.
    """

    #: ``writes`` only tallies (tests, diagnostics): the day-jump proof does not compare it
    __fuseguard_counters__ = ("writes",)

    #: no charging profiles here: ``rejects_profiles`` is the OCPP adapter's
    faults_simulated: frozenset[DeviceFault] = SCENARIO_CHARGER_FAULTS - {
        DeviceFault.REJECTS_PROFILES
    }

    def __init__(
        self,
        charge_point: ChargePoint,
        *,
        clock: Clock,
        slow_delay_s: float = 5.0,
        safe_current_a: int = MIN_CHARGE_CURRENT_A,
        safe_timeout_s: int = 60,
    ) -> None:
        self.charge_point = charge_point
        # The charger-side fallback the driver programs at start (the Bender's registers 131/132)
        self.safe_current_a = safe_current_a
        self.safe_timeout_s = safe_timeout_s
        #: the Bender driver's refresh interval: a third of the timeout, at least 1 s
        self.refresh_interval_s = max(1.0, safe_timeout_s / 3)
        #: the watchdog was programmed (``start`` or ``set_safe_current``)
        self.armed = False
        self.clock = clock
        self.slow_delay_s = slow_delay_s
        self.writes = 0
        self.last_written_a: int | None = None
        #: when the last limit write that reached the charge point was sent (``_land``)
        self._landed_sent_at = -math.inf

    @property
    def name(self) -> str:
        """The charger id."""
        return self.charge_point.name

    @property
    def watchdog_refresh_s(self) -> float:
        """``SupportsWatchdog``: re-write an unchanged limit at least this often (inf: no
        watchdog)."""
        return self.refresh_interval_s if self.safe_timeout_s > 0 else math.inf

    @property
    def watchdog_cadence_s(self) -> float:
        """How often something restarts the charger's watchdog on a schedule of its own while
        the edge is alive (here the writer's refresh; inf: never). A cadence of the run
        (``scenario/jump.py``)."""
        return self.watchdog_refresh_s

    async def start(self) -> None:
        """``SupportsLifecycle``: program the charger-side fallback (``safe_current_a`` after
        ``safe_timeout_s`` without a write), as ``BenderCharger.start`` does."""
        await self.set_safe_current(self.safe_current_a, self.safe_timeout_s)
        log.info(
            "charger started",
            device=self.name,
            safe_current_a=self.safe_current_a,
            safe_timeout_s=self.safe_timeout_s,
            reason="start",
        )

    async def close(self) -> None:
        """``SupportsLifecycle``: nothing to release in process."""

    @property
    def fault(self) -> DeviceFault | None:
        """The fault in force (the scenario runs one at a time), or None."""
        faults = self.charge_point.faults
        return min(faults) if faults else None

    def set_fault(self, kind: DeviceFault | str | None) -> None:
        """Start ``kind`` (one of :attr:`faults_simulated`, replacing any other) or end the
        fault (None)."""
        fault = None if kind is None else DeviceFault(kind)
        if fault is not None and fault not in self.faults_simulated:
            msg = f"unknown charger fault {kind!r}"
            raise ValueError(msg)
        log.info("charger_fault", device=self.name, reason=fault or "cleared")
        cp = self.charge_point
        cp.clear_fault(None, cp.now_s)
        if fault is not None:
            cp.set_fault(fault, cp.now_s)

    async def _io(self, land: Callable[[], None] | None = None) -> None:
        """The wire faults of one request. ``land``: the request's effect, applied by the
        caller after this returns; under ``slow`` it still lands after the delay when the
        caller gives up on the way (``sim/request.py``: a request on the wire is not taken
        back)."""
        faults = self.charge_point.faults
        if not faults:
            return
        if DeviceFault.OFFLINE in faults:
            msg = f"{self.name}: charger unreachable (simulated offline)"
            raise DeviceConnectionError(msg)
        if DeviceFault.GARBAGE in faults:
            msg = f"{self.name}: charger answered with invalid data (simulated garbage)"
            raise DeviceResponseError(msg)
        if DeviceFault.SLOW in faults:
            if land is None:
                await self.clock.sleep(self.slow_delay_s)
            else:
                await delayed(self.clock, self.slow_delay_s, land)

    async def read(self) -> ChargerSample:
        """State and measurements of the charge point."""
        await self._io()
        return self.charge_point.sample()

    async def set_current_limit(self, current_a: int) -> None:
        """Offer ``current_a`` A per phase (0 pauses)."""
        land = functools.partial(self._land, int(current_a), self.clock.monotonic())
        await self._io(land)
        land()

    def _land(self, current_a: int, sent_at: float) -> None:
        """A limit write sent at ``sent_at`` reaches the charge point (also one whose caller
        gave up on it). Requests are taken in the order they were sent: one given up that would
        arrive after a later one (the charger quick again meanwhile) is overtaken, not applied
        over it."""
        if sent_at < self._landed_sent_at:
            return
        self._landed_sent_at = sent_at
        self.writes += 1
        self.last_written_a = current_a
        cp = self.charge_point
        cp.write_limit(float(current_a), cp.now_s)

    async def set_safe_current(self, current_a: int, timeout_s: int) -> None:
        """Program the charger-side communication-loss fallback."""
        await self._io()
        cp = self.charge_point
        cp.program_safe_current(float(current_a), float(timeout_s), cp.now_s)
        self.armed = timeout_s > 0
