"""Run a scenario in virtual time against a policy and measure control quality.

``simulate(scenario, "fuseguard")`` builds the virtual site (base load, PV, circuits, one connector
model per charger), the in-process device adapters, the policy under test (the real controller or
a baseline), schedules cars and events from the scenario, runs the virtual clock to
``duration_s`` and returns the report (see :mod:`fuseguard.scenario.metrics`) and a timeline.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import structlog

from fuseguard.model.clock import VirtualClock
from fuseguard.model.phases import Phases
from fuseguard.scenario.adapters import ConnectorCharger, SiteMeter
from fuseguard.scenario.baselines import BASELINES, PolicyContext
from fuseguard.scenario.config import MAIN, EventSpec, Scenario
from fuseguard.scenario.evmodel import SimCar, SimConnector
from fuseguard.scenario.metrics import (
    OVERLOAD_TOL_A,
    TARGET_TOL_A,
    CarTrack,
    Episode,
    FaultTrack,
    MetricState,
    jain,
    percentile,
    phase_waterfill,
)
from fuseguard.scenario.schedule import Schedule
from fuseguard.sim.site import BaseLoad, PiecewiseLinear, PvPlant, SiteModel

log = structlog.get_logger(__name__)

POLICIES = ("fuseguard", "static", "round_robin_30s", "ten_second_equal")
BASELINE_NOTE = (
    "re-implementation of documented behaviour (see fuseguard.scenario.baselines), "
    "not the project itself"
)
JAIN_PERIOD_S = 10.0
FAIRNESS_WINDOW_S = 3600.0

FloatArray = npt.NDArray[np.float32]


class Policy(Protocol):
    """A control policy under test."""

    name: str

    async def run(self) -> None:
        """Control until cancelled."""


class PolicyUnavailableError(RuntimeError):
    """The requested policy cannot run in this build."""


@dataclass
class Timeline:
    """What happened, tick by tick (for ``--plot`` and ``--csv``)."""

    charger_ids: list[str]
    t_s: FloatArray
    grid_a: FloatArray
    limit_a: FloatArray
    ev_a: FloatArray
    charger_a: FloatArray
    setpoint_a: FloatArray
    n: int = 0


@dataclass
class SimulationResult:
    """The report (JSON-ready) and the timeline of one run."""

    report: dict[str, Any]
    timeline: Timeline | None = None


@dataclass
class _Recorder:
    scenario: Scenario
    schedule: Schedule
    site: SiteModel
    base: BaseLoad
    pv: PvPlant | None
    connectors: dict[str, SimConnector]
    adapters: dict[str, ConnectorCharger]
    meter: SiteMeter
    tracks: dict[str, CarTrack]
    faults: list[FaultTrack]
    timeline: Timeline | None
    period_s: float
    state: MetricState = field(default_factory=MetricState)
    active_car: dict[str, CarTrack] = field(default_factory=dict)
    _next_jain: float = 0.0
    _next_window: float = FAIRNESS_WINDOW_S

    def __post_init__(self) -> None:
        sc = self.scenario
        self.circuits = list(sc.circuit_fuses)
        self.cidx = {c: i for i, c in enumerate(self.circuits)}
        self.state.overload_as = {c: [0.0, 0.0, 0.0] for c in self.circuits}
        self.paths = {
            ch.id: [self.cidx[c] for c in sc.path_to_main(ch.circuit)] for ch in sc.chargers
        }
        self.conn_list = [(cid, self.connectors[cid], self.paths[cid]) for cid in self.connectors]
        self.fuses = [sc.circuit_fuses[c] for c in self.circuits]
        self.specs = {ch.id: ch for ch in sc.chargers}
        self.has_targets = bool(self.schedule.targets)
        self.duration = sc.site.duration_s

    def on_tick(self, t: float) -> None:
        n_c = len(self.circuits)
        ev = [[0.0, 0.0, 0.0] for _ in range(n_c)]
        for _cid, conn, path in self.conn_list:
            g = conn.grid_tuple
            if g[0] or g[1] or g[2]:
                for ci in path:
                    row = ev[ci]
                    row[0] += g[0]
                    row[1] += g[1]
                    row[2] += g[2]
        non_ev = self.base.grid_current_a()
        if self.pv is not None:
            non_ev = non_ev + self.pv.grid_current_a()
        ne = (non_ev.l1, non_ev.l2, non_ev.l3)
        main_limit = self.schedule.main_limit_a(t)
        dt = self.period_s if t < self.duration - 1e-9 else 0.0
        st = self.state
        worst = 0.0
        for ci, circ in enumerate(self.circuits):
            limit = main_limit if ci == 0 else self.fuses[ci]
            row = ev[ci]
            acc = st.overload_as[circ]
            for p in range(3):
                base_p = ne[p] if ci == 0 else 0.0
                excess = base_p + row[p] - max(limit, base_p)
                if excess > 0:
                    acc[p] += excess * dt
                    worst = max(worst, excess)
        st.max_overshoot_a = max(st.max_overshoot_a, worst)
        compliant = worst <= OVERLOAD_TOL_A
        if self.has_targets:
            for cid, conn in self.connectors.items():
                cap = self.schedule.target_cap_a(cid, t)
                if cap is not None and conn.draw_a > cap + TARGET_TOL_A:
                    compliant = False
        # Reaction episodes.
        open_ep = st.open_episode()
        if not compliant and open_ep is None and dt > 0:
            st.episodes.append(Episode(t))
        elif compliant and open_ep is not None:
            open_ep.end_s = t
        # Faults: when was the fallback in force?
        for f in self.faults:
            if (
                f.fallback_s is None
                and f.start_s <= t < f.end_s
                and self._fallback_holds(f, ev[0], compliant)
            ):
                f.fallback_s = t - f.start_s
        # Pause/resume cycles.
        for cid, track in self.active_car.items():
            conn = self.connectors[cid]
            drawing = conn.draw_a > 0
            car = conn.car
            if car is None:
                continue
            if track.was_drawing and not drawing and car.remaining_wh > 1e-6:
                track.paused = True
            elif drawing and track.paused:
                track.cycles += 1
                track.paused = False
            track.was_drawing = drawing
        if t >= self._next_jain and dt > 0:
            self._next_jain = t + JAIN_PERIOD_S
            self._fairness(t)
        tl = self.timeline
        if tl is not None and tl.n < len(tl.t_s):
            i = tl.n
            tl.t_s[i] = t
            tl.grid_a[i] = (ne[0] + ev[0][0], ne[1] + ev[0][1], ne[2] + ev[0][2])
            tl.limit_a[i] = main_limit
            tl.ev_a[i] = ev[0]
            tl.charger_a[i] = [c.draw_a for _id, c, _p in self.conn_list]
            tl.setpoint_a[i] = [
                c.signalled_a if c.car is not None else 0.0 for _id, c, _p in self.conn_list
            ]
            tl.n += 1

    def _fallback_holds(self, f: FaultTrack, main_ev: list[float], compliant: bool) -> bool:
        if f.device == "meter":
            return max(main_ev) <= self.schedule.meter_fallback_a(f.start_s) + OVERLOAD_TOL_A
        if f.kind in ("offline", "garbage"):
            conn = self.connectors[f.device]
            return conn.draw_a <= self.scenario.site.charger_safe_current_a + OVERLOAD_TOL_A
        return compliant

    def _fairness(self, t: float) -> None:
        """Sample the fairness of this instant into the current window (see docs/scenarios.md).

        The fair share of each car is the max-min split, per circuit and phase, of the current
        the EVs of its group actually draw through each circuit on each phase (so a policy that
        gives a one-phase car more on a free phase, or less to a car behind a sub-circuit
        bottleneck, is not penalised); draws and fair shares are summed per car over
        ``FAIRNESS_WINDOW_S``, so cars taking turns at the 6 A minimum are judged over time, not
        at an instant when turn-taking is the only safe answer.
        """
        groups: dict[tuple[int, str], list[tuple[str, float, tuple[tuple[int, int], ...], float]]]
        groups = {}
        for cid, track in self.active_car.items():
            conn = self.connectors[cid]
            car = conn.car
            adapter = self.adapters[cid]
            if car is None or car.remaining_wh <= 1e-6 or adapter.fault is not None or conn.stuck:
                continue
            cap = min(car.max_a, conn.max_a)
            target = self.schedule.target_cap_a(cid, t) if self.has_targets else None
            if target is not None:
                cap = min(cap, target)
            phases = tuple(
                (circuit, p.index)
                for circuit in self.paths[cid]
                for p in conn.rotation.grid_phases(car.phases)
            )
            key = f"{cid}@{track.arrive_s:g}"
            groups.setdefault((track.priority, track.mode), []).append(
                (key, conn.draw_a, phases, cap)
            )
        st = self.state
        for group, members in groups.items():
            if len(members) < 2:
                continue
            capacity: dict[tuple[int, int], float] = {}
            for _, draw, rows, _ in members:
                for row in rows:
                    capacity[row] = capacity.get(row, 0.0) + draw
            fair = phase_waterfill(capacity, [(ph, cap) for _, _, ph, cap in members])
            for (key, draw, _, _), share in zip(members, fair, strict=True):
                acc = st.jain_window.setdefault(key, [0.0, 0.0])
                acc[0] += draw
                acc[1] += share
                st.jain_window_groups[key] = group
        if t >= self._next_window:
            self._next_window = t + FAIRNESS_WINDOW_S
            self.close_fairness_window()

    def close_fairness_window(self) -> None:
        """Judge the window that ends now and start a new one."""
        st = self.state
        by_group: dict[tuple[int, str], list[float]] = {}
        for key, (drawn, fair) in st.jain_window.items():
            if fair > 0:
                by_group.setdefault(st.jain_window_groups[key], []).append(drawn / fair)
        for ratios in by_group.values():
            if len(ratios) < 2:
                continue
            j = jain(ratios)
            if j is None:
                continue
            weight = float(len(ratios))
            st.jain_weighted += j * weight
            st.jain_weight += weight
            st.jain_samples += 1
        st.jain_window.clear()
        st.jain_window_groups.clear()


def _new_timeline(ids: list[str], n: int) -> Timeline:
    k = len(ids)
    return Timeline(
        charger_ids=ids,
        t_s=np.zeros(n, dtype=np.float32),
        grid_a=np.zeros((n, 3), dtype=np.float32),
        limit_a=np.zeros(n, dtype=np.float32),
        ev_a=np.zeros((n, 3), dtype=np.float32),
        charger_a=np.zeros((n, k), dtype=np.float32),
        setpoint_a=np.zeros((n, k), dtype=np.float32),
    )


def _make_policy(
    name: str, ctx: PolicyContext, flex: Any, targets: Any
) -> Policy:  # flex/targets are the real control objects (fuseguard only)
    if name in BASELINES:
        return BASELINES[name](ctx)
    if name == "fuseguard":
        from fuseguard.scenario.fuseguard_policy import FuseguardPolicy

        return FuseguardPolicy(ctx, flex=flex, targets=targets)
    msg = f"unknown policy {name!r}; choose one of {', '.join(POLICIES)}"
    raise PolicyUnavailableError(msg)


def _maybe_await(result: object) -> None:
    if inspect.isawaitable(result):
        asyncio.ensure_future(result)  # noqa: RUF006 - completes within the next settle


async def _simulate(
    sc: Scenario, policy_name: str, *, keep_timeline: bool
) -> tuple[dict[str, Any], Timeline | None]:
    clock = VirtualClock()
    schedule = Schedule(sc)
    period_s = min(1.0, sc.site.meter_period_s)
    site = SiteModel(clock=clock, voltage_v=sc.site.voltage_v, period_s=period_s)
    for circ in sc.circuits:
        site.add_circuit(circ.id, circ.parent)
    base = BaseLoad(PiecewiseLinear(sc.base_load.profile()))
    site.add(base)
    pv: PvPlant | None = None
    if sc.pv is not None:
        pv = PvPlant(
            peak_w=sc.pv.peak_w,
            sunrise_s=sc.pv.sunrise_s,
            sunset_s=sc.pv.sunset_s,
            voltage_v=sc.site.voltage_v,
            cloud=sc.pv.cloud_factor if sc.pv.clouds else None,
        )
        site.add(pv)
    connectors: dict[str, SimConnector] = {}
    adapters: dict[str, ConnectorCharger] = {}
    for ch in sc.chargers:
        conn = SimConnector(
            id=ch.id,
            circuit=ch.circuit,
            rotation=ch.rotation,
            max_a=ch.max_a,
            voltage_v=sc.site.voltage_v,
        )
        site.add(conn)
        connectors[ch.id] = conn
        adapters[ch.id] = ConnectorCharger(
            conn,
            clock=clock,
            slow_delay_s=sc.site.slow_delay_s,
            safe_current_a=sc.site.charger_safe_current_a,
            safe_timeout_s=sc.site.charger_safe_timeout_s,
        )
    meter = SiteMeter(site, MAIN, sc.site.meter, clock=clock, slow_delay_s=sc.site.slow_delay_s)
    specs = {ch.id: ch for ch in sc.chargers}
    tracks = {
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
        for car in sc.cars
    }
    faults = [
        FaultTrack(ev.fault.device, ev.fault.kind, ev.at_s, ev.at_s + ev.fault.duration_s)
        for ev in sc.events
        if ev.fault is not None
    ]
    n_ticks = math.ceil(sc.site.duration_s / period_s) + 2
    timeline = _new_timeline([ch.id for ch in sc.chargers], n_ticks) if keep_timeline else None
    rec = _Recorder(
        scenario=sc,
        schedule=schedule,
        site=site,
        base=base,
        pv=pv,
        connectors=connectors,
        adapters=adapters,
        meter=meter,
        tracks=tracks,
        faults=faults,
        timeline=timeline,
        period_s=period_s,
    )
    site.on_tick(rec.on_tick)

    # The real control-side objects (the fuseguard policy talks to them; baselines read truth).
    flex: Any = None
    targets: Any = None
    if policy_name == "fuseguard":
        from fuseguard.control.flex import FlexManagement
        from fuseguard.control.targets import EvseTargets

        flex = FlexManagement(
            clock,
            fuse_a=sc.site.fuse_a,
            timeout_s=sc.site.flex_timeout_s,
            default_fallback_a=schedule.meter_fallback_a(),
        )
        targets = EvseTargets(clock)

    ctx = PolicyContext(
        clock=clock,
        scenario=sc,
        meter=meter,
        chargers=adapters,
        main_limit_a=lambda: schedule.main_limit_a(site.t_s),
        target_cap_a=lambda cid: schedule.target_cap_a(cid, clock.monotonic()),
    )
    policy = _make_policy(policy_name, ctx, flex, targets)

    # --- schedule cars, events and keep-alives -----------------------------------------------
    def at(t_s: float, fn: Callable[[], None]) -> None:
        clock.call_later(t_s - clock.monotonic(), fn)

    def arrive(car_name: str) -> None:
        spec = next(c for c in sc.cars if c.name == car_name)
        car = SimCar(spec.name, spec.energy_wh, spec.phases, spec.max_a)
        connectors[spec.charger].plug_in(car)
        track = tracks[car_name]
        track.present = True
        rec.active_car[spec.charger] = track
        log.info("car_arrived", device=spec.charger, car=car_name, reason="scenario")

    def depart(car_name: str) -> None:
        spec = next(c for c in sc.cars if c.name == car_name)
        conn = connectors[spec.charger]
        now = clock.monotonic()
        if now > conn.t_s:  # account the energy drawn up to the moment the car leaves
            conn.tick(now, now - conn.t_s)
        car = conn.car
        track = tracks[car_name]
        if car is not None:
            track.delivered_wh = car.delivered_wh
            track.unmet_wh = car.remaining_wh
        conn.unplug()
        track.present = False
        rec.active_car.pop(spec.charger, None)
        log.info("car_departed", device=spec.charger, car=car_name, reason="scenario")

    keepalive = {"running": True}
    last_flex: dict[str, Any] = {}

    def run_event(ev: EventSpec) -> None:
        if ev.flex is not None:
            upd = {
                "activation": ev.flex.activation,
                "current_limit_a": ev.flex.current_limit_a,
                "fallback_current_limit_a": ev.flex.fallback_a,
            }
            last_flex.update({k: v for k, v in upd.items() if v is not None})
            if flex is not None:
                _maybe_await(flex.update(**upd))
        elif ev.keepalive is not None:
            keepalive["running"] = ev.keepalive == "start"
            if ev.keepalive == "start" and flex is not None:
                if last_flex:
                    _maybe_await(flex.update(**last_flex))
                else:
                    _maybe_await(flex.keep_alive())
        elif ev.target is not None:
            if targets is not None:
                uuid = specs[ev.target.charger].evse_uuid
                _maybe_await(
                    targets.set(uuid, ev.target.current_a, math.ceil(ev.target.duration_s))
                )
        elif ev.fault is not None:
            dev, kind = ev.fault.device, ev.fault.kind
            target_dev: SiteMeter | ConnectorCharger = meter if dev == "meter" else adapters[dev]
            target_dev.set_fault(kind)
            at(ev.at_s + ev.fault.duration_s, lambda: target_dev.set_fault(None))
        elif ev.base_step is not None:
            delta = Phases.of(ev.base_step.delta_a)
            base.offset_a = base.offset_a + delta

            def undo() -> None:
                base.offset_a = base.offset_a - delta

            at(ev.at_s + ev.base_step.duration_s, undo)

    actions: list[tuple[float, int, Callable[[], None]]] = []
    for car_spec in sc.cars:
        if car_spec.arrive_s < sc.site.duration_s:
            actions.append((car_spec.arrive_s, 1, functools.partial(arrive, car_spec.name)))
            if car_spec.depart_s <= sc.site.duration_s:
                actions.append((car_spec.depart_s, 0, functools.partial(depart, car_spec.name)))
    for ev in sc.events:
        if ev.at_s <= sc.site.duration_s:
            actions.append((ev.at_s, 2, functools.partial(run_event, ev)))
    for t_s, _order, fn in sorted(actions, key=lambda a: (a[0], a[1])):
        at(t_s, fn)

    def keepalive_tick() -> None:
        if keepalive["running"] and flex is not None:
            flex.keep_alive(source="scenario")
        clock.call_later(sc.site.keepalive_period_s, keepalive_tick)

    clock.call_later(sc.site.keepalive_period_s, keepalive_tick)

    wall0 = time.perf_counter()
    site_task = asyncio.create_task(site.run(), name="site")
    policy_task = asyncio.create_task(policy.run(), name=f"policy-{policy_name}")
    try:
        await clock.run_until(sc.site.duration_s)
    finally:
        for task in (policy_task, site_task):
            task.cancel()
        results = await asyncio.gather(policy_task, site_task, return_exceptions=True)
        if flex is not None and hasattr(flex, "close"):
            flex.close()
    for res in results:
        if isinstance(res, BaseException) and not isinstance(res, asyncio.CancelledError):
            raise res
    wall_s = time.perf_counter() - wall0

    # Cars still present at the end: their unmet need counts at the end of the scenario.
    for cid, track in list(rec.active_car.items()):
        sim_car = connectors[cid].car
        if sim_car is not None:
            track.delivered_wh = sim_car.delivered_wh
            track.unmet_wh = sim_car.remaining_wh
    report = _report(sc, policy_name, rec, wall_s)
    return report, timeline


def _r(x: float, nd: int = 3) -> float:
    return round(float(x), nd)


def _report(sc: Scenario, policy_name: str, rec: _Recorder, wall_s: float) -> dict[str, Any]:
    rec.close_fairness_window()  # the last, partial window
    st = rec.state
    per_circuit = {
        c: {ph: _r(v) for ph, v in zip(("L1", "L2", "L3"), vals, strict=True)}
        for c, vals in st.overload_as.items()
    }
    total_overload = sum(sum(v) for v in st.overload_as.values())
    reactions: list[float] = []
    unresolved = 0
    for ep in st.episodes:
        if ep.end_s is None:
            unresolved += 1
            reactions.append(sc.site.duration_s - ep.start_s)
        else:
            reactions.append(ep.end_s - ep.start_s)
    delivered = {name: _r(t.delivered_wh, 1) for name, t in rec.tracks.items()}
    hours_present = {
        name: max(1e-9, (min(t.depart_s, sc.site.duration_s) - t.arrive_s) / 3600.0)
        for name, t in rec.tracks.items()
    }
    cycles = {name: t.cycles for name, t in rec.tracks.items()}
    cph = [cycles[n] / hours_present[n] for n in cycles]
    p50 = percentile(reactions, 50)
    p99 = percentile(reactions, 99)
    return {
        "scenario": sc.site.name,
        "policy": policy_name,
        "policy_note": BASELINE_NOTE if policy_name in BASELINES else "fuseguard controller",
        "duration_s": sc.site.duration_s,
        "overload_as": {"total": _r(total_overload), "per_circuit": per_circuit},
        "max_overshoot_a": _r(st.max_overshoot_a),
        "energy_delivered_wh": {"total": _r(sum(delivered.values()), 1), "per_car": delivered},
        "unmet_wh": {
            name: _r(t.unmet_wh if t.unmet_wh is not None else t.energy_wh, 1)
            for name, t in rec.tracks.items()
            if t.arrive_s < sc.site.duration_s
        },
        "jain_fairness": (_r(st.jain_weighted / st.jain_weight, 4) if st.jain_weight > 0 else None),
        "jain_samples": st.jain_samples,
        "pause_resume_cycles": cycles,
        "max_cycles_per_car_hour": _r(max(cph), 3) if cph else 0.0,
        "reaction_s": {
            "p50": None if p50 is None else _r(p50, 1),
            "p99": None if p99 is None else _r(p99, 1),
            "max": _r(max(reactions), 1) if reactions else None,
            "count": len(reactions),
            "unresolved": unresolved,
        },
        "fallback": [
            {
                "device": f.device,
                "kind": f.kind,
                "at_s": f.start_s,
                "fallback_s": None if f.fallback_s is None else _r(f.fallback_s, 1),
            }
            for f in rec.faults
        ],
        "wall_s": _r(wall_s, 2),
    }


def simulate(
    scenario: Scenario,
    policy: str = "fuseguard",
    *,
    optimum_wh: float | None = None,
    compute_optimum: bool = True,
    keep_timeline: bool = True,
) -> SimulationResult:
    """Run ``scenario`` under ``policy`` in virtual time; returns report and timeline.

    ``optimum_wh`` skips the LP (pass a cached value); ``compute_optimum=False`` leaves
    ``offline_optimum_wh`` and ``optimality`` null.
    """
    if policy not in POLICIES:
        msg = f"unknown policy {policy!r}; choose one of {', '.join(POLICIES)}"
        raise PolicyUnavailableError(msg)
    t0 = time.perf_counter()
    report, timeline = asyncio.run(_simulate(scenario, policy, keep_timeline=keep_timeline))
    if optimum_wh is None and compute_optimum:
        from fuseguard.scenario.optimum import offline_optimum_wh

        optimum_wh = offline_optimum_wh(scenario)
    delivered = report["energy_delivered_wh"]["total"]
    report["offline_optimum_wh"] = None if optimum_wh is None else _r(optimum_wh, 1)
    report["optimality"] = (
        None
        if optimum_wh is None
        else (_r(delivered / optimum_wh, 4) if optimum_wh > 1e-6 else 1.0)
    )
    report["sim_wall_s"] = report["wall_s"]
    report["wall_s"] = _r(time.perf_counter() - t0, 2)
    return SimulationResult(report=report, timeline=timeline)
