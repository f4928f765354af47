"""The control loop: an orchestrator over named parts, meter and charger samples -> setpoints.

Event-driven. The poller (:mod:`~fuseguard.control.reading`) reads the meter twice per meter
period and the chargers once; every charger poll, a meter sample that needs it
(:class:`~fuseguard.control.load.LoadWatch`) and every change of the external limit (flex
management) or of an EVSE target wake the decision. A decision derives the limits and the non-EV
load per circuit (:mod:`~fuseguard.control.load`), lets every plug's policies turn its state into
a :class:`~fuseguard.control.types.PlugDemand` (:mod:`~fuseguard.control.plug`,
:mod:`~fuseguard.control.policies`), allocates (:mod:`~fuseguard.control.allocator`) and hands
the setpoints to the writer (:mod:`~fuseguard.control.writer`).

Further meters (``docs/devices/meters.md``): a sub-circuit meter (``circuit_meters``) makes its
circuit's non-EV load measured; a PV meter (``pv_meter``) caps the PV surplus taken from the grid
meter, which stays authoritative. Each is polled on its own cadence (:func:`poll_meter`).

Failure policy (``docs/safety.md``): a stale or lost meter -> peak non-EV load and the EVs held
at ``FallbackCurrentLimit`` (a lost sub-circuit meter: on that circuit); a lost PV meter -> the
surplus from the grid meter alone; a lost charger -> its last setpoint reserved; a stuck
contactor -> its real draw is uncontrollable load; EMS silent -> the flex watchdog; fuseguard
gone -> the charger-side safe current, kept from firing by the writer's rewrite cadence. The
loop itself survives any exception from the allocator, a target lookup or a listener: it logs
the reason, holds the last safe setpoints (never raising them) and goes on.

Time comes only from the injected clock, so the same loop runs in real and in virtual time.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import structlog

from fuseguard.allocation.types import Snapshot
from fuseguard.control.allocator import AllocatorSession
from fuseguard.control.flex import FlexManagement
from fuseguard.control.load import EvDraw, LoadEstimator, LoadWatch, Metered, over, pv_surplus_w
from fuseguard.control.planner import Planner
from fuseguard.control.plug import Assessment, PlugControl, unmeasured_draws
from fuseguard.control.plug_settings import PlugSettings
from fuseguard.control.policies.facts import PlugFacts
from fuseguard.control.policies.handover import BreakBeforeMake
from fuseguard.control.polling import Poller, poll_meter
from fuseguard.control.ports import Charger, GridMeter
from fuseguard.control.reading import ChargerReading, MeterReading
from fuseguard.control.report import Listeners, grid_current_a, plug_view
from fuseguard.control.targets import EvseTargets, Target
from fuseguard.control.types import (
    MAIN,
    ChargerSpec,
    CircuitSpec,
    ControllerConfig,
    ControllerStatus,
    PlugView,
)
from fuseguard.control.writer import Writer
from fuseguard.model.clock import Clock, RealClock
from fuseguard.model.phases import Phases
from fuseguard.model.samples import MeterSample

log = structlog.get_logger(__name__)


class Controller:
    """The edge control loop (see module docstring)."""

    #: diagnostics for the status view only (a decision count, the last decision's wall time):
    #: no decision reads them; the scenario runner's day-jump proof does not compare them
    __fuseguard_counters__ = ("_cycles", "_last_cycle_ms")

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
        circuit_meters: Mapping[str, GridMeter] | None = None,
        pv_meter: GridMeter | None = None,
    ) -> None:
        self._clock = clock
        self.config = config
        self._flex = flex
        self._targets = targets
        self._plug_settings = plug_settings  # runtime mode/priority overrides
        self._tree = config.tree()
        missing = [spec.id for spec in config.chargers if spec.id not in chargers]
        if missing:
            msg = f"no charger driver for {missing[0]!r}"
            raise ValueError(msg)
        drivers = {spec.id: chargers[spec.id] for spec in config.chargers}
        self._meter = MeterReading(config)
        self._extra = self._extra_meters(circuit_meters or {}, pv_meter)
        readings = {spec.id: ChargerReading(spec, config) for spec in config.chargers}
        self._writer = Writer(
            clock=clock,
            config=config,
            chargers=drivers,
            online=lambda pid, now: readings[pid].online(now),
            on_failure=lambda pid, reason: readings[pid].note_error(reason),
        )
        self._plugs = {
            pid: PlugControl(r.spec, config, r, self._writer[pid]) for pid, r in readings.items()
        }
        self._poller = Poller(
            clock=clock,
            config=config,
            meter=meter,
            meter_reading=self._meter,
            chargers=drivers,
            readings=readings,
            on_meter=self._on_meter,
            on_polled=self._on_polled,
            setpoint_of=self._writer.setpoint_of,
        )
        v = config.voltage_v
        self._load = LoadEstimator(
            self._tree,
            voltage_v=v,
            phase_assumption=config.meter_phase_assumption,
            peak_window_s=config.peak_window_s,
        )
        self._watch = LoadWatch(voltage_v=v)
        self._handover = BreakBeforeMake(
            margin_a=config.excess_margin_a,
            grace_s=config.decrease_grace_s,
            evidence_s=config.meter_period_s,
        )
        self._allocator = AllocatorSession(config)
        self.planner = self._planner(config, clock)
        self._listeners = Listeners()
        self._synced = False  # meter and chargers were read at the same instant
        self._failure: str | None = None  # why the last decision failed
        self._non_ev: dict[str, Phases] = {}
        self._limits: dict[str, Phases] = {}
        self._wake = asyncio.Event()
        self._cycles = 0
        self._last_cycle_ms = 0.0
        for source in (flex, targets, plug_settings):
            if source is not None:
                source.subscribe(self.wake)
        if plug_settings is not None and self.planner is not None:
            plug_settings.subscribe(self.planner.invalidate)

    def _planner(self, config: ControllerConfig, clock: Clock) -> Planner | None:
        """The horizon planner when configured; in wall time its solves run in a worker
        thread and never hold the loop (virtual time: in the decision, deterministic)."""
        if config.planner != "horizon":
            return None
        return Planner(config, self._tree, background=isinstance(clock, RealClock))

    # --- public -------------------------------------------------------------------------------

    def wake(self) -> None:
        """Run an allocation now (a limit or a target changed)."""
        self._wake.set()

    def subscribe(self, listener: Callable[[ControllerStatus], None]) -> None:
        """Call ``listener`` after every cycle (a listener that raises is logged, not fatal)."""
        self._listeners.add(listener)

    def status(self) -> ControllerStatus:
        """The picture now: the last decision, the setpoints decided and what was written."""
        return self._make_status()

    @property
    def last_snapshot(self) -> Snapshot | None:
        """The allocator's input of the last cycle (``fuseguard allocate`` reads this form)."""
        return self._allocator.last_snapshot

    async def run(self) -> None:
        """Run until cancelled: the poller, one writer task per charger, and the decisions."""
        tasks = [asyncio.create_task(self._poller.run(), name="poll")]
        for key, (meter, reading) in self._extra.items():
            poll = poll_meter(
                clock=self._clock,
                meter=meter,
                reading=reading,
                timeout_s=self.config.meter_timeout_s,
                on_sample=functools.partial(self._on_extra_meter, key),
            )
            tasks.append(asyncio.create_task(poll, name=f"poll:{reading.name}"))
        for pid in self._plugs:
            tasks.append(asyncio.create_task(self._writer.serve(pid), name=f"write:{pid}"))
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                self.decide()
                for task in tasks:
                    if task.done() and not task.cancelled() and task.exception() is not None:
                        await task  # re-raises the part's failure
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def decide(self) -> None:
        """One decision; on any failure hold the last safe setpoints. Then wake the writers and
        tell the listeners."""
        t0 = time.perf_counter()  # measures compute time only; control time is the clock
        now = self._clock.monotonic()
        try:
            self._decide(now)
        except Exception as err:
            if repr(err) != self._failure:  # once per distinct reason, not every cycle
                log.exception("decision_failed", reason=repr(err))
            self._failure = repr(err)
            self._writer.hold(f"decision failed ({err!r}): holding the last setpoints")
        else:
            if self._failure is not None:
                log.info("decision_recovered", after=self._failure)
            self._failure = None
            if self._meter.error is not None and self._meter.fresh(now):  # decreases only
                self._writer.no_raise(f"meter failing ({self._meter.error}): no raise; ")
        self._writer.flush(now)
        self._cycles += 1
        self._last_cycle_ms = (time.perf_counter() - t0) * 1000.0
        if self._listeners:
            try:
                status = self._make_status()
            except Exception as err:
                log.exception("status_failed", reason=repr(err))
            else:
                self._listeners.tell(status)

    # --- reading callbacks --------------------------------------------------------------------

    def _on_meter(self, previous: MeterSample | None, sample: MeterSample) -> None:
        """A new good meter sample: decide at once when it needs it."""
        now = self._clock.monotonic()
        try:
            raised = now - self._writer.last_raise_at <= self.config.decrease_grace_s
            urgent = self._watch.urgent(
                previous, sample, limit_a=self._main_limit(), raised_recently=raised
            )
        except Exception as err:
            log.exception("meter_check_failed", device="meter", reason=repr(err))
            urgent = True
        if urgent:
            self._wake.set()

    def _on_extra_meter(
        self, key: str | None, _previous: MeterSample | None, sample: MeterSample
    ) -> None:
        """A new sub-circuit meter sample over its circuit's fuse: decide at once."""
        if key is not None and over(sample, self._tree[key].fuse, self.config.voltage_v):
            self._wake.set()

    def _on_polled(self) -> None:
        self._synced = True
        self._wake.set()

    # --- further meters -----------------------------------------------------------------------

    def _extra_meters(
        self, circuit_meters: Mapping[str, GridMeter], pv_meter: GridMeter | None
    ) -> dict[str | None, tuple[GridMeter, MeterReading]]:
        """One reading per sub-circuit meter (by circuit id) and the PV meter (key ``None``)."""
        cfg = self.config
        for c in self._tree:
            if c.meter is not None and c.id != MAIN and c.id not in circuit_meters:
                msg = f"no meter driver for circuit {c.id!r} (meter {c.meter!r})"
                raise ValueError(msg)
        extra: dict[str | None, tuple[GridMeter, MeterReading]] = {}
        for cid, meter in circuit_meters.items():
            if cid == MAIN or cid not in self._tree:
                msg = f"a circuit meter needs a sub-circuit, not {cid!r} (main is [meter])"
                raise ValueError(msg)
            name = self._tree[cid].meter or f"meter:{cid}"
            timing = cfg.circuit_meter_timing.get(cid)  # None: the grid meter's
            extra[cid] = (meter, MeterReading(cfg, name=name, timing=timing))
        if pv_meter is not None:
            extra[None] = (pv_meter, MeterReading(cfg, name="pv meter", timing=cfg.pv_meter_timing))
        return extra

    def _lost_circuit_meters(self, now: float) -> tuple[str, ...]:
        """Sub-circuits whose meter has no fresh sample (they run on the fallback estimate)."""
        return tuple(k for k, (_, r) in self._extra.items() if k is not None and not r.fresh(now))

    def _pv_sample(self, now: float) -> MeterSample | None:
        pv = self._extra.get(None)
        return pv[1].sample if pv is not None and pv[1].fresh(now) else None

    # --- deciding -----------------------------------------------------------------------------

    def _main_limit(self) -> Phases:
        fuse, lead_s = self._tree.main.fuse, self._writer.limit_lead_s(self._clock.monotonic())
        return fuse if self._flex is None else fuse.minimum(self._flex.limit_a(lead_s))

    def _fallback_ev_a(self) -> float:
        if self._flex is None:
            return 0.0
        return max(0.0, self._flex.settings().fallback_current_limit_a)

    def _overrides(self, plug: PlugControl, wall: datetime | None) -> dict[str, Any]:
        """This cycle's runtime mode and priority of a plug (set over MQTT or the web UI);
        ``wall``: the decision's wall-clock time (read once per decision)."""
        ps = self._plug_settings
        if ps is None or wall is None:
            return {}
        spec = plug.spec
        out: dict[str, Any] = {
            "mode": ps.mode_of(spec.id, spec.mode),
            "priority": ps.priority_of(spec.id, spec.priority),
        }
        dep = ps.departure_of(spec.id, wall)
        if dep is not None:
            out["departure_s"] = (dep.at - wall).total_seconds()
            out["need_wh"] = dep.need_wh
        return out

    def _end_sessions(self, assessed: Mapping[str, Assessment]) -> None:
        """Drop the departures of the cars that left this cycle."""
        ps = self._plug_settings
        for pid, a in assessed.items():
            if ps is not None and a.ended_session_s is not None:
                ps.end_session(pid, self._clock.now())

    def _target(self, plug: PlugControl) -> Target | None:
        uuid = plug.spec.evse_uuid
        return None if self._targets is None or uuid is None else self._targets.get(uuid)

    def _non_ev_load(
        self, now: float, limits: Mapping[str, Phases], facts: Mapping[str, PlugFacts]
    ) -> dict[str, Phases]:
        fresh = self._meter.fresh(now)
        # circuits with a charger not measured this cycle (its draw would count as building
        # load), and the most those may be drawing (LoadEstimator.record); of those no reserve
        # counts, what a lost meter does not see either (LoadEstimator.update)
        every, unreserved = unmeasured_draws(self._plugs, facts)
        unmeasured, unseen = self._load.unmeasured(every), self._load.unmeasured(unreserved)
        main = Metered(
            circuit=MAIN,
            sample=self._meter.sample,
            fresh=fresh,
            record=self._synced,
            held_a=self._tree.main.fuse - self._fallback_ev_a(),
            sample_at=self._meter.ok_at,
            whole=MAIN not in unmeasured,
        )
        metered = [main]
        for cid, (_, reading) in self._extra.items():
            if cid is not None:
                metered.append(
                    Metered(
                        circuit=cid,
                        sample=reading.sample,
                        fresh=reading.fresh(now),
                        record=self._synced,
                        held_a=limits[cid] - self._fallback_ev_a(),
                        sample_at=reading.ok_at,
                        whole=cid not in unmeasured,
                    )
                )
        v = self.config.voltage_v
        plugs = self._plugs  # EvDraw(circuit, grid_a, power_w, late, plug, settled_at)
        draws = [
            EvDraw(plugs[pid].spec.circuit, f.counted_a, f.power_w(v), False, pid, f.settled_at)
            for pid, f in facts.items()
            if f.fresh and f.sample is not None
        ]
        # unmeasured starts and raises: LoadEstimator.update (docs/safety.md, "Start window")
        starting = [
            EvDraw(self._plugs[pid].spec.circuit, amps, amps.total * v, late=late)
            for pid, f in facts.items()
            if f.fresh and f.any_unseen
            for amps, late in f.unseen()
        ]
        non_ev = self._load.update(now, metered, draws, starting, unmeasured, unseen)
        if fresh:
            # only samples of the same instant feed the peak history; a decision in between
            # (a limit or target change, an overload) works with the newest samples it has
            self._synced = False
        return non_ev

    def _decide(self, now: float) -> None:
        limits = {c.id: c.fuse for c in self.config.circuits}
        limits[MAIN] = self._main_limit()
        facts = {pid: plug.facts(now) for pid, plug in self._plugs.items()}
        non_ev = self._non_ev_load(now, limits, facts)
        handover = self._handover
        handover.begin()
        if self._plug_settings is None and self._targets is None:  # no target, no override
            assessed = {pid: plug.assess(facts[pid], handover) for pid, plug in self._plugs.items()}
        else:
            wall = self._clock.now() if self._plug_settings is not None else None
            assessed = {
                pid: plug.assess(
                    facts[pid], handover, self._target(plug), **self._overrides(plug, wall)
                )
                for pid, plug in self._plugs.items()
            }
        self._end_sessions(assessed)
        non_ev = self._load.with_reserves(
            non_ev, ((a.demand.spec.circuit, a.reserved_a) for a in assessed.values())
        )
        ev_w = sum(
            p.reading.sample.power_w for p in self._plugs.values() if p.reading.sample is not None
        )
        demands = [a.demand for a in assessed.values()]
        if self.planner is not None:  # the horizon plan's caps (never above a limit)
            demands = self.planner.apply(now, limits, non_ev, demands, self.last_snapshot)
        snapshot = self._allocator.build_snapshot(
            limits=limits,
            non_ev=non_ev,
            demands=demands,
            pv_surplus_w=pv_surplus_w(self._meter.sample, ev_w, self._pv_sample(now)),
        )
        # plugs held for a write under way: the session keeps their run/pause timers
        plugs = self._plugs
        held = [
            p for p, a in assessed.items() if not a.demand.available and plugs[p].holding(a.facts)
        ]
        result = self._allocator.step(now, snapshot, held)
        fallback = "" if self._meter.fresh(now) else self._fallback_note(limits[MAIN])
        lost = self._lost_circuit_meters(now)
        decided: dict[str, tuple[int, str]] = {}
        for pid, plug in self._plugs.items():
            a = assessed[pid]
            allocated = result.setpoints.get(pid, 0)
            setpoint, reason = plug.verdict(
                a.facts, allocated, result.reasons.get(pid, ""), handover
            )
            if self.planner is not None:
                reason = self.planner.explain(pid, reason)
            note = fallback or self._circuit_fallback_note(plug.spec.circuit, lost)
            if note and a.demand.available:
                reason = note + reason
            decided[pid] = (setpoint, reason)
        planned: list[Phases] = []
        for pid, plug in self._plugs.items():
            value, reason = plug.settle(now, *decided[pid], handover, assessed[pid].facts)
            self._writer.decide(pid, value, reason)
            plug.status = plug.reading.status(now, plug.setpoint.written_a)
            amps = max(value, plug.setpoint.written_a or 0)
            if amps:
                planned.append(Phases.on(assessed[pid].demand.phases, float(amps)))
        self._limits = limits
        self._non_ev = non_ev
        self._watch.plan(non_ev[MAIN], planned)

    def _fallback_note(self, limit: Phases) -> str:
        held = max(0.0, (limit - self._tree.main.fuse).min + self._fallback_ev_a())
        return f"meter fallback: EVs held at {held:.0f} A; "

    def _circuit_fallback_note(self, circuit: str, lost: tuple[str, ...]) -> str:
        """The reason prefix of a plug below a sub-circuit whose meter is lost."""
        for cid in lost:
            if self._tree.in_subtree(circuit, cid):
                return f"{cid} meter fallback: EVs held at {self._fallback_ev_a():.0f} A; "
        return ""

    # --- reporting ----------------------------------------------------------------------------

    def _make_status(self) -> ControllerStatus:
        now = self._clock.monotonic()
        sample = self._meter.sample
        return ControllerStatus(
            time=self._clock.now(),
            meter_ok=self._meter.error is None and sample is not None,
            meter_fallback=not self._meter.fresh(now),
            circuit_meter_fallback=self._lost_circuit_meters(now),
            pv_power_w=pv.power_w if (pv := self._pv_sample(now)) is not None else None,
            meter_sample=sample,
            grid_current_a=grid_current_a(sample, self.config.voltage_v),
            grid_power_w=sample.power_w if sample is not None else 0.0,
            main_limit_a=self._limits[MAIN] if MAIN in self._limits else self._main_limit(),
            flex_fallback=bool(self._flex is not None and self._flex.in_fallback),
            limits_a=dict(self._limits),
            non_ev_load_a=dict(self._non_ev),
            plugs=tuple(plug_view(p, now) for p in self._plugs.values()),
            cycles=self._cycles,
            last_cycle_ms=self._last_cycle_ms,
        )


__all__ = [
    "ChargerSpec",
    "CircuitSpec",
    "Controller",
    "ControllerConfig",
    "ControllerStatus",
    "PlugView",
]
