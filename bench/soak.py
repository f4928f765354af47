"""Soak: days of simulated site time with random faults, in virtual time.

A site (63 A main connection, a 32 A garage sub-circuit, 6 chargers, 1- and 3-phase cars coming
and going) runs under the real controller through the scenario runner
(:func:`fuseguard.scenario.runner.simulate`) for ``--days`` simulated days. Every day brings
random faults: the meter offline / garbage / slow / frozen, chargers offline / garbage / slow /
with a welded (stuck) contactor, the EMS going silent (flex fallback) and coming back, EMS limit
changes, and base-load steps (an oven, a welder). Judged:

* overload: EV-attributable excess (``max(0, grid - max(limit, non-EV))``, > 0.05 A) on main
  outside the first meter period after a step (a base-load jump, a lower limit, the grid meter
  back from a fault), from the tick-by-tick timeline, except while the grid meter is lost as far
  as building load above any the meter had shown explains it (:func:`overload_outside_steps`),
  and except what no decision could change, reported apart (round 18, ``bench/soak_judge.py``:
  draws of chargers no write reaches or with a welded contactor, ``uncontrollable_outside``;
  an unannounced step met only by slow chargers within their two writes, ``slow_actuator_outside``);
  on the garage circuit (no steps) any EV overload at all;
* crashed tasks: the run completing (``simulate`` re-raises a dead site or controller task),
  no "exception was never retrieved" from asyncio, no error-level log event;
* memory: ``tracemalloc`` (Python heap) and RSS, sampled from inside the run at each car
  arrival (a structlog processor), growth between the start of day 2 and the end of the run.

``python bench/soak.py`` runs 7 days and writes ``bench/results/soak.json`` (and ``soak.md``);
``--schemathesis`` also runs the fault suite's schemathesis modules with 2000 cases per API.
``tests/faults/test_soak.py`` runs the same code for a shorter time.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import random
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from fuseguard.control.types import ControllerConfig
from fuseguard.scenario.config import Scenario, parse_scenario
from fuseguard.scenario.metrics import OVERLOAD_TOL_A
from fuseguard.scenario.runner import RunContext, Timeline, simulate
from fuseguard.scenario.schedule import Schedule

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:  # bench/ is no package: loaded by path (tests/faults), not run
    sys.path.insert(0, str(BENCH))
import soak_cloud  # noqa: E402 - the cloud agent on a flapping link, poisoned commands
import soak_judge  # noqa: E402 - what of the overload no decision of fuseguard could change
import soak_meter  # noqa: E402 - the grid meter as a CEMM, with quirks (the phase lock)

ROOT = BENCH.parent
RESULTS = ROOT / "bench" / "results"
DAY_S = 86400.0
FUSE_A = 63.0
GARAGE_A = 32.0
#: A rise of the non-EV load by more than this within one tick is a step (ramps are not).
STEP_JUMP_A = 0.5
#: how long after a ``slow`` grid-meter fault ends the controller has no answer yet: the read
#: under way then is abandoned at ``ControllerConfig.meter_timeout_s`` (:func:`meter_lost`)
SLOW_METER_TAIL_S = min(5.0, ControllerConfig.__dataclass_fields__["meter_timeout_s"].default)
#: Error-level events that report an injected device fault (the controller detecting it), not
#: a failure of fuseguard.
FAULT_REPORTS = frozenset({"charger_stuck"})
METER_FAULTS = ("offline", "garbage", "slow", "frozen")
CHARGER_FAULTS = ("offline", "garbage", "slow", "stuck_contactor")
CHARGERS = [
    ("cp1", "main", "L1L2L3"), ("cp2", "main", "L2L3L1"), ("cp3", "main", "L3L1L2"),
    ("cp4", "main", "L1L2L3"), ("g1", "garage", "L2L3L1"), ("g2", "garage", "L3L1L2"),
]  # fmt: skip


def _daily_base(days: int) -> list[list[Any]]:
    """Night 8 A, a morning and an evening peak, per phase a little unbalanced."""
    shape = [(0, 8.0), (6 * 3600, 9.0), (8 * 3600, 18.0), (12 * 3600, 14.0),
             (18 * 3600, 22.0), (21 * 3600, 12.0)]  # fmt: skip
    points: list[list[Any]] = []
    for d in range(days):
        for t, a in shape:
            points.append([d * DAY_S + t, [a, a * 0.8, a * 0.9]])
    points.append([days * DAY_S, [8.0, 6.4, 7.2]])
    return points


def _cars(days: int, rng: random.Random, first_within_s: float) -> list[dict[str, Any]]:
    cars: list[dict[str, Any]] = []
    for cid, _circuit, _rot in CHARGERS:
        t = rng.uniform(0, first_within_s)
        while t < days * DAY_S - 1800:
            stay = rng.uniform(1800, 9 * 3600)
            cars.append({
                "charger": cid, "arrive_s": round(t), "depart_s": round(t + stay),
                "energy_wh": round(rng.uniform(3000, 40000)), "phases": rng.choice([1, 3, 3]),
                "max_a": rng.choice([10.0, 16.0, 16.0, 32.0]),
            })  # fmt: skip
            t += stay + rng.uniform(600, 6 * 3600)
    return cars


def _day_events(day: int, rng: random.Random, within_s: float) -> list[dict[str, Any]]:
    t0 = day * DAY_S
    ev: list[dict[str, Any]] = []

    def at() -> float:
        return round(t0 + rng.uniform(60, within_s), 1)

    for _ in range(4):  # the EMS moves its limit
        limit = float(rng.randint(40, 63))
        ev.append({"at_s": at(), "flex": {"activation": True, "current_limit_a": limit}})
    for _ in range(3):  # the EMS goes silent, comes back later
        start = at()
        ev.append({"at_s": start, "keepalive": "stop"})
        ev.append({"at_s": round(start + rng.uniform(300, 2400), 1), "keepalive": "start"})
    for _ in range(4):
        kind = rng.choice(METER_FAULTS)
        t = at()
        duration = round(rng.uniform(20, 600))
        ev.append({"at_s": t, "fault": {"device": "meter", "kind": kind, "duration_s": duration}})
    for _ in range(6):
        dev, kind = rng.choice(CHARGERS)[0], rng.choice(CHARGER_FAULTS)
        t = at()
        duration = round(rng.uniform(30, 1800))
        ev.append({"at_s": t, "fault": {"device": dev, "kind": kind, "duration_s": duration}})
    for _ in range(6):
        delta = [round(rng.choice([0.0, rng.uniform(2, 10)]), 1) for _ in range(3)]
        t = at()
        duration = round(rng.uniform(60, 3600))
        ev.append({"at_s": t, "base_step": {"delta_a": delta, "duration_s": duration}})
    return ev


#: where each day's events start (seconds into the day; the bench's default, a day's last hour
#: left quiet) and where each charger's first car arrives at the latest
EVENTS_WITHIN_S = DAY_S - 3600
FIRST_CAR_WITHIN_S = 4 * 3600.0


def scenario_data(
    days: float,
    seed: int,
    *,
    events_within_s: float = EVENTS_WITHIN_S,
    first_car_within_s: float = FIRST_CAR_WITHIN_S,
) -> dict[str, Any]:
    """The soak site for ``days`` as scenario data (whole days of events; the run may stop
    earlier).

    ``events_within_s``: every day's events (faults, EMS silences and limits, base steps) start
    between 60 s and this many seconds into the day; ``first_car_within_s``: each charger's first
    car arrives within it. A run of a few hours (``tests/faults/test_soak.py``) squeezes a day's
    events and arrivals into them; the random draws are the same, only scaled."""
    rng = random.Random(seed)
    whole = max(1, int(-(-days // 1)))
    events: list[dict[str, Any]] = [
        {"at_s": 0, "flex": {"activation": True, "current_limit_a": 55.0, "fallback_a": 40.0}}
    ]
    for d in range(whole):
        events += _day_events(d, rng, events_within_s)
    events.sort(key=lambda e: e["at_s"])
    return {
        "site": {"name": f"soak_{days:g}d_seed{seed}", "fuse_a": FUSE_A,
                 "duration_s": days * DAY_S, "meter": "phases", "meter_period_s": 1.0},
        "circuits": [{"id": "garage", "parent": "main", "fuse_a": GARAGE_A}],
        "base_load": {"points": _daily_base(whole)},
        "chargers": [{"id": c, "circuit": circ, "max_a": 32, "rotation": rot}
                     for c, circ, rot in CHARGERS],
        "cars": _cars(whole, rng, first_car_within_s),
        "events": events,
    }  # fmt: skip


def build_scenario(days: float, seed: int, **within: float) -> Scenario:
    """The soak site for ``days`` (see :func:`scenario_data` for ``within``)."""
    return parse_scenario(scenario_data(days, seed, **within), f"soak seed {seed}")


# --- probes --------------------------------------------------------------------------------------


def rss_bytes() -> int:
    """Resident set size of this process (``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass
class Probe:
    """A structlog processor: memory at every car arrival, counts of warnings and errors."""

    #: Bytes of the run's timeline arrays per tick: numpy's zeroed pages become resident as the
    #: timeline fills, which is the run's own recording, not growth of the controller.
    timeline_bytes_per_tick: int = 0
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # t_s, heap, rss net
    raw_rss: list[tuple[float, int]] = field(default_factory=list)  # t_s, rss
    fault_reports: Counter[str] = field(default_factory=Counter)
    objects: list[tuple[float, int]] = field(default_factory=list)  # t_s, live gc objects
    events: Counter[str] = field(default_factory=Counter)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, _logger: Any, method: str, event: MutableMapping[str, Any]) -> Any:
        name = str(event.get("event"))
        if name == "car_arrived":
            t_s = float(str(event.get("car", "@0")).rsplit("@", 1)[1])
            heap = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0
            rss = rss_bytes()
            self.raw_rss.append((t_s, rss))
            timeline = (int(t_s) + 1) * self.timeline_bytes_per_tick
            self.samples.append((t_s, heap, rss - timeline))
            self.objects.append((t_s, len(gc.get_objects())))
        if method in ("warning", "error", "critical", "exception"):
            self.events[f"{method}:{name}"] += 1
            if name in FAULT_REPORTS:
                self.fault_reports[name] += 1
            elif method != "warning" and len(self.errors) < 20:
                self.errors.append({k: str(v) for k, v in event.items()})
        raise structlog.DropEvent


class _Count(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage()[:500])


# --- judging -------------------------------------------------------------------------------------


def overload_outside_steps(
    tl: Timeline,
    meter_period_s: float,
    tick_s: float,
    faults: list[tuple[float, float, str]] = (),  # type: ignore[assignment]
    meter_lost: list[tuple[float, float]] = (),  # type: ignore[assignment]
    fallback_a: float | None = None,
    fuse_a: float | None = None,
    actors: soak_judge.Actors | None = None,
) -> dict[str, Any]:
    """EV-attributable overload on main, split into "within the first meter period after a
    step" (allowed), "hidden" (allowed) and outside (a failure); outside ticks are counted by
    the injected fault (``faults``: start, end, label) active at the time.

    Hidden (docs/safety.md, "What a lost meter cannot show"): while the grid meter is lost
    (``meter_lost``: start, end of each stretch, :func:`meter_lost`), the overload on every phase
    is no more than the building load's part above the least the meter-loss fallback promises to
    assume: the highest non-EV load the meter showed before (on ticks outside every loss) and
    ``fuse_a - fallback_a`` (the building load the EMS's ``FallbackCurrentLimit`` allows for;
    round 17: the controller assumes it under any limit; ``fuse_a`` None: ``limit - fallback_a``,
    the rule before; ``fallback_a`` None: not judged). The end of a
    loss is a step: the load it hid shows from then on, and the first meter period after it is
    allowed like after any step.

    ``actors`` (:func:`soak_judge.actors`, round 18): of the outside ticks, what no decision of
    fuseguard could change is reported apart, as ``uncontrollable_outside`` and
    ``slow_actuator_outside`` (:func:`soak_judge.split_outside`); None: every outside tick counts.
    """
    import numpy as np

    n = tl.n
    t = tl.t_s[:n].astype(np.float64)
    grid = tl.grid_a[:n].astype(np.float64)
    ev = tl.ev_a[:n].astype(np.float64)
    limit = tl.limit_a[:n].astype(np.float64)
    non_ev = grid - ev
    over_a = grid - np.maximum(limit[:, None], non_ev)
    excess = over_a.max(axis=1)
    over = excess > OVERLOAD_TOL_A
    step = np.zeros(n, dtype=bool)
    step[1:] = (limit[1:] < limit[:-1] - OVERLOAD_TOL_A) | (
        (non_ev[1:] - non_ev[:-1]) > STEP_JUMP_A
    ).any(axis=1)
    last_step = np.maximum.accumulate(np.where(step, t, -np.inf))
    last_idx = np.maximum.accumulate(np.where(step, np.arange(n), 0))
    lost = np.zeros(n, dtype=bool)
    for a, b in meter_lost:
        lost |= (t >= a) & (t < b)
        returned = t >= b  # the hidden load shows when the meter is back: a step
        last_step = np.where(returned, np.maximum(last_step, b), last_step)
    first_period = over & (t - last_step <= meter_period_s + 1e-6)
    # the highest non-EV load the meter showed so far (ticks outside every loss), per phase
    shown = np.maximum.accumulate(np.where(lost[:, None], 0.0, non_ev), axis=0)
    if fallback_a is not None:
        floor = limit - fallback_a if fuse_a is None else np.full(n, fuse_a - fallback_a)
        shown = np.maximum(shown, floor[:, None])
    unseen = np.maximum(0.0, non_ev - shown)
    hidden = over & lost & ~first_period & ((over_a - unseen).max(axis=1) <= OVERLOAD_TOL_A)
    outside = over & ~first_period & ~hidden
    extra: dict[str, Any] = {}
    excess_outside = excess
    if actors is not None:
        # the step in force is unannounced if it is a step tick (not the meter's return) that
        # an unannounced event explains
        unannounced = actors.unannounced[last_idx] & step[last_idx] & (t[last_idx] == last_step)
        outside, excess_outside, unc, slow = soak_judge.split_outside(
            actors, over_a, ev, outside, t - last_step, unannounced, meter_period_s, tick_s, t
        )
        extra = {"uncontrollable_outside": unc, "slow_actuator_outside": slow}
    margin = np.where(over_a > OVERLOAD_TOL_A, unseen - over_a, np.inf).min(axis=1)
    return {
        "ticks": int(n),
        "steps": int(step.sum()),
        "overload_ticks": int(over.sum()),
        "overload_ticks_first_period": int(first_period.sum()),
        "overload_ticks_hidden": int(hidden.sum()),
        "max_overload_a_hidden": round(float(excess[hidden].max()), 3) if hidden.any() else 0.0,
        "overload_as_hidden": round(float(excess[hidden].sum() * tick_s), 3),
        # how far below the unseen load the hidden overload stayed, on the phases over
        "min_margin_a_hidden": round(float(margin[hidden].min()), 3) if hidden.any() else None,
        "overload_ticks_outside": int(outside.sum()),
        "overload_as_outside": round(float(excess_outside[outside].sum() * tick_s), 3),
        "max_overload_a_outside": (
            round(float(excess_outside[outside].max()), 3) if outside.any() else 0.0
        ),
        "max_overload_a_first_period": (
            round(float(excess[first_period].max()), 3) if first_period.any() else 0.0
        ),
        "first_outside_t_s": [float(x) for x in t[outside][:20]],
        "outside_ticks_by_active_fault": _by_fault(t[outside], faults),
        **extra,
    }


def _by_fault(times: Any, faults: list[tuple[float, float, str]]) -> dict[str, int]:
    out: Counter[str] = Counter()
    for x in times:
        active = sorted({label for a, b, label in faults if a <= x < b})
        out[" + ".join(active) or "none"] += 1
    return dict(out)


def fault_windows(sc: Scenario) -> list[tuple[float, float, str]]:
    """(start, end, "meter:kind" | "charger:kind") of every injected fault."""
    return [
        (e.at_s, e.at_s + e.fault.duration_s,
         f"{'meter' if e.fault.device == 'meter' else 'charger'}:{e.fault.kind}")
        for e in sc.events
        if e.fault is not None
    ]  # fmt: skip


def judge_overload(tl: Timeline, sc: Scenario) -> dict[str, Any]:
    """:func:`overload_outside_steps` of a run of ``sc``, with its faults, the grid meter's
    losses and the EMS's fallback current."""
    faults, lost = fault_windows(sc), meter_lost(sc)
    expiries = Schedule(sc).fallback_starts
    actors = soak_judge.actors(tl, sc, expiries, 1.0, sc.site.slow_delay_s)
    return overload_outside_steps(tl, sc.site.meter_period_s, 1.0, faults, lost,
                                  fallback_current_a(sc), sc.site.fuse_a, actors)  # fmt: skip


def meter_lost(sc: Scenario) -> list[tuple[float, float]]:
    """(start, end) of every stretch in which an injected grid-meter fault is in force, as the
    runner applies them (``scenario/runner.py``): a fault's start sets it, any fault's end
    clears whatever is set (of two overlapping faults the first to end ends both).

    A stretch that ends on a ``slow`` fault ends ``SLOW_METER_TAIL_S`` later (round 17, the
    soak's seed 84): the read under way when the fault ends was asked of a slow meter and
    answers late (``scenario/adapters.py``: ``slow_delay_s``, 5 s), or is abandoned at the
    controller's ``meter_timeout_s`` (2 s); no answer shows the meter back before then."""
    marks: list[tuple[float, bool, str]] = []
    for e in sc.events:
        if e.fault is not None and e.fault.device == "meter":
            k = getattr(e.fault, "kind", None)
            kind = str(getattr(k, "value", k))
            marks += [(e.at_s, True, kind), (e.at_s + e.fault.duration_s, False, kind)]
    out: list[tuple[float, float]] = []
    since: float | None = None
    in_force = ""
    for at, start, kind in sorted(marks, key=lambda m: (m[0], m[1])):
        if start:
            in_force = kind
            if since is None:
                since = at
        elif since is not None:
            end = at + (SLOW_METER_TAIL_S if in_force == "slow" else 0.0)
            if out and since <= out[-1][1]:  # a tail reaching into the next stretch
                since = out.pop()[0]
            out.append((since, end))
            since = None
    if since is not None:
        out.append((since, float("inf")))
    return out


def fallback_current_a(sc: Scenario) -> float | None:
    """The EMS's ``FallbackCurrentLimit`` when the scenario sets it once (the soak: 40 A at
    0 s), else None."""
    values = {e.flex.fallback_a for e in sc.events if e.flex and e.flex.fallback_a is not None}
    return values.pop() if len(values) == 1 else None


def memory_growth(samples: list[tuple[float, int, int]], from_s: float) -> dict[str, Any]:
    """Growth from the first sample at or after ``from_s`` to the last sample."""
    later = [s for s in samples if s[0] >= from_s]
    if len(later) < 2:
        return {"samples": len(samples), "growth_heap_pct": None, "growth_rss_net_pct": None}
    first, last = later[0], later[-1]
    return {
        "samples": len(samples),
        "from_t_s": first[0],
        "to_t_s": last[0],
        "heap_mb": [round(first[1] / 1e6, 2), round(last[1] / 1e6, 2)],
        "rss_net_mb": [round(first[2] / 1e6, 1), round(last[2] / 1e6, 1)],
        "growth_heap_pct": (
            round(100.0 * (last[1] - first[1]) / first[1], 2) if first[1] else None
        ),
        "growth_rss_net_pct": round(100.0 * (last[2] - first[2]) / first[2], 2),
        "heap_mb_by_day": _by_day(samples, 1),
        "rss_net_mb_by_day": _by_day(samples, 2),
    }


def object_growth(samples: list[tuple[float, int]], from_s: float) -> dict[str, Any]:
    """Live objects (``gc.get_objects()``) from the first sample at/after ``from_s`` to the last."""
    later = [s for s in samples if s[0] >= from_s]
    if len(later) < 2:
        return {"growth_pct": None}
    first, last = later[0][1], later[-1][1]
    return {"count": [first, last], "growth_pct": round(100.0 * (last - first) / first, 2)}


def _by_day(samples: list[tuple[float, int, int]], idx: int) -> list[float]:
    out: dict[int, float] = {}
    for s in samples:
        out[int(s[0] // DAY_S)] = round(s[idx] / 1e6, 2)  # the last sample of each day
    return [out[d] for d in sorted(out)]


# --- the run -------------------------------------------------------------------------------------


def run_soak(
    days: float,
    seed: int,
    *,
    memory_from_s: float | None = None,
    heap: bool = False,
    cloud: bool = True,
    phase_lock: bool | None = None,
    meter: str = "none",
    **within: float,
) -> dict[str, Any]:
    """Run the soak site for ``days``; returns the judged figures (see the module docstring).

    ``heap``: also trace the Python heap with ``tracemalloc`` (about doubles the run time);
    without it the heap figures are 0 and RSS is judged. ``cloud``: the edge's cloud agent on
    a flapping link with poisoned commands runs beside the site (``bench/soak_cloud.py``).
    ``phase_lock``: the controller's ``meter_phase_lock`` (None: the config's default);
    ``meter``: the grid meter's behaviour (``bench/soak_meter.py``: ``none`` is the scenario's
    own meter, ``cemm``, ``jitter+late``, ``mixed``, ...); ``within``: where each day's events
    and first cars fall (:func:`scenario_data`)."""
    sc = build_scenario(days, seed, **within)
    stats = soak_cloud.CloudStats()
    quirks = soak_meter.parse_quirks(meter)
    meter_stats = soak_meter.MeterStats()

    async def companion(ctx: RunContext) -> None:
        await soak_cloud.cloud_companion(ctx, stats, seed + 1000)

    # float32 per tick: t_s, grid_a (3), limit_a, ev_a (3), charger_a and setpoint_a (1 each)
    probe = Probe(timeline_bytes_per_tick=4 * (8 + 2 * len(sc.chargers)))
    handler = _Count()
    asyncio_log = logging.getLogger("asyncio")
    asyncio_log.addHandler(handler)
    structlog.configure(
        processors=[probe],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=False,
    )
    started = heap and not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with soak_meter.soak_meter(phase_lock, quirks, seed + 2000, meter_stats):
            result = simulate(
                sc,
                "fuseguard",
                compute_optimum=False,
                keep_timeline=True,
                attach=companion if cloud else None,
                # every tick: the soak's meter quirks and faults live on the site's ticks
                jump=False,
            )
    finally:
        wall_s = time.perf_counter() - t0
        if started:
            tracemalloc.stop()
        asyncio_log.removeHandler(handler)
        structlog.reset_defaults()
    rep = result.report
    assert result.timeline is not None
    from_s = DAY_S if memory_from_s is None else memory_from_s
    happened = [f for f in rep["fallback"] if f["at_s"] < sc.site.duration_s]
    faults = Counter(f"{f['device'] if f['device'] == 'meter' else 'charger'}:{f['kind']}"
                     for f in happened)  # fmt: skip
    return {
        "scenario": rep["scenario"],
        "days": days,
        "seed": seed,
        "chargers": len(sc.chargers),
        "cars": len(sc.cars),
        "events": len(sc.events),
        "faults": dict(sorted(faults.items())),
        "wall_s": round(wall_s, 1),
        "overload_main": judge_overload(result.timeline, sc),
        "overload_as_report": rep["overload_as"],
        "max_overshoot_a": rep["max_overshoot_a"],
        "reaction_s": rep["reaction_s"],
        "energy_delivered_kwh": round(rep["energy_delivered_wh"]["total"] / 1000, 1),
        "unmet_kwh": round(sum(rep["unmet_wh"].values()) / 1000, 1),
        "fallback_never_in_force": [f for f in happened if f["fallback_s"] is None][:20],
        "crashed": {"asyncio_errors": handler.records, "error_events": probe.errors},
        "fault_reports": dict(probe.fault_reports),
        "log_events": dict(probe.events.most_common(30)),
        "memory": memory_growth(probe.samples, from_s),
        "rss_raw_mb_by_day": _by_day([(t, 0, v) for t, v in probe.raw_rss], 2),
        "objects": object_growth(probe.objects, from_s),
        "cloud": stats.as_dict() if cloud else None,
        "phase_lock": "config default" if phase_lock is None else phase_lock,
        "meter": {"quirks": meter, **(meter_stats.as_dict() if quirks else {})},
    }


# --- the benchmark -------------------------------------------------------------------------------


def run_schemathesis(cases: int) -> dict[str, Any]:
    """The fault suite's schemathesis modules with ``cases`` per API (pytest subprocess)."""
    counts = RESULTS / "soak_schemathesis_counts.json"
    counts.unlink(missing_ok=True)
    env = dict(os.environ, FUSEGUARD_FAULTS_CASES=str(cases), FUSEGUARD_FAULTS_COUNTS=str(counts))
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--show-capture=no",
         "tests/faults/test_schemathesis_edge.py", "tests/faults/test_schemathesis_cloud.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    data = json.loads(counts.read_text()) if counts.exists() else {}
    counts.unlink(missing_ok=True)
    tail = [ln for ln in proc.stdout.splitlines() if " passed" in ln or " failed" in ln]
    return {"cases_per_api": cases, "exit": proc.returncode, "pytest": tail[-1:],
            "wall_s": round(time.perf_counter() - t0, 1), "apis": data}  # fmt: skip


def verdict(r: dict[str, Any]) -> dict[str, bool]:
    """The soak's pass/fail criteria."""
    garage = r["overload_as_report"]["per_circuit"].get("garage", {})
    growth = r["memory"]["growth_rss_net_pct"]
    return {
        "no_overload_beyond_first_meter_period": r["overload_main"]["overload_ticks_outside"] == 0,
        "no_sub_circuit_overload": not any(garage.values()),
        "no_crashed_task": not r["crashed"]["asyncio_errors"] and not r["crashed"]["error_events"],
        "memory_growth_under_5_pct": growth is not None and growth < 5.0,
        **(soak_cloud.cloud_verdict(r["cloud"]) if r.get("cloud") else {}),
    }


def _ok(met: bool) -> str:
    return "met" if met else "**missed**"


def markdown(r: dict[str, Any], st: dict[str, Any] | None) -> str:
    """The Soak section of docs/benchmarks.md."""
    o, m, v = r["overload_main"], r["memory"], verdict(r)
    faults = ", ".join(f"{k} x{n}" for k, n in r["faults"].items())
    garage = r["overload_as_report"]["per_circuit"].get("garage")
    warnings = sum(n for k, n in r["log_events"].items() if k.startswith("warning"))
    crashed = r["crashed"]
    lines = [
        "### Soak (`bench/soak.py`)",
        "",
        f"{r['days']:g} simulated days in virtual time ({r['wall_s']:.0f} s wall) of a 63 A site "
        f"with a 32 A sub-circuit, {r['chargers']} chargers, {r['cars']} car sessions and "
        f"{r['events']} events (EMS limit changes, EMS silent and back, base-load steps, random "
        f"faults: {faults}); the real controller through `fuseguard.scenario.runner.simulate`.",
        *_meter_lines(r),
        "",
        "| criterion | measured | |",
        "|---|---:|---|",
        f"| EV overload on main beyond the first meter period after a step "
        f"| {o['overload_ticks_outside']} ticks, {o['overload_as_outside']} A s "
        f"| {_ok(v['no_overload_beyond_first_meter_period'])} |",
        f"| EV overload within the first meter period after one of {o['steps']} steps "
        f"| {o['overload_ticks_first_period']} ticks, max {o['max_overload_a_first_period']} A "
        "| allowed |",
        "| EV overload while the grid meter was lost, from building load above any it had "
        f"shown | {o.get('overload_ticks_hidden', 0)} ticks, max "
        f"{o.get('max_overload_a_hidden', 0.0)} A | allowed |",
        *_apart_rows(o),
        f"| EV overload on the sub-circuit (A s per phase) | {garage} "
        f"| {_ok(v['no_sub_circuit_overload'])} |",
        "| crashed tasks / error log events (not device-fault reports) "
        f"| {len(crashed['asyncio_errors'])} / "
        f"{len(crashed['error_events'])} | {_ok(v['no_crashed_task'])} |",
        f"| RSS growth, net of the run's timeline, {_since(m)} -> end "
        f"({m.get('rss_net_mb')} MB) | {m['growth_rss_net_pct']} % "
        f"| {_ok(v['memory_growth_under_5_pct'])} |",
        f"| live Python objects {_since(m)} -> end | {r['objects'].get('growth_pct')} % | |",
        *_cloud_rows(r.get("cloud"), v),
        "",
        f"RSS by day (MB, last sample of each day): {r['rss_raw_mb_by_day']} raw, "
        f"{m.get('rss_net_mb_by_day')} net of the timeline the run records (float32 per tick, "
        "numpy's zeroed pages become resident as it fills). Outside ticks by injected fault "
        f"active: {o.get('outside_ticks_by_active_fault')}; device faults the controller reported "
        f"at error level: {r.get('fault_reports')}. Energy delivered "
        f"{r['energy_delivered_kwh']} kWh, unmet {r['unmet_kwh']} kWh; {warnings} warnings logged.",
    ]
    if st is not None:
        lines += [
            "",
            f"Schemathesis (`tests/faults/`), budget {st['cases_per_api']} cases per API, "
            f"{st['wall_s']:.0f} s, pytest: {' '.join(st['pytest'])}:",
            "",
            "| API | cases | 5xx | statuses |",
            "|---|---:|---:|---|",
        ]
        for api, d in st["apis"].items():
            lines.append(f"| {api} | {d['cases']} | {d['server_errors']} | {d['statuses']} |")
    return "\n".join(lines) + "\n"


def _apart_rows(o: dict[str, Any]) -> list[str]:
    """What no decision of fuseguard could change (``bench/soak_judge.py``): reported, allowed."""
    unc = o.get("uncontrollable_outside")
    slow = o.get("slow_actuator_outside")
    if unc is None or slow is None:
        return []
    return [
        "| beyond the first period, drawn by chargers no write reaches or with a welded "
        f"contactor | {unc['ticks']} ticks, max {unc['max_a']} A, {unc['a_s']} A s, "
        f"{unc['by_fault']} | reported |",
        "| beyond the first period, an unannounced step met only by slow chargers (within "
        f"period + 2 x their delay) | {slow['ticks']} ticks, max {slow['max_a']} A, "
        f"{slow['a_s']} A s | reported |",
    ]


def _since(m: dict[str, Any]) -> str:
    """Where the memory growth is measured from: "start of day 2", or the hour."""
    from_s = m.get("from_t_s")
    if from_s is None or from_s >= DAY_S:
        return "start of day 2"
    return f"{from_s / 3600:.1f} h"


def _meter_lines(r: dict[str, Any]) -> list[str]:
    """The grid meter's behaviour and the phase lock (``bench/soak_meter.py``)."""
    meter = r.get("meter") or {"quirks": "none"}
    line = f"Phase lock: {r.get('phase_lock', 'config default')}; grid meter: {meter['quirks']}"
    wait = meter.get("poll_wait_ms")
    if wait:
        line += (
            f" ({meter['telegrams']} telegrams, {meter['late']} late, {meter['restarts']} "
            f"restarts, {meter['clock_steps']} clock steps ({meter['clock_steps_back']} back); "
            f"publication -> first answer p50 {wait['p50']} / p90 {wait['p90']} / p99 "
            f"{wait['p99']} / max {wait['max']} ms, {wait['over_500']} over 500 ms; "
            f"{meter['reads']} meter reads)"
        )
    return ["", line + "."]


def _cloud_rows(c: dict[str, Any] | None, v: dict[str, bool]) -> list[str]:
    """The cloud link's rows of the soak table (``bench/soak_cloud.py``)."""
    if not c:
        return []
    valid, poison = c["valid_commands"], c["poisoned_commands"]
    return [
        f"| cloud link drops / reconnects (publishes refused while down) | {c['drops']} / "
        f"{c['connects'] - 1} ({c['publishes_refused_while_down']}) "
        f"| {_ok(v['cloud_link_flapped'])} |",
        f"| valid cloud commands sent / acknowledged received / ack lost with the link "
        f"| {valid.get('sent', 0)} / {valid.get('received', 0)} / {valid.get('unacked', 0)} "
        f"| {_ok(v['valid_commands_received'])} |",
        f"| poisoned cloud commands ({len(c['poison_kinds'])} kinds, + "
        f"{c['retained_poison_on_reconnect']} retained on reconnect) sent / rejected / dropped "
        f"unread / **accepted**; bad targets stored | {poison.get('sent', 0)} / "
        f"{poison.get('rejected', 0)} / {poison.get('dropped', 0)} / "
        f"**{poison.get('received', 0)}**; {len(c['bad_targets_stored'])} "
        f"| {_ok(v['no_poisoned_command_accepted'])} |",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--days", type=float, default=7.0)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument(
        "--schemathesis", type=int, default=0, metavar="CASES",
        help="also run the schemathesis suite with CASES per API (e.g. 2000)",
    )  # fmt: skip
    ap.add_argument(
        "--keep-schemathesis", action="store_true",
        help="keep the schemathesis figures of the previous bench/results/soak.json",
    )  # fmt: skip
    ap.add_argument(
        "--phase-lock", choices=("on", "off", "default"), default="default",
        help="the controller's meter phase lock (default: the config's default)",
    )  # fmt: skip
    ap.add_argument(
        "--meter", default="none", metavar="QUIRKS",
        help=f"the grid meter's behaviour, '+'-joined: {', '.join(soak_meter.QUIRKS)}",
    )  # fmt: skip
    ap.add_argument(
        "--out", default="soak", metavar="NAME",
        help="write bench/results/NAME.json and NAME.md (default soak)",
    )  # fmt: skip
    args = ap.parse_args()
    lock = {"on": True, "off": False, "default": None}[args.phase_lock]
    # memory growth from the start of day 2; in a run shorter than 2 days from its first quarter
    from_s = DAY_S if args.days >= 2 else args.days * DAY_S / 4
    r = run_soak(args.days, args.seed, memory_from_s=from_s, phase_lock=lock, meter=args.meter)
    st = run_schemathesis(args.schemathesis) if args.schemathesis else None
    previous = RESULTS / "soak.json"
    if st is None and args.keep_schemathesis and previous.exists():
        st = json.loads(previous.read_text()).get("schemathesis")
    out = {"soak": r, "verdict": verdict(r), "schemathesis": st}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(out, indent=2) + "\n")
    (RESULTS / f"{args.out}.md").write_text(markdown(r, st))
    sys.stdout.write(markdown(r, st))


if __name__ == "__main__":
    main()
