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

:class:`OcppConnectorCharger` is the in-process stand-in for an OCPP 1.6 charge point behind
fuseguard's central system (``driver = "ocpp"``): it reports measurements only every
``meter_interval_s`` (MeterValues; the state, as with StatusNotification, at once), and a limit
takes effect ``profile_delay_s`` after it was written (the core's limit delay). Its start installs
what the OCPP driver installs (``devices/ocpp/station.py``): the permanent safe profile
(``safe_current_a``) and the live limit as a lease valid for ``safe_timeout_s`` (the driver's
``[api.ocpp] lease_s``), renewed by the adapter itself every third of it while the charge point
is reachable (the station's own renewal loop, not the writer); a lease that runs out leaves the
charge point on its safe profile.
:func:`charger_adapter` picks the adapter for a scenario charger.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from datetime import timedelta

import structlog

from fuseguard.control.ports import DeviceConnectionError, DeviceResponseError
from fuseguard.model.circuits import MAIN
from fuseguard.model.clock import Clock, TimerHandle
from fuseguard.model.faults import METER_FAULTS, DeviceFault
from fuseguard.model.iec import MIN_CHARGE_CURRENT_A
from fuseguard.model.phases import Phases
from fuseguard.model.samples import ChargerSample, MeterSample
from fuseguard.scenario.config import SCENARIO_CHARGER_FAULTS, ChargerSpec, SiteSpec
from fuseguard.sim.chargepoint import ChargePoint
from fuseguard.sim.site import SiteModel

log = structlog.get_logger(__name__)


class SiteMeter:
    """A meter at ``circuit`` of the virtual site (``mode`` "phases" or "total_power").

    ``period_s`` > 0: the meter refreshes its values only that often (a sub-meter or an
    inverter slower than the site's tick); ``source`` measures something else than a circuit
    (the PV meter: the inverter's own output, production negative).
    """

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

    async def _io(self) -> None:
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
            await self.clock.sleep(self.slow_delay_s)

    async def read(self) -> ChargerSample:
        """State and measurements of the charge point."""
        await self._io()
        return self.charge_point.sample()

    async def set_current_limit(self, current_a: int) -> None:
        """Offer ``current_a`` A per phase (0 pauses)."""
        await self._io()
        self.writes += 1
        self.last_written_a = int(current_a)
        cp = self.charge_point
        cp.write_limit(float(current_a), cp.now_s)

    async def set_safe_current(self, current_a: int, timeout_s: int) -> None:
        """Program the charger-side communication-loss fallback."""
        await self._io()
        cp = self.charge_point
        cp.program_safe_current(float(current_a), float(timeout_s), cp.now_s)
        self.armed = timeout_s > 0


#: faults under which a lease renewal does not reach the charge point (or is refused)
_NO_RENEWAL = frozenset({DeviceFault.OFFLINE, DeviceFault.GARBAGE, DeviceFault.REJECTS_PROFILES})


class OcppConnectorCharger(ConnectorCharger):
    """An OCPP 1.6 charge point in process (see the module docstring).

    ``safe_timeout_s`` is the lease of the live-limit profile (``[api.ocpp] lease_s`` of the
    driver); ``start()`` installs the safe profile and starts the lease renewal (every
    ``renew_every_s``, a third of the lease, at least 1 s: the station's ``renew_every_s``).
    """

    faults_simulated = SCENARIO_CHARGER_FAULTS

    def __init__(
        self,
        charge_point: ChargePoint,
        *,
        clock: Clock,
        meter_interval_s: float = 0.0,
        profile_delay_s: float = 0.0,
        slow_delay_s: float = 5.0,
        safe_current_a: int = MIN_CHARGE_CURRENT_A,
        safe_timeout_s: int = 60,
    ) -> None:
        super().__init__(
            charge_point,
            clock=clock,
            slow_delay_s=slow_delay_s,
            safe_current_a=safe_current_a,
            safe_timeout_s=safe_timeout_s,
        )
        self.meter_interval_s = meter_interval_s
        charge_point.limit_delay_s = profile_delay_s
        self.rejected = 0
        self._refused: str | None = None  # the last limit was refused: why (the sample says so)
        self._written_s = 0.0
        self._offered_over = 0  # MeterValues in a row offering more than the limit
        self._metered: ChargerSample | None = None
        self._metered_s = 0.0
        #: the station renews the lease this often (``StationConfig.renew_every_s``)
        self.renew_every_s = max(1.0, safe_timeout_s / 3)
        self.renewals = 0
        self._renewed_s = -math.inf
        self._renewal: TimerHandle | None = None

    @property
    def watchdog_refresh_s(self) -> float:
        """No ``SupportsWatchdog`` duty for the writer: like the OCPP driver's station, the
        adapter renews the lease itself (``renew_every_s``)."""
        return math.inf

    @property
    def watchdog_cadence_s(self) -> float:
        """The lease renewal period (once started)."""
        return self.renew_every_s if self.safe_timeout_s > 0 else math.inf

    async def start(self) -> None:
        """Install the safe profile and the lease timeout, and start renewing the lease (the
        station's set-up after BootNotification); refused under ``rejects_profiles``."""
        if DeviceFault.REJECTS_PROFILES in self.charge_point.faults:
            await self._io()
            msg = f"{self.name}: SetChargingProfile Rejected (simulated rejects_profiles)"
            raise DeviceResponseError(msg)
        await super().start()
        self._renewed_s = self.clock.monotonic()
        if self._renewal is None and self.safe_timeout_s > 0:
            self._renewal = self.clock.call_later(self.renew_every_s, self._renew)

    async def close(self) -> None:
        """Stop renewing the lease."""
        if self._renewal is not None:
            self._renewal.cancel()
            self._renewal = None

    def _renew(self) -> None:
        """The station's renewal tick: re-install the lease of the last limit, unless it was
        (re)installed within 90 % of the period; it does not reach a charge point that is
        offline or answers garbage, and one that rejects profiles refuses it (the lease runs
        out: the charge point falls back to its safe profile). A ``slow`` one applies it
        ``slow_delay_s`` late."""
        self._renewal = self.clock.call_later(self.renew_every_s, self._renew)
        cp = self.charge_point
        limit = self.last_written_a
        if limit is None or cp.faults & _NO_RENEWAL:
            return
        if self.clock.monotonic() - self._renewed_s < self.renew_every_s * 0.9:
            return
        self._renewed_s = self.clock.monotonic()
        if DeviceFault.SLOW in cp.faults:
            self.clock.call_later(self.slow_delay_s, functools.partial(self._apply_renewal, limit))
        else:
            self._apply_renewal(limit)

    def _apply_renewal(self, limit_a: int) -> None:
        cp = self.charge_point
        if cp.faults & _NO_RENEWAL or self.last_written_a != limit_a:
            return  # lost on the way, or a newer limit was written meanwhile
        self.renewals += 1
        cp.write_limit(float(limit_a), cp.now_s)

    async def read(self) -> ChargerSample:
        """The live state with the measurements of the last meter-value interval."""
        await self._io()
        cp = self.charge_point
        live = cp.sample()
        metered = self._metered
        due = metered is None or cp.now_s - self._metered_s >= self.meter_interval_s
        if due and live.cp_state.charging:
            self._count_offered_over(live)
        why = self._refused or self._ignored()
        if why is not None:
            live = dataclasses.replace(live, uncontrollable=why, errors=(*live.errors, why))
        if not live.cp_state.charging:
            # no draw outside Charging: the central system zeroes it on StatusNotification (the
            # next MeterValues stay due at their interval)
            if metered is not None:
                self._metered = live
            return live
        if metered is None or due:
            self._metered, self._metered_s = live, cp.now_s
            return live
        return dataclasses.replace(
            live,
            measured_age_s=cp.now_s - self._metered_s,
            current_a=metered.current_a,
            power_w=metered.power_w,
            energy_wh=metered.energy_wh,
            session_energy_wh=metered.session_energy_wh,
            signalled_current_a=metered.signalled_current_a,
            phases_in_use=metered.phases_in_use,
        )

    def _count_offered_over(self, live: ChargerSample) -> None:
        """A new MeterValues: does Current.Offered exceed the limit (as the central system
        judges it, ``devices/ocpp/station.py``: + 1 A, two meter intervals + 5 s after a write)?"""
        offered, limit = live.signalled_current_a, self.last_written_a
        settled = self.charge_point.now_s - self._written_s > 2 * self.meter_interval_s + 5
        over = offered is not None and limit is not None and offered > limit + 1.0
        self._offered_over = self._offered_over + 1 if over and settled else 0

    def _ignored(self) -> str | None:
        if self._offered_over < 2:
            return None
        return f"{self.name}: offers more than the limit {self.last_written_a} A (ignores it)"

    async def set_current_limit(self, current_a: int) -> None:
        """A lease profile; refused under ``rejects_profiles``."""
        if DeviceFault.REJECTS_PROFILES in self.charge_point.faults:
            await self._io()
            self.rejected += 1
            msg = f"{self.name}: SetChargingProfile Rejected (simulated rejects_profiles)"
            self._refused = msg
            raise DeviceResponseError(msg)
        if current_a != self.last_written_a:
            self._written_s = self.charge_point.now_s
        await super().set_current_limit(current_a)
        self._renewed_s = self.clock.monotonic()
        self._refused = None


def charger_adapter(
    charge_point: ChargePoint, spec: ChargerSpec, site: SiteSpec, clock: Clock
) -> ConnectorCharger:
    """The in-process driver of scenario charger ``spec`` (its ``driver``)."""
    if spec.driver == "ocpp":
        return OcppConnectorCharger(
            charge_point,
            clock=clock,
            meter_interval_s=spec.meter_interval_s,
            profile_delay_s=spec.profile_delay_s,
            slow_delay_s=site.slow_delay_s,
            safe_current_a=site.charger_safe_current_a,
            safe_timeout_s=site.charger_safe_timeout_s,
        )
    return ConnectorCharger(
        charge_point,
        clock=clock,
        slow_delay_s=site.slow_delay_s,
        safe_current_a=site.charger_safe_current_a,
        safe_timeout_s=site.charger_safe_timeout_s,
    )
