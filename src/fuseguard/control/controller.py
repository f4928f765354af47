"""The control loop: meter and charger samples -> allocation -> setpoints.

Event-driven. A poll timer fires every ``meter_period_s`` (the meter's own rate): the meter and all
chargers are read concurrently, the allocation runs and changed setpoints are written to all
chargers concurrently. A change of the external limit (flex management) or of an EVSE target wakes
the loop at once, without waiting for the next meter sample. Decreases are written immediately,
increases are ramped (``ramp_up_a_per_s``).

Failure policy (``docs/safety.md``):

* meter stale or unreachable for more than ``meter_stale_after_s``: the non-EV load is assumed to be
  the peak observed over the last ``peak_window_s``, and the EVs together are held at
  ``FallbackCurrentLimit`` per phase, until fresh samples return;
* charger unreachable for more than ``charger_timeout_s``: it is assumed to draw its last setpoint
  (or its max when none is known) on its phases, and the others are reduced accordingly;
* charger drawing clearly more than its setpoint (stuck contactor): its real draw is treated as
  uncontrollable load, it gets setpoint 0, and it is reported;
* EMS silent: the keep-alive watchdog of :class:`~fuseguard.control.flex.FlexManagement`;
* fuseguard gone: the charger-side safe current the drivers program at start-up
  (``SupportsSafeCurrent``); setpoints are re-written every ``rewrite_interval_s`` so the
  charger's watchdog only fires when fuseguard is really gone.

Time comes only from the injected clock, so the same loop runs in real and in virtual time.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from fuseguard.control.allocator import AllocatorSession
from fuseguard.control.flex import FlexManagement
from fuseguard.control.plug_settings import PlugSettings
from fuseguard.control.ports import Charger, DeviceError, GridMeter
from fuseguard.control.targets import EvseTargets
from fuseguard.control.types import (
    MAIN,
    ChargerSpec,
    CircuitSpec,
    ControllerConfig,
    ControllerStatus,
    PlugView,
)
from fuseguard.model.clock import Clock
from fuseguard.model.phases import ZERO, Phase, Phases
from fuseguard.model.samples import ChargerSample, MeterSample
from fuseguard.model.status import PlugStatus, plug_status

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class PlugRuntime:
    """What the loop knows about one charger between cycles."""

    spec: ChargerSpec
    sample: ChargerSample | None = None
    sample_at: float | None = None
    last_ok_at: float | None = None
    error: str | None = None
    setpoint_a: int = 0
    written_a: int | None = None
    written_at: float = -math.inf
    changed_at: float = -math.inf
    reason: str = "starting up"
    charging_since: float | None = None
    stuck_since: float | None = None
    stuck: bool = False
    underuse_since: float | None = None
    demand_cap_a: float | None = None
    demand_cap_at: float = 0.0
    learned_phases: tuple[Phase, ...] | None = None
    status: PlugStatus = PlugStatus.INIT
    grid_a: Phases = ZERO
    idle_since: float | None = None
    idle_until: float | None = None
    raise_since: float | None = None
    raise_floor: int = 0

    def take(self, sample: ChargerSample) -> None:
        """Store a new sample and its draw on grid phases (through the wiring rotation)."""
        self.sample = sample
        c = sample.current_a
        if c.l1 < 0 or c.l2 < 0 or c.l3 < 0:
            c = c.maximum(0.0)
        self.grid_a = self.spec.rotation.to_grid(c)

    def online(self, now: float, timeout_s: float) -> bool:
        """A sample arrived within ``timeout_s``."""
        return self.last_ok_at is not None and now - self.last_ok_at <= timeout_s

    def measured_grid_a(self) -> Phases:
        """Measured draw on grid phases (through the wiring rotation)."""
        return self.grid_a


class Controller:
    """The edge control loop (see module docstring)."""

    def __init__(
        self,
        *,
        clock: Clock,
        config: ControllerConfig,
        meter: GridMeter,
        chargers: Mapping[str, Charger],
        flex: FlexManagement | None = None,
        targets: EvseTargets | None = None,
        plug_settings: PlugSettings | None = None,
    ) -> None:
        self._clock = clock
        self.config = config
        self._meter = meter
        self._chargers = dict(chargers)
        self._flex = flex
        self._targets = targets
        self._circuits = {c.id: c for c in config.circuits}
        if MAIN not in self._circuits:
            msg = "the circuit tree needs a 'main' circuit"
            raise ValueError(msg)
        for spec in config.chargers:
            if spec.id not in self._chargers:
                msg = f"no charger driver for {spec.id!r}"
                raise ValueError(msg)
            if spec.circuit not in self._circuits:
                msg = f"charger {spec.id!r} is on unknown circuit {spec.circuit!r}"
                raise ValueError(msg)
        self._plugs = {spec.id: PlugRuntime(spec) for spec in config.chargers}
        self._allocator = AllocatorSession(config, plug_settings)
        self._meter_sample: MeterSample | None = None
        self._meter_ok_at: float | None = None
        self._meter_error: str | None = None
        # per-minute maxima of the non-EV load, for the meter-loss fallback
        self._non_ev_peaks: deque[tuple[int, Phases]] = deque()
        self._paths = {cid: tuple(self._path(cid)) for cid in self._circuits}
        self._fresh_s = 1.5 * config.meter_period_s + config.poll_wait_s
        self._non_ev: dict[str, Phases] = {}
        self._limits: dict[str, Phases] = {}
        self._wake = asyncio.Event()
        self._write_events = {pid: asyncio.Event() for pid in self._plugs}
        self._synced = False
        self._last_raise_at = -math.inf
        self._planned_main = Phases.uniform(math.inf)
        self._cycles = 0
        self._last_cycle_ms = 0.0
        self._listeners: list[Callable[[ControllerStatus], None]] = []
        if flex is not None:
            flex.subscribe(self.wake)
        if targets is not None:
            targets.subscribe(self.wake)
        if plug_settings is not None:
            plug_settings.subscribe(self.wake)

    # --- public -------------------------------------------------------------------------------

    def wake(self) -> None:
        """Run an allocation now (a limit or a target changed)."""
        self._wake.set()

    def subscribe(self, listener: Callable[[ControllerStatus], None]) -> None:
        """Call ``listener`` after every cycle."""
        self._listeners.append(listener)

    def status(self) -> ControllerStatus:
        """The picture now: the last decision, the setpoints decided and what was written."""
        return self._make_status()

    @property
    def last_snapshot(self) -> Any:
        """The allocator's input of the last cycle (``fuseguard allocate`` reads this form)."""
        return self._allocator.last_snapshot

    async def run(self) -> None:
        """Run until cancelled.

        One task polls the meter (twice per meter period) and the chargers (once), one writer
        task per charger writes its setpoint; the decision loop wakes after every charger poll,
        on a meter sample that needs it, and on every limit or target change.
        """
        tasks = [asyncio.create_task(self._poll_loop(), name="poll")]
        for pid in self._plugs:
            tasks.append(asyncio.create_task(self._writer(pid), name=f"write:{pid}"))
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                self.decide()
                for task in tasks:
                    if task.done() and not task.cancelled() and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def decide(self) -> None:
        """One decision: derive loads and limits, allocate, hand setpoints to the writers."""
        t0 = time.perf_counter()  # measures compute time only; control time is the clock
        self._allocate_and_decide()
        for pid, plug in self._plugs.items():
            if plug.setpoint_a != plug.written_a or self._rewrite_due(plug):
                self._write_events[pid].set()
        self._cycles += 1
        self._last_cycle_ms = (time.perf_counter() - t0) * 1000.0
        if self._listeners:
            status = self._make_status()
            for listener in list(self._listeners):
                listener(status)

    # --- reading ------------------------------------------------------------------------------

    async def _poll_loop(self) -> None:
        """Poll the meter twice per meter period (so a new telegram is seen within half a
        period) and the chargers once per period, all chargers at the same instant.

        A meter sample above the limit, or one that rose while none of our cars is ramping up,
        wakes the decision at once; every charger poll wakes it after the answers are in (at
        most ``poll_wait_s``: a hanging device never holds up the others or the decision; its
        read goes on and lands in a later cycle, and is abandoned as failed after its timeout).
        """
        half = self.config.meter_period_s / 2.0
        inflight: dict[str, tuple[asyncio.Task[None], float]] = {}
        reads: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {"": self._read_meter}
        for pid in self._plugs:
            reads[pid] = functools.partial(self._read_charger, pid)
        chargers_due = True
        try:
            while True:
                started = self._clock.monotonic()
                keys = list(reads) if chargers_due else [""]
                for key in keys:
                    running = inflight.get(key)
                    if running is not None and not running[0].done():
                        self._abandon_if_late(key, running, started)
                        continue
                    inflight[key] = (asyncio.create_task(reads[key]()), started)
                waiting = [inflight[k][0] for k in keys if k in inflight]
                await self._wait_for(waiting, self.config.poll_wait_s)
                if chargers_due:
                    self._synced = True  # meter and chargers read at the same instant
                    self._wake.set()
                chargers_due = not chargers_due
                await self._clock.sleep(max(0.0, half - (self._clock.monotonic() - started)))
        finally:
            for task, _ in inflight.values():
                task.cancel()

    def _abandon_if_late(
        self, key: str, running: tuple[asyncio.Task[None], float], now: float
    ) -> None:
        """Cancel a read that has been waiting longer than its device's timeout."""
        task, since = running
        timeout = self.config.meter_timeout_s if key == "" else self.config.charger_timeout_s
        if now - since < timeout:
            return
        task.cancel()
        reason = f"no answer within {timeout:g} s"
        if key == "":
            self._meter_failed(reason)
        else:
            self._charger_failed(self._plugs[key], reason)

    async def _wait_for(self, tasks: list[asyncio.Task[None]], timeout_s: float) -> None:
        """Wait until every task is done or ``timeout_s`` of clock time has passed."""
        pending = [t for t in tasks if not t.done()]
        if not pending:
            return
        everything = asyncio.ensure_future(asyncio.wait(pending))
        timer = asyncio.ensure_future(self._clock.sleep(timeout_s))
        try:
            await asyncio.wait({everything, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            everything.cancel()
            timer.cancel()

    async def _read_meter(self) -> None:
        try:
            sample = await self._meter.read()
        except DeviceError as err:
            self._meter_failed(str(err) or type(err).__name__)
            return
        except Exception as err:
            # a driver bug must not stop control: the meter counts as failed, loudly
            log.exception("meter_driver_error", device="meter", reason=repr(err))
            self._meter_failed(f"driver error: {err!r}")
            return
        now = self._clock.monotonic()
        if not _meter_sample_ok(sample):
            self._meter_failed("meter sample has non-finite values")
            return
        if sample.stale:
            # a meter polled faster than it sends telegrams repeats one now and then; only a
            # lasting repeat is a frozen meter
            last_ok = self._meter_ok_at if self._meter_ok_at is not None else -math.inf
            if now - last_ok > 2 * self.config.meter_period_s:
                self._meter_failed("meter timestamp did not advance (frozen)")
            return
        if self._meter_error is not None:
            log.info("meter_recovered", device="meter", after=self._meter_error)
        previous = self._meter_sample
        self._meter_error = None
        self._meter_sample = sample
        self._meter_ok_at = now
        if (
            _over(sample, self._main_limit(), self.config.voltage_v)
            or _over(sample, self._planned_main + 1.0, self.config.voltage_v)
            or (
                previous is not None
                and _rose(previous, sample, self.config.voltage_v)
                and now - self._last_raise_at > self.config.decrease_grace_s
            )
        ):
            # over the limit, above what our cars could explain, or a rise while none of our
            # cars is ramping up: decide now, with the chargers' last samples (the next poll
            # brings a decision on fresh ones)
            self._wake.set()

    def _meter_failed(self, reason: str) -> None:
        if reason != self._meter_error:
            log.warning("meter_unavailable", device="meter", reason=reason)
        self._meter_error = reason

    async def _read_charger(self, pid: str) -> None:
        plug = self._plugs[pid]
        try:
            sample = await self._chargers[pid].read()
        except DeviceError as err:
            self._charger_failed(plug, str(err) or type(err).__name__)
            return
        except Exception as err:
            # a driver bug must not stop control: the charger counts as failed, loudly
            log.exception("charger_driver_error", charger=pid, reason=repr(err))
            self._charger_failed(plug, f"driver error: {err!r}")
            return
        if not _charger_sample_ok(sample):  # a NaN draw would hide load from the allocator
            self._charger_failed(plug, "charger sample has non-finite values")
            return
        now = self._clock.monotonic()
        if plug.error is not None:
            log.info("charger_recovered", charger=pid, after=plug.error)
        plug.error = None
        prev = plug.sample
        plug.take(sample)
        plug.sample_at = now
        plug.last_ok_at = now
        if sample.cp_state.charging and (prev is None or not prev.cp_state.charging):
            plug.charging_since = now
        elif not sample.cp_state.charging:
            plug.charging_since = None
        if prev is not None and prev.cp_state is not sample.cp_state:
            log.info(
                "charger_state",
                charger=pid,
                cp=sample.cp_state.value,
                ocpp=sample.ocpp_state.value if sample.ocpp_state else None,
            )

    def _charger_failed(self, plug: PlugRuntime, reason: str) -> None:
        if reason != plug.error:
            log.warning("charger_unavailable", charger=plug.spec.id, reason=reason)
        plug.error = reason

    # --- deciding -----------------------------------------------------------------------------

    def _meter_fresh(self, now: float) -> bool:
        return (
            self._meter_ok_at is not None
            and now - self._meter_ok_at <= self.config.meter_stale_after_s
        )

    def _main_limit(self) -> Phases:
        fuse = self._circuits[MAIN].fuse
        if self._flex is None:
            return fuse
        return fuse.minimum(self._flex.limit_a())

    def _fallback_ev_a(self) -> float:
        if self._flex is not None:
            return max(0.0, self._flex.settings().fallback_current_limit_a)
        return 0.0

    def _path(self, circuit: str) -> list[str]:
        out = []
        node: str | None = circuit
        while node is not None:
            out.append(node)
            node = self._circuits[node].parent
        return out

    def _measured_non_ev(self, now: float, *, record: bool) -> Phases:
        """Non-EV load through the main meter, per phase (A, >= 0)."""
        sample = self._meter_sample
        assert sample is not None
        ev = ZERO
        ev_power = 0.0
        for plug in self._plugs.values():
            drawn = self._ev_estimate(plug, now)
            ev = ev + drawn
            if plug.sample is not None and drawn is plug.grid_a:
                ev_power += plug.sample.power_w
        if sample.current_a is not None:
            non_ev = (sample.current_a - ev).maximum(0.0)
        else:
            v = self.config.voltage_v
            non_ev_w = max(0.0, sample.power_w - (ev.total * v if ev_power <= 0 else ev_power))
            if self.config.meter_phase_assumption == "worst":
                non_ev = Phases.uniform(non_ev_w / v)
            else:
                non_ev = Phases.uniform(non_ev_w / (3 * v))
        if not record:
            return non_ev
        minute = int(now // 60.0)
        peaks = self._non_ev_peaks
        if peaks and peaks[-1][0] == minute:
            peaks[-1] = (minute, peaks[-1][1].maximum(non_ev))
        else:
            peaks.append((minute, non_ev))
        while peaks and peaks[0][0] < minute - self.config.peak_window_s / 60.0:
            peaks.popleft()
        return non_ev

    def _peak_non_ev(self) -> Phases:
        peak = ZERO
        for _, v in self._non_ev_peaks:
            peak = peak.maximum(v)
        return peak

    def _allocate_and_decide(self) -> None:
        cfg = self.config
        now = self._clock.monotonic()
        limits = {cid: c.fuse for cid, c in self._circuits.items()}
        limits[MAIN] = self._main_limit()
        meter_fresh = self._meter_fresh(now)
        non_ev: dict[str, Phases] = {cid: c.non_ev_load_a for cid, c in self._circuits.items()}
        if meter_fresh:
            # only meter and charger samples of the same instant feed the peak history used
            # in a meter fallback; a decision in between (a limit or target change, an
            # overload) works with the newest samples it has
            non_ev[MAIN] = self._measured_non_ev(now, record=self._synced)
            self._synced = False
        else:
            # worst plausible non-EV load, and the EVs together held at the fallback
            peak = self._peak_non_ev()
            held = limits[MAIN] - self._fallback_ev_a()
            non_ev[MAIN] = peak.maximum(held).maximum(0.0)
        # sub-circuit non-EV loads also flow through their ancestors
        for cid, c in self._circuits.items():
            if cid != MAIN and c.non_ev_load_a != ZERO:
                for anc in self._paths[cid][1:]:
                    if anc != MAIN or not meter_fresh:
                        non_ev[anc] = non_ev[anc] + c.non_ev_load_a
        # uncontrollable plugs: offline (reserve last setpoint or max), stuck (real draw)
        available: dict[str, bool] = {}
        phases: dict[str, tuple[Phase, ...]] = {}
        max_a: dict[str, int] = {}
        decreasing = False
        for pid, plug in self._plugs.items():
            spec = plug.spec
            online = plug.online(now, cfg.charger_timeout_s)
            sample = plug.sample
            reserved = ZERO
            self._update_stuck(plug, now)
            if not online:
                amps = plug.written_a if plug.written_a is not None else spec.max_a
                reserved = Phases.on(spec.rotation.grid_phases(spec.wired_phases), float(amps))
                available[pid] = False
            elif plug.stuck:
                reserved = plug.measured_grid_a()
                available[pid] = False
            else:
                # a car still above its setpoint (slow to follow a decrease, or ignoring it)
                excess = self._excess_a(plug, now)
                if excess is not None:
                    if now - plug.changed_at <= cfg.decrease_grace_s:
                        decreasing = True  # it is coming down: others wait before increasing
                    else:
                        reserved = excess  # it does not come down: count what it really draws
                available[pid] = spec.child_edge or (
                    bool(
                        sample is not None
                        and sample.cp_state.vehicle_connected
                        and sample.authorized
                        and not sample.errors
                    )
                    and not self._idle(plug, now)
                )
            if reserved != ZERO:
                # the meter-derived non-EV load excludes this plug's last measured draw, so
                # reserving it on every circuit up to main keeps the sum right
                for anc in self._paths[spec.circuit]:
                    non_ev[anc] = non_ev[anc] + reserved
            phases[pid] = self._phases_in_use(plug)
            max_a[pid] = self._effective_max(plug, now)
        caps: dict[str, tuple[int, datetime] | None] = {}
        for pid, plug in self._plugs.items():
            caps[pid] = None
            if self._targets is not None and plug.spec.evse_uuid is not None:
                target = self._targets.get(plug.spec.evse_uuid)
                if target is not None:
                    caps[pid] = (target.current_a, target.valid_until)
        snapshot = self._allocator.build_snapshot(
            limits=limits,
            non_ev=non_ev,
            plugs=self._plugs,
            available=available,
            phases=phases,
            max_a=max_a,
            caps=caps,
            pv_surplus_w=self._pv_surplus_w(),
        )
        result = self._allocator.step(now, snapshot)
        decided: dict[str, tuple[int, str]] = {}
        for pid, plug in self._plugs.items():
            setpoint = result.setpoints.get(pid, 0)
            reason = result.reasons.get(pid, "")
            if not plug.online(now, cfg.charger_timeout_s):
                assumed = plug.written_a if plug.written_a is not None else plug.spec.max_a
                reason = f"offline ({plug.error or 'no answer'}): assuming it draws {assumed} A"
                setpoint = 0
            elif plug.stuck:
                reason = "stuck contactor: draws at setpoint 0, counted at its real draw"
                setpoint = 0
            elif plug.idle_until is not None:
                minutes = (plug.idle_until - now) / 60.0
                reason = f"car takes no current (full?): offered again in {minutes:.0f} min"
            elif self._fresh(plug, now) and plug.grid_a.max > setpoint + cfg.excess_margin_a:
                decreasing = True  # this decision lowers a car below what it draws now
            if not meter_fresh and available.get(pid):
                reason = f"meter fallback: EVs held at {self._fallback_ev_a():.0f} A; " + reason
            decided[pid] = (setpoint, reason)
        for pid, plug in self._plugs.items():
            setpoint, reason = decided[pid]
            if decreasing and setpoint > (plug.written_a or 0):
                # break before make: increase only once the decreased cars have come down
                setpoint = plug.written_a or 0
                reason += "; increase waits for other cars to come down"
            plug.setpoint_a = self._ramp(plug, setpoint, now)
            plug.reason = reason
            plug.status = self._plug_status(plug, now)
        self._limits = limits
        self._non_ev = non_ev
        # the most the main meter should show until the next decision: the non-EV load as
        # derived plus every car at the higher of its old and new setpoint
        planned = non_ev[MAIN]
        for pid, plug in self._plugs.items():
            amps = max(plug.setpoint_a, plug.written_a or 0)
            if amps:
                planned = planned + Phases.on(phases[pid], float(amps))
        self._planned_main = planned

    def _fresh(self, plug: PlugRuntime, now: float) -> bool:
        """The plug's sample is from the current or the previous poll."""
        return plug.sample_at is not None and now - plug.sample_at <= self._fresh_s

    def _ev_estimate(self, plug: PlugRuntime, now: float) -> Phases:
        """What a plug draws now, per grid phase, as far as it can be attributed: its
        measurement when fresh; nothing when the charger has not answered this cycle. The
        meter still sees whatever such a charger really draws, so that current is counted as
        load fuseguard cannot control (and an offline charger's setpoint is reserved on top):
        safe, at the price of some capacity while a charger is silent."""
        return plug.grid_a if self._fresh(plug, now) else ZERO

    def _excess_a(self, plug: PlugRuntime, now: float) -> Phases | None:
        """What a plug draws above its written setpoint, per grid phase (None: nothing)."""
        if plug.sample is None or plug.written_a is None or not self._fresh(plug, now):
            return None
        allowed = float(plug.written_a) + self.config.excess_margin_a
        excess = plug.grid_a.map(lambda v: max(0.0, v - allowed))
        return excess if excess.max > 0.0 else None

    def _pv_surplus_w(self) -> float:
        sample = self._meter_sample
        if sample is None:
            return 0.0
        ev_w = sum(p.sample.power_w for p in self._plugs.values() if p.sample is not None)
        return max(0.0, ev_w - sample.power_w)

    def _phases_in_use(self, plug: PlugRuntime) -> tuple[Phase, ...]:
        """Grid phases the car loads: measured while it charges, remembered while it is plugged
        in, else the phases the charger reports or all wired phases (the safe assumption)."""
        spec = plug.spec
        sample = plug.sample
        wired = spec.rotation.grid_phases(spec.wired_phases)
        if sample is None or not sample.cp_state.vehicle_connected:
            plug.learned_phases = None
            return wired
        if sample.cp_state.charging:
            used = tuple(
                spec.rotation.grid_order[i]
                for i in range(spec.wired_phases)
                if sample.current_a[i] >= self.config.phase_detect_a
            )
            if used:
                plug.learned_phases = used
                return used
        if plug.learned_phases is not None:
            return plug.learned_phases
        if sample.phases_in_use in (1, 2, 3):
            return spec.rotation.grid_phases(min(sample.phases_in_use, spec.wired_phases))
        return wired

    def _effective_max(self, plug: PlugRuntime, now: float) -> int:
        spec = plug.spec
        limit = spec.max_a
        sample = plug.sample
        if sample is not None:
            for v in (sample.max_current_a, sample.cable_rating_a):
                if v is not None and v >= spec.min_a:
                    limit = min(limit, int(v))
        # a car drawing clearly less than offered frees the rest for the others
        if sample is not None and sample.cp_state.charging and plug.written_a:
            drawn = max(sample.current_a)
            if drawn < plug.written_a - self.config.underuse_margin_a:
                if plug.underuse_since is None:
                    plug.underuse_since = now
                elif now - plug.underuse_since >= self.config.underuse_after_s:
                    cap = max(float(spec.min_a), math.ceil(drawn + self.config.underuse_margin_a))
                    if plug.demand_cap_a is None or cap < plug.demand_cap_a:
                        plug.demand_cap_a = cap
                        plug.demand_cap_at = now
            else:
                plug.underuse_since = None
                if plug.demand_cap_a is not None and drawn >= plug.demand_cap_a - 1.0:
                    plug.demand_cap_a = None  # it takes what it gets: lift the cap
        else:
            plug.underuse_since = None
            if sample is None or not sample.cp_state.vehicle_connected:
                plug.demand_cap_a = None
        if plug.demand_cap_a is not None:
            if now - plug.demand_cap_at >= self.config.underuse_probe_s:
                plug.demand_cap_a = None  # probe again: the car may want more now
            else:
                limit = min(limit, int(plug.demand_cap_a))
        return max(limit, spec.min_a)

    def _update_stuck(self, plug: PlugRuntime, now: float) -> None:
        sample = plug.sample
        if sample is None or plug.written_a is None or plug.spec.child_edge:
            plug.stuck_since = None
            plug.stuck = False
            return
        if not self._fresh(plug, now):
            return  # judge a contactor only on a current measurement
        drawn = max(sample.current_a)
        over = drawn > plug.written_a + self.config.stuck_margin_a
        settled = now - plug.changed_at >= self.config.stuck_after_s
        if over and settled:
            if plug.stuck_since is None:
                plug.stuck_since = now
            if not plug.stuck and now - plug.stuck_since >= self.config.stuck_after_s:
                plug.stuck = True
                log.error(
                    "charger_stuck",
                    charger=plug.spec.id,
                    drawn_a=round(drawn, 1),
                    setpoint_a=plug.written_a,
                    reason="draws above its setpoint",
                )
        elif not over:
            if plug.stuck:
                log.info("charger_unstuck", charger=plug.spec.id)
            plug.stuck_since = None
            plug.stuck = False

    def _idle(self, plug: PlugRuntime, now: float) -> bool:
        """A car that takes no current although offered (full, or not ready) is paused, so the
        current offered to it goes to others; it is offered current again every
        ``idle_reprobe_s`` to see whether it wants to charge now."""
        cfg = self.config
        sample = plug.sample
        if sample is None or not sample.cp_state.vehicle_connected:
            plug.idle_since = plug.idle_until = None
            return False
        if plug.idle_until is not None:
            if now < plug.idle_until:
                return True
            plug.idle_until = plug.idle_since = None  # probe: offer current again
            log.info("car_probe", charger=plug.spec.id, reason="offering current again")
        offered = plug.written_a or 0
        if self._fresh(plug, now) and offered >= plug.spec.min_a and plug.grid_a.max < 1.0:
            if plug.idle_since is None:
                plug.idle_since = max(now, plug.changed_at + cfg.decrease_grace_s)
            elif now - plug.idle_since >= cfg.idle_after_s:
                plug.idle_until = now + cfg.idle_reprobe_s
                log.info(
                    "car_not_charging",
                    charger=plug.spec.id,
                    offered_a=offered,
                    reason="takes no current: paused, offered again later",
                )
                return True
        else:
            plug.idle_since = None
        return False

    def _ramp(self, plug: PlugRuntime, target: int, now: float) -> int:
        prev = plug.written_a or 0
        if target <= prev:
            plug.raise_since = None
            return target
        if prev > 0:
            # a running car is raised only when the higher value has held for raise_after_s:
            # no 1 A up-and-down with every flicker of the building load
            if plug.raise_since is None or target < plug.raise_floor:
                plug.raise_floor = target
            if plug.raise_since is None:
                plug.raise_since = now
            if now - plug.raise_since < self.config.raise_after_s:
                return prev
            target = plug.raise_floor
            plug.raise_since = None
        if prev == 0:
            return max(plug.spec.min_a, min(target, plug.spec.min_a))
        since = now - plug.changed_at
        step = self.config.ramp_up_a_per_s * max(since, self.config.meter_period_s)
        return min(target, prev + max(1, int(step)))

    def _plug_status(self, plug: PlugRuntime, now: float) -> PlugStatus:
        online = plug.online(now, self.config.charger_timeout_s)
        sample = plug.sample
        charging_for = now - plug.charging_since if plug.charging_since is not None else None
        return plug_status(
            online=online,
            cp=sample.cp_state if sample is not None else None,
            ocpp=sample.ocpp_state if sample is not None else None,
            offered_current_a=float(plug.written_a or 0),
            has_errors=bool(sample.errors) if sample is not None else False,
            charging_for_s=charging_for,
            recently_started_window_s=self.config.recently_started_window_s,
        )

    # --- writing ------------------------------------------------------------------------------

    def _rewrite_due(self, plug: PlugRuntime) -> bool:
        return (
            plug.written_a is not None
            and self._clock.monotonic() - plug.written_at >= self.config.rewrite_interval_s
        )

    async def _writer(self, pid: str) -> None:
        """Write the latest setpoint of one charger (coalescing; decreases are never queued
        behind another charger's slow write)."""
        plug = self._plugs[pid]
        event = self._write_events[pid]
        while True:
            await event.wait()
            event.clear()
            now = self._clock.monotonic()
            if not plug.online(now, self.config.charger_timeout_s):
                continue
            if plug.setpoint_a == plug.written_a and not self._rewrite_due(plug):
                continue
            await self._write(plug)

    async def _write(self, plug: PlugRuntime) -> None:
        pid = plug.spec.id
        value = plug.setpoint_a
        try:
            async with asyncio.timeout(self.config.write_timeout_s):
                await self._chargers[pid].set_current_limit(value)
        except (DeviceError, TimeoutError) as err:
            reason = str(err) or type(err).__name__
            log.warning("setpoint_write_failed", charger=pid, setpoint_a=value, reason=reason)
            plug.error = f"write failed: {reason}"
            return
        except Exception as err:
            log.exception("charger_driver_error", charger=pid, reason=repr(err))
            plug.error = f"write failed: driver error: {err!r}"
            return
        if value > (plug.written_a or 0):
            self._last_raise_at = self._clock.monotonic()
        if plug.written_a != value:
            log.info(
                "setpoint",
                charger=pid,
                setpoint_a=value,
                previous_a=plug.written_a,
                reason=plug.reason,
            )
            plug.written_at = self._clock.monotonic()
            plug.changed_at = plug.written_at
        else:
            plug.written_at = self._clock.monotonic()
        plug.written_a = value

    # --- reporting ----------------------------------------------------------------------------

    def _make_status(self) -> ControllerStatus:
        now = self._clock.monotonic()
        sample = self._meter_sample
        if sample is not None and sample.current_a is not None:
            grid = sample.current_a
        elif sample is not None:
            grid = Phases.uniform(sample.power_w / (3 * self.config.voltage_v))
        else:
            grid = ZERO
        plugs = []
        for pid, p in self._plugs.items():
            s = p.sample
            plugs.append(
                PlugView(
                    id=pid,
                    evse_uuid=p.spec.evse_uuid,
                    plug_uuid=p.spec.plug_uuid,
                    plug_label=p.spec.plug_label,
                    circuit=p.spec.circuit,
                    status=p.status,
                    online=p.online(now, self.config.charger_timeout_s),
                    setpoint_a=p.setpoint_a,
                    written_a=p.written_a,
                    reason=p.reason,
                    current_a=s.current_a if s is not None else ZERO,
                    grid_current_a=p.measured_grid_a(),
                    power_w=s.power_w if s is not None else 0.0,
                    energy_wh=s.session_energy_wh if s is not None else None,
                    stuck=p.stuck,
                    error=p.error,
                )
            )
        return ControllerStatus(
            time=self._clock.now(),
            meter_ok=self._meter_error is None and sample is not None,
            meter_fallback=not self._meter_fresh(now),
            meter_sample=sample,
            grid_current_a=grid,
            grid_power_w=sample.power_w if sample is not None else 0.0,
            main_limit_a=self._limits.get(MAIN, self._main_limit()),
            flex_fallback=bool(self._flex is not None and self._flex.in_fallback),
            limits_a=dict(self._limits),
            non_ev_load_a=dict(self._non_ev),
            plugs=tuple(plugs),
            cycles=self._cycles,
            last_cycle_ms=self._last_cycle_ms,
        )


def _rose(before: MeterSample, after: MeterSample, voltage_v: float) -> bool:
    """The measured load rose by at least 1 A on some phase (or 1 A worth of total power)."""
    if before.current_a is not None and after.current_a is not None:
        return any(b - a >= 1.0 for a, b in zip(before.current_a, after.current_a, strict=True))
    return after.power_w - before.power_w >= voltage_v


def _over(sample: MeterSample, limit: Phases, voltage_v: float) -> bool:
    """The meter shows the main circuit above its limit (total power: even when balanced)."""
    if sample.current_a is not None:
        return not sample.current_a.all_le(limit)
    return sample.power_w / (3.0 * voltage_v) > limit.max


def _charger_sample_ok(sample: ChargerSample) -> bool:
    optional = (sample.signalled_current_a, sample.limit_a, sample.max_current_a)
    return (
        sample.current_a.is_finite()
        and math.isfinite(sample.power_w)
        and all(v is None or math.isfinite(v) for v in optional)
    )


def _meter_sample_ok(sample: MeterSample) -> bool:
    if not math.isfinite(sample.power_w):
        return False
    return sample.current_a is None or sample.current_a.is_finite()


__all__ = [
    "ChargerSpec",
    "CircuitSpec",
    "Controller",
    "ControllerConfig",
    "ControllerStatus",
    "PlugView",
]
