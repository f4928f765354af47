"""Run a scenario in virtual time against a policy and measure control quality.

``simulate(scenario, "fuseguard")`` builds the virtual site (base load, PV, circuits, one
:class:`~fuseguard.sim.chargepoint.ChargePoint` per charger), the in-process device adapters, the
policy under test (the real controller or a baseline), schedules cars and events from the
scenario, runs the virtual clock to ``duration_s`` and returns the report (see
:mod:`fuseguard.scenario.report`) and a timeline.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from fuseguard.control.flex import FlexManagement
from fuseguard.control.targets import EvseTargets
from fuseguard.model.circuits import MAIN
from fuseguard.model.clock import VirtualClock
from fuseguard.model.phases import Phases
from fuseguard.model.vloop import new_virtual_time_loop
from fuseguard.scenario.adapters import ConnectorCharger, SiteMeter
from fuseguard.scenario.baselines import BASELINES, PolicyContext
from fuseguard.scenario.config import EventSpec, FlexEvent, Scenario
from fuseguard.scenario.jump import Jumper, ProgressFn, SimProgress, SteadyWatch, WorldTime
from fuseguard.scenario.meters import ScenarioMeters, circuit_loads
from fuseguard.scenario.metrics import CarTrack, FaultTrack
from fuseguard.scenario.ocpp_adapter import charger_adapter
from fuseguard.scenario.recorder import Recorder, Timeline, new_timeline
from fuseguard.scenario.report import BASELINE_NOTE, add_planner_stats, build_report, rounded
from fuseguard.scenario.runjump import build_jumper
from fuseguard.scenario.schedule import Schedule
from fuseguard.sim.chargepoint import ChargePoint
from fuseguard.sim.site import BaseLoad, PiecewiseLinear, PvPlant, SiteModel
from fuseguard.sim.vehicle import SimVehicle

log = structlog.get_logger(__name__)

POLICIES = ("fuseguard", "static", "round_robin_30s", "ten_second_equal")
#: how often (virtual s) a run without jumps tells its progress listener
PROGRESS_STEP_S = 600.0


class Policy(Protocol):
    """A control policy under test."""

    name: str

    async def run(self) -> None:
        """Control until cancelled."""


class PolicyUnavailableError(RuntimeError):
    """The requested policy cannot run in this build."""


@dataclass
class SimulationResult:
    """The report (JSON-ready) and the timeline of one run."""

    report: dict[str, Any]
    timeline: Timeline | None = None
    #: seconds of the run jumped over (``scenario/jump.py``), and in how many jumps
    jumped_s: float = 0.0
    jumps: int = 0
    #: whole days skipped by day jumps (``scenario/dayjump.py``, ``--days N`` only)
    days_jumped: int = 0


@dataclass(frozen=True)
class RunContext:
    """What a companion task attached to a run sees (``simulate(attach=...)``): the virtual
    clock, the scenario and the EVSE targets the fuseguard policy obeys (None for a baseline)."""

    clock: VirtualClock
    scenario: Scenario
    targets: EvseTargets | None


Companion = Callable[[RunContext], Coroutine[Any, Any, None]]
"""A task run beside the site and the policy until the end (e.g. a cloud link in the soak); if it
ends with an exception, the run re-raises it like a dead site or policy task."""


def _make_policy(
    name: str, ctx: PolicyContext, flex: FlexManagement | None, targets: EvseTargets | None
) -> Policy:
    if name in BASELINES:
        return BASELINES[name](ctx)
    if name == "fuseguard" and flex is not None and targets is not None:
        from fuseguard.scenario.fuseguard_policy import FuseguardPolicy

        return FuseguardPolicy(ctx, flex=flex, targets=targets)
    msg = f"unknown policy {name!r}; choose one of {', '.join(POLICIES)}"
    raise PolicyUnavailableError(msg)


def _soon(job: Coroutine[Any, Any, object]) -> None:
    asyncio.ensure_future(job)  # noqa: RUF006 - completes within the next settle


def _charge_point(sc: Scenario, index: int) -> ChargePoint:
    ch = sc.chargers[index]
    return ChargePoint(
        name=ch.id,
        max_current_a=ch.max_a,
        rotation=ch.rotation,
        circuit=ch.circuit,
        voltage_v=sc.site.voltage_v,
        limit_a=0.0,  # nothing is offered before the energy manager writes a limit
    )


class _Run:
    """One simulation: the site, the devices, the policy and the scenario's timetable."""

    def __init__(
        self,
        sc: Scenario,
        policy_name: str,
        *,
        keep_timeline: bool,
        attach: Companion | None = None,
        jump: bool = True,
    ) -> None:
        self.sc = sc
        self.attach = attach
        self.policy_name = policy_name
        self.clock = clock = VirtualClock()
        self.schedule = Schedule(sc)
        period_s = min(1.0, sc.site.meter_period_s)
        self.site = SiteModel(clock=clock, voltage_v=sc.site.voltage_v, period_s=period_s)
        for circ in sc.circuits:
            self.site.add_circuit(circ.id, circ.parent)
        self.base = BaseLoad(PiecewiseLinear(sc.base_load.profile()))
        self.site.add(self.base)
        self.loads = {MAIN: self.base, **circuit_loads(sc, self.site)}
        self.pv = self._pv()
        self.connectors: dict[str, ChargePoint] = {}
        self.adapters: dict[str, ConnectorCharger] = {}
        self._chargers()
        self.meters = ScenarioMeters.build(sc, self.site, self.pv, clock)
        shifted = [*self.loads.values()] + ([self.pv] if self.pv is not None else [])
        self.time = WorldTime(clock, shifted)
        self.meter = self.meters.grid
        self.specs = {ch.id: ch for ch in sc.chargers}
        self.cars = {car.name: car for car in sc.cars}
        n_ticks = math.ceil(sc.site.duration_s / period_s) + 2
        ids = [ch.id for ch in sc.chargers]
        self.recorder = Recorder(
            scenario=sc,
            schedule=self.schedule,
            base=self.base,
            pv=self.pv,
            connectors=self.connectors,
            adapters=self.adapters,
            tracks=self._tracks(),
            faults=[
                FaultTrack(ev.fault.device, ev.fault.kind, ev.at_s, ev.at_s + ev.fault.duration_s)
                for ev in sc.events
                if ev.fault is not None
            ],
            timeline=new_timeline(ids, n_ticks) if keep_timeline else None,
            period_s=period_s,
            circuit_loads=self.loads,
        )
        self.site.on_tick(lambda t: self.recorder.on_tick(t + self.time.offset_s))
        # The real control-side objects (the fuseguard policy talks to them; baselines read truth).
        self.flex: FlexManagement | None = None
        self.targets: EvseTargets | None = None
        if policy_name == "fuseguard":
            self.flex = FlexManagement(
                clock,
                fuse_a=sc.site.fuse_a,
                timeout_s=sc.site.flex_timeout_s,
                default_fallback_a=self.schedule.meter_fallback_a(),
            )
            self.targets = EvseTargets(clock)
        ctx = PolicyContext(
            clock=clock,
            scenario=sc,
            meter=self.meter,
            chargers=self.adapters,
            main_limit_a=lambda: self.schedule.main_limit_a(self.site.t_s + self.time.offset_s),
            target_cap_a=lambda cid: self.schedule.target_cap_a(cid, self.time.now()),
            circuit_meters=self.meters.circuits,
            pv_meter=self.meters.pv,
        )
        self.policy = _make_policy(policy_name, ctx, self.flex, self.targets)
        self._keepalive_running = True
        self._last_flex = FlexEvent()
        self._timetable()
        self.steady: SteadyWatch | None = None
        self.jumper: Jumper | None = None
        if jump and attach is None:
            self.jumper = build_jumper(self)

    def _pv(self) -> PvPlant | None:
        spec = self.sc.pv
        if spec is None:
            return None
        pv = PvPlant(
            peak_w=spec.peak_w,
            sunrise_s=spec.sunrise_s,
            sunset_s=spec.sunset_s,
            voltage_v=self.sc.site.voltage_v,
            cloud=spec.cloud_factor if spec.clouds else None,
        )
        self.site.add(pv)
        return pv

    def _chargers(self) -> None:
        """One charge point per charger on the site, and its in-process driver."""
        sc = self.sc
        for i, ch in enumerate(sc.chargers):
            self.connectors[ch.id] = cp = _charge_point(sc, i)
            self.site.add(cp)
            self.adapters[ch.id] = charger_adapter(cp, ch, sc.site, self.clock, self.site)

    def _tracks(self) -> dict[str, CarTrack]:
        specs = {ch.id: ch for ch in self.sc.chargers}
        return {
            car.name: CarTrack(
                name=car.name,
                charger=car.charger,
                arrive_s=car.arrive_s,
                depart_s=car.depart_s,
                energy_wh=car.energy_wh,
                priority=specs[car.charger].priority,
                mode=specs[car.charger].mode.value,
                cap_a=min(car.max_a, specs[car.charger].max_a),
            )
            for car in self.sc.cars
        }

    # --- the timetable -----------------------------------------------------------------------

    def _at(self, t_s: float, fn: Callable[[], None]) -> None:
        self.time.at(t_s, fn)

    def _timetable(self) -> None:
        """Cars, events and keep-alives at their times (departures before arrivals before
        events at the same instant)."""
        sc = self.sc
        actions: list[tuple[float, int, Callable[[], None]]] = []
        for car in sc.cars:
            if car.arrive_s < sc.site.duration_s:
                actions.append((car.arrive_s, 1, functools.partial(self._arrive, car.name)))
                if car.depart_s <= sc.site.duration_s:
                    actions.append((car.depart_s, 0, functools.partial(self._depart, car.name)))
        for ev in sc.events:
            if ev.at_s <= sc.site.duration_s:
                actions.append((ev.at_s, 2, functools.partial(self._event, ev)))
        for t_s, _order, fn in sorted(actions, key=lambda a: (a[0], a[1])):
            self._at(t_s, fn)
        self.clock.call_later(sc.site.keepalive_period_s, self._keepalive_tick)

    def _arrive(self, car_name: str) -> None:
        spec = self.cars[car_name]
        car = SimVehicle.wanting(
            spec.energy_wh, phases=spec.phases, max_current_a=spec.max_a, name=spec.name
        )
        cp = self.connectors[spec.charger]
        cp.plug_in(car, cp.now_s)
        track = self.recorder.tracks[car_name]
        track.present = True
        self.recorder.active_car[spec.charger] = track
        announce = getattr(self.policy, "announce", None)  # only the fuseguard policy listens
        if spec.announce_departure and announce is not None:
            announce(spec.charger, spec.depart_s - self.time.offset_s, spec.energy_wh)
        log.info("car_arrived", device=spec.charger, car=car_name, reason="scenario")

    def _depart(self, car_name: str) -> None:
        spec = self.cars[car_name]
        cp = self.connectors[spec.charger]
        now = self.clock.monotonic()
        if now > cp.now_s:  # account the energy drawn up to the moment the car leaves
            cp.advance(now)
        car = cp.car
        track = self.recorder.tracks[car_name]
        if car is not None:
            track.delivered_wh = car.drawn_wh
            track.unmet_wh = car.remaining_wh
        cp.unplug(now)
        track.present = False
        self.recorder.active_car.pop(spec.charger, None)
        log.info("car_departed", device=spec.charger, car=car_name, reason="scenario")

    def _event(self, ev: EventSpec) -> None:
        if ev.flex is not None:
            self._flex_update(ev.flex)
        elif ev.keepalive is not None:
            self._keepalive_running = ev.keepalive == "start"
            if ev.keepalive == "start" and self.flex is not None:
                if self._last_flex.model_dump(exclude_none=True):
                    self._flex_update(self._last_flex)  # re-send the last settings
                else:
                    self.flex.keep_alive()
        elif ev.target is not None:
            if self.targets is not None:
                uuid = self.specs[ev.target.charger].evse_uuid
                duration_s = math.ceil(ev.target.duration_s)
                _soon(self.targets.set(uuid, ev.target.current_a, duration_s))
        elif ev.fault is not None:
            self._fault(ev)
        elif ev.base_step is not None:
            self._base_step(ev)

    def _flex_update(self, update: FlexEvent) -> None:
        merged = {**self._last_flex.model_dump(), **update.model_dump(exclude_none=True)}
        self._last_flex = FlexEvent(**merged)
        if self.flex is not None:
            self.flex.update(
                activation=update.activation,
                current_limit_a=update.current_limit_a,
                fallback_current_limit_a=update.fallback_a,
            )

    def _fault(self, ev: EventSpec) -> None:
        assert ev.fault is not None
        dev = ev.fault.device
        device: SiteMeter | ConnectorCharger = self.meters.device(dev) or self.adapters[dev]
        device.set_fault(ev.fault.kind)
        self._at(ev.at_s + ev.fault.duration_s, lambda: device.set_fault(None))

    def _base_step(self, ev: EventSpec) -> None:
        assert ev.base_step is not None
        base = self.loads[ev.base_step.circuit]
        delta = Phases.of(ev.base_step.delta_a)
        base.offset_a = base.offset_a + delta

        def undo() -> None:
            base.offset_a = base.offset_a - delta

        self._at(ev.at_s + ev.base_step.duration_s, undo)

    def _keepalive_tick(self) -> None:
        if self._keepalive_running and self.flex is not None:
            self.flex.keep_alive(source="scenario")
        self.clock.call_later(self.sc.site.keepalive_period_s, self._keepalive_tick)

    # --- running -------------------------------------------------------------------------

    async def run(
        self, progress: ProgressFn | None = None
    ) -> tuple[dict[str, Any], Timeline | None]:
        """Run the virtual clock to the end; returns the report and the timeline. ``progress``
        is told how far it got; it is held by the jumper or this coroutine only, never by the
        run, so the day jump's walk of the run's state never reaches it."""
        wall0 = time.perf_counter()
        site_task = asyncio.create_task(self.site.run(), name="site")
        policy_task = asyncio.create_task(self.policy.run(), name=f"policy-{self.policy_name}")
        tasks = [policy_task, site_task]
        if self.attach is not None:
            ctx = RunContext(self.clock, self.sc, self.targets)
            tasks.append(asyncio.create_task(self.attach(ctx), name="companion"))
        try:
            end_s = self.sc.site.duration_s
            if self.jumper is not None:
                self.jumper.progress = progress
                await self.jumper.run_until(end_s)
            elif progress is None:
                await self.clock.run_until(end_s)
            else:  # in steps, to tell the listener (nothing runs at a step's end but a settle)
                while self.clock.monotonic() < end_s:
                    await self.clock.run_until(min(end_s, self.clock.monotonic() + PROGRESS_STEP_S))
                    progress(SimProgress(self.clock.monotonic(), end_s))
        finally:
            for task in tasks:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            if self.flex is not None:
                self.flex.close()
        for res in results:
            if isinstance(res, BaseException) and not isinstance(res, asyncio.CancelledError):
                raise res
        wall_s = time.perf_counter() - wall0
        # Cars still present at the end: their unmet need counts at the end of the scenario.
        rec = self.recorder
        for cid, track in list(rec.active_car.items()):
            car = self.connectors[cid].car
            if car is not None:
                track.delivered_wh = car.drawn_wh
                track.unmet_wh = car.remaining_wh
        report = build_report(self.sc, self.policy_name, rec, wall_s)
        return add_planner_stats(report, self.policy), rec.timeline


async def _simulate(
    sc: Scenario,
    policy_name: str,
    *,
    keep_timeline: bool,
    attach: Companion | None = None,
    jump: bool = True,
    progress: ProgressFn | None = None,
) -> SimulationResult:
    run = _Run(sc, policy_name, keep_timeline=keep_timeline, attach=attach, jump=jump)
    report, timeline = await run.run(progress)
    jumper = run.jumper
    if jumper is None:
        return SimulationResult(report, timeline)
    return SimulationResult(
        report,
        timeline,
        jumped_s=jumper.jumped_s,
        jumps=jumper.jumps,
        days_jumped=jumper.days_jumped,
    )


def simulate(
    scenario: Scenario,
    policy: str = "fuseguard",
    *,
    optimum_wh: float | None = None,
    compute_optimum: bool = True,
    keep_timeline: bool = True,
    attach: Companion | None = None,
    optimum_met: int | None = None,
    jump: bool = True,
    progress: ProgressFn | None = None,
) -> SimulationResult:
    """Run ``scenario`` under ``policy`` in virtual time; returns report and timeline.

    ``optimum_wh`` skips the LP (pass a cached value; ``optimum_met`` likewise for the met-needs
    MILP of announced departures); ``compute_optimum=False`` leaves ``offline_optimum_wh``,
    ``optimality`` and ``departures.optimum_met`` null; ``attach`` runs a :data:`Companion`
    task beside the site and the policy. ``jump=False`` runs every tick (the jumps over quiet
    stretches, :mod:`fuseguard.scenario.jump`, give the same report and timeline).
    ``progress`` is told how far the run has got (:class:`SimProgress`) every period of the
    jumps (60 s of virtual time on most sites) or every ``PROGRESS_STEP_S``; it changes nothing
    in the run.
    """
    if policy not in POLICIES:
        msg = f"unknown policy {policy!r}; choose one of {', '.join(POLICIES)}"
        raise PolicyUnavailableError(msg)
    t0 = time.perf_counter()
    # asyncio.run on a loop that skips the OS selector's poll while nothing can come from it
    with asyncio.Runner(loop_factory=new_virtual_time_loop) as runner:
        result = runner.run(
            _simulate(
                scenario,
                policy,
                keep_timeline=keep_timeline,
                attach=attach,
                jump=jump,
                progress=progress,
            )
        )
    report = result.report
    if optimum_wh is None and compute_optimum:
        from fuseguard.scenario.optimum import offline_optimum_wh

        optimum_wh = offline_optimum_wh(scenario)
    delivered = report["energy_delivered_wh"]["total"]
    report["offline_optimum_wh"] = None if optimum_wh is None else rounded(optimum_wh, 1)
    report["optimality"] = (
        None
        if optimum_wh is None
        else (rounded(delivered / optimum_wh, 4) if optimum_wh > 1e-6 else 1.0)
    )
    deps = report.get("departures")
    if deps is not None and compute_optimum:
        from fuseguard.scenario.optimum import offline_met_needs

        best = offline_met_needs(scenario) if optimum_met is None else optimum_met
        deps["optimum_met"] = best
        deps["vs_optimum"] = rounded(deps["met"] / best, 4) if best else None
    report["sim_wall_s"] = report["wall_s"]
    report["wall_s"] = rounded(time.perf_counter() - t0, 2)
    return result


__all__ = [
    "BASELINE_NOTE",
    "POLICIES",
    "Companion",
    "Policy",
    "PolicyUnavailableError",
    "RunContext",
    "SimProgress",
    "SimulationResult",
    "Timeline",
    "simulate",
]
