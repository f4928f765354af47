"""The scenario runner's jumps: the quiet-stretch jumper of a run, its day jumps, and the capture
of the run's whole state that proves a day jump (:mod:`fuseguard.scenario.jump`,
:mod:`fuseguard.scenario.dayjump`, :mod:`fuseguard.scenario.statewalk`)."""

from __future__ import annotations

import asyncio
from typing import Protocol

from fuseguard.control.load import MinuteMaxima
from fuseguard.model.clock import VirtualClock
from fuseguard.scenario.adapters import ConnectorCharger
from fuseguard.scenario.config import CarSpec, ChargerSpec, Scenario
from fuseguard.scenario.dayjump import day_jump
from fuseguard.scenario.jump import (
    PEAK_BUCKET_S,
    Jumper,
    QuietWorld,
    SteadyWatch,
    WorldTime,
    jump_timing,
)
from fuseguard.scenario.meters import ScenarioMeters
from fuseguard.scenario.recorder import Recorder
from fuseguard.scenario.schedule import Schedule
from fuseguard.scenario.statewalk import Capture, UnwalkableError, capture
from fuseguard.sim.chargepoint import ChargePoint
from fuseguard.sim.site import BaseLoad, PvPlant, SiteModel


class RunParts(Protocol):
    """What of a scenario run (``runner._Run``) the jumps use."""

    sc: Scenario
    policy_name: str
    clock: VirtualClock
    site: SiteModel
    time: WorldTime
    schedule: Schedule
    recorder: Recorder
    meters: ScenarioMeters
    loads: dict[str, BaseLoad]
    pv: PvPlant | None
    connectors: dict[str, ChargePoint]
    adapters: dict[str, ConnectorCharger]
    specs: dict[str, ChargerSpec]
    cars: dict[str, CarSpec]
    steady: SteadyWatch | None
    jumper: Jumper | None


def build_jumper(run: RunParts) -> Jumper | None:
    """The jumps over quiet stretches (the fuseguard policy only; None: tick by tick)."""
    if run.policy_name != "fuseguard":
        return None
    from fuseguard.scenario.site import scenario_controller_config

    meters = [run.meters.grid, *run.meters.circuits.values()]
    if run.meters.pv is not None:
        meters.append(run.meters.pv)
    timing = jump_timing(
        run.sc,
        scenario_controller_config(run.sc),
        run.site.period_s,
        [m.period_s for m in meters],
        [a.watchdog_cadence_s for a in run.adapters.values()],
    )
    if timing is None:
        return None
    rec = run.recorder
    watch = SteadyWatch(
        list(run.connectors.values()),
        list(run.loads.values()),
        run.pv,
        busy=lambda: bool(rec.active_car),
    )
    run.site.on_tick(lambda t: watch.on_tick(t + run.time.offset_s))
    run.steady = watch
    world = QuietWorld(run.sc, run.schedule, run.pv)
    return Jumper(
        timing=timing,
        world=world,
        time=run.time,
        site=run.site,
        watch=watch,
        record=rec.on_tick,
        idle=lambda w: _idle(run, world, w),
        days=day_jump(
            run.sc,
            rec,
            run.loads.values(),
            capture=lambda: run_state(run),
            period_s=timing.period_s,
        ),
    )


def run_state(run: RunParts) -> Capture:
    """The whole state the rest of the run depends on, for a day jump's proof
    (:mod:`fuseguard.scenario.statewalk`; called between two steps of the clock, every task
    suspended): the run object and everything it reaches (controller and every part,
    policy, session and memo, poller, writer, flex and targets, the virtual devices, the site
    and its physics, the suspended tasks through what they wait on) and the virtual clock's
    live timers in firing order (deadline, callback). Not compared, each for its reason:

    - the recorder: it only measures (nothing in the site, the devices or the controller
      reads it); the day jump replays it from the template day;
    - the clock object: its time is the capture's instant (the shift itself), its sequence
      counter only orders timers (their order is kept), its start is configuration; its
      live timers are walked;
    - the world's timetable (``WorldTime``: the offset of world over clock time and the
      pending cars, events, ends of faults and steps, also left out of the clock's timers)
      and the load profiles' and PV's ``shift_s`` (the same offset): the scenario's input,
      the same every day by construction (``repeat_days``, the only maker of a repeated
      scenario; at a quiet point no fault or step is in force, so every pending world timer
      is the timetable's); their order against the controller's timers at equal deadlines
      is the tick run's because a day jump, like a quiet one, starts at least the margin
      before the next change (``jump.py``); the scenario itself and its cars and chargers
      by name: configuration, never written;
    - the jumper (this machinery) and the event loop (checked instead: nothing ready, no
      real-time timer).

    Not a list of what to compare, but of units: the peak history's minutes
    (``MinuteMaxima``) are ints counting minutes of the clock, compared as times.
    """
    loop = asyncio.get_running_loop()
    if getattr(loop, "_ready", None) or getattr(loop, "_scheduled", None):
        raise UnwalkableError("event loop", "ready callbacks or real-time timers pending")
    excluded = {
        id(run.recorder): "recorder (measures only; replayed)",
        id(run.clock): "virtual clock (its live timers are walked)",
        id(run.time): "world timetable (the scenario's input)",
        id(run.jumper): "jump machinery",
        id(run.steady): "jump machinery (steady watch)",
        id(run.sc): "scenario (configuration)",
        id(run.cars): "scenario cars (configuration)",
        id(run.specs): "scenario chargers (configuration)",
        id(loop): "event loop (checked empty)",
    }
    shift = frozenset({"shift_s"})
    timers = [(t, cb) for t, cb in run.clock.pending() if not run.time.owns(cb)]
    return capture(
        [("run", run), ("clock.timers", timers)],
        run.clock.monotonic(),
        excluded=excluded,
        skip_attrs={BaseLoad: shift, PvPlant: shift},
        driver=asyncio.current_task(),
        tasks=asyncio.all_tasks(),
        time_ints={MinuteMaxima: PEAK_BUCKET_S},
    )


def _idle(run: RunParts, world: QuietWorld, w: float) -> bool:
    """No car, no device fault and no target in force at world time ``w``."""
    meters = [run.meters.grid, *run.meters.circuits.values(), run.meters.pv]
    return not (
        run.recorder.active_car
        or world.target_in_force(w)
        or any(cp.car is not None for cp in run.connectors.values())
        or any(m is not None and m.fault is not None for m in meters)
        or any(a.fault is not None for a in run.adapters.values())
    )


__all__ = ["RunParts", "build_jumper", "run_state"]
