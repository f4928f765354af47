"""What of the soak's overload fuseguard could have prevented (round 18, helper judge).

:func:`soak.overload_outside_steps` finds the EV-attributable excess beyond the first meter
period after a step. Two kinds of it no decision of fuseguard can change; they are reported
apart, with their figures, and do not fail the verdict (docs/safety.md, "What the soak counts as
fuseguard's"):

* **uncontrollable** (:func:`split_outside`, rule 1): a tick's excess on a phase counts against
  fuseguard only up to what the chargers fuseguard can act on drew on that phase. Not actable: a
  charger in an ``offline`` or ``garbage`` fault (no write reaches it: it draws at its own
  fallback) or with a welded contactor (``stuck_contactor``: it keeps its draw whatever is
  offered). The rest is ``uncontrollable_outside``.
* **slow actuator** (rule 2): an excess that remains counts as ``slow_actuator_outside`` only when
  the step was unannounced (a base-load step or an EMS write, not the watchdog's expiry, which
  fuseguard knows in advance), every EV ampere on each phase over is drawn by chargers in a
  ``slow`` fault (no fast charger could have made room), and the tick is within
  ``meter period + 2 x slow_delay_s`` of the step (a write under way, then the decrease).

Faults in force follow the runner (``scenario/runner.py`` ``_fault``, ``adapters.py``
``ConnectorCharger.set_fault``): one fault per charger, a start replaces the fault in force, any
fault's end clears whatever is in force. Each car loads the grid phases of its charger's rotation
(``Rotation.grid_phases``). Without a not-actable charger drawing, every figure is as before.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from fuseguard.model.phases import Rotation
from fuseguard.scenario.metrics import OVERLOAD_TOL_A

#: charger faults under which no decision of fuseguard changes the charger's draw
UNACTABLE = ("offline", "garbage", "stuck_contactor")
SLOW = "slow"
#: a charger "draws" on a phase above this (a paused car draws exactly 0)
DRAWS_A = 1e-3


def _kind(fault: Any) -> str:
    k = getattr(fault, "kind", None)
    return str(getattr(k, "value", k))


def fault_in_force(sc: Any, charger_ids: list[str], t: Any) -> Any:
    """(ticks, chargers) array of the fault kind in force at each tick ("" none), as the runner
    applies them: a start replaces the fault in force, any end clears it."""
    out = np.full((len(t), len(charger_ids)), "", dtype=object)
    for j, cid in enumerate(charger_ids):
        marks: list[tuple[float, bool, str]] = []
        for e in sc.events:
            if e.fault is not None and e.fault.device == cid:
                marks += [(e.at_s, True, _kind(e.fault)), (e.at_s + e.fault.duration_s, False, "")]
        # an end at the same instant as a start is applied first (as meter_lost orders them)
        for at, start, kind in sorted(marks, key=lambda m: (m[0], m[1])):
            out[t >= at, j] = kind if start else ""
    return out


def car_phases(sc: Any, charger_ids: list[str], t: Any, tick_s: float) -> Any:
    """(ticks, chargers, 3) bool: the grid phases the car at each charger loads at each tick
    (its rotation's first ``phases`` phases; a tick of slack at arrival and departure)."""
    out = np.zeros((len(t), len(charger_ids), 3), dtype=bool)
    col = {cid: j for j, cid in enumerate(charger_ids)}
    rotation = {ch.id: Rotation(ch.rotation) for ch in sc.chargers}
    for car in sc.cars:
        j = col.get(car.charger)
        if j is None:
            continue
        here = (t >= car.arrive_s - tick_s) & (t <= car.depart_s + tick_s)
        for p in rotation[car.charger].grid_phases(car.phases):
            out[here, j, p.index] = True
    return out


def unannounced_steps(sc: Any, t: Any, expiries_s: list[float], tick_s: float) -> Any:
    """(ticks,) bool: a base-load step or an EMS write landed in the tick (from the previous
    tick's time to its own, both included) and no watchdog expiry (``expiries_s``:
    ``Schedule.fallback_starts``) within two ticks before it."""
    prev = np.concatenate([[-np.inf], t[:-1]])
    out = np.zeros(len(t), dtype=bool)
    for e in sc.events:
        if e.base_step is not None or e.flex is not None:
            out |= (prev <= e.at_s) & (e.at_s <= t)
    for x in expiries_s:
        out &= ~((t - 2 * tick_s <= x) & (x <= t))
    return out


@dataclass
class Actors:
    """Per tick, who drew on each grid phase of main, and the step's nature."""

    #: (ticks, 3) drawn by chargers fuseguard cannot act on (:data:`UNACTABLE`)
    unactable_a: Any
    #: (ticks, 3) every EV ampere on the phase drawn by chargers in a ``slow`` fault
    slow_only: Any
    #: (ticks, chargers) fault kind in force; (ticks, chargers, 3) the car's phases, draw
    kinds: Any
    loads: Any
    #: (ticks,) an unannounced step landed in the tick (:func:`unannounced_steps`)
    unannounced: Any
    slow_delay_s: float


def actors(tl: Any, sc: Any, expiries_s: list[float], tick_s: float, slow_delay_s: float) -> Actors:
    """The :class:`Actors` of a run of ``sc`` (its timeline ``tl``)."""
    n = tl.n
    t = tl.t_s[:n].astype(np.float64)
    draw = tl.charger_a[:n].astype(np.float64)
    kinds = fault_in_force(sc, tl.charger_ids, t)
    loads = car_phases(sc, tl.charger_ids, t, tick_s) & (draw[:, :, None] > 0)
    per_phase = draw[:, :, None] * loads  # (ticks, chargers, 3)
    unactable = np.isin(kinds, UNACTABLE)
    slow = kinds == SLOW
    not_slow_a = (per_phase * ~slow[:, :, None]).sum(axis=1)
    slow_a = (per_phase * slow[:, :, None]).sum(axis=1)
    ev = tl.ev_a[:n].astype(np.float64)
    return Actors(
        unactable_a=(per_phase * unactable[:, :, None]).sum(axis=1),
        slow_only=(not_slow_a <= DRAWS_A) & (slow_a >= ev - 0.01) & (slow_a > DRAWS_A),
        kinds=kinds,
        loads=loads,
        unannounced=unannounced_steps(sc, t, expiries_s, tick_s),
        slow_delay_s=slow_delay_s,
    )


def _figures(mask: Any, excess: Any, t: Any, tick_s: float) -> dict[str, Any]:
    return {
        "ticks": int(mask.sum()),
        "max_a": round(float(excess[mask].max()), 3) if mask.any() else 0.0,
        "a_s": round(float(excess[mask].sum() * tick_s), 3),
        "first_t_s": [float(x) for x in t[mask][:20]],
    }


def split_outside(
    a: Actors,
    over_a: Any,
    ev: Any,
    outside: Any,
    since_step_s: Any,
    step_unannounced: Any,
    meter_period_s: float,
    tick_s: float,
    t: Any,
) -> tuple[Any, Any, dict[str, Any], dict[str, Any]]:
    """Rules 1 and 2 (module docstring) on the ticks ``outside`` (beyond the first period, not
    hidden): fuseguard's ticks and their excess (max over phases of the part it could act on),
    the ``uncontrollable_outside`` and ``slow_actuator_outside`` figures.

    ``over_a`` (ticks, 3): grid - max(limit, non-EV); ``ev`` (ticks, 3) the EVs' draw;
    ``since_step_s``: time since the last step; ``step_unannounced``: that step is a base-load
    step or an EMS write (not an expiry, not the meter's return)."""
    pos = np.maximum(over_a, 0.0)
    # the excess fuseguard could have taken off: no more than the actable chargers drew
    counted = np.where(
        a.unactable_a > DRAWS_A, np.minimum(pos, np.maximum(0.0, ev - a.unactable_a)), pos
    )
    theirs = pos - counted
    fails = outside & (counted.max(axis=1) > OVERLOAD_TOL_A)
    unc = outside & ~fails
    phases_over = counted > OVERLOAD_TOL_A
    window_s = meter_period_s + 2.0 * a.slow_delay_s
    slow = (
        fails
        & step_unannounced
        & (since_step_s <= window_s + 1e-6)
        & (~phases_over | a.slow_only).all(axis=1)
    )
    fails &= ~slow
    kinds: Counter[str] = Counter()
    for i in np.flatnonzero(unc):
        drew = a.loads[i][:, theirs[i] > OVERLOAD_TOL_A].any(axis=1)
        label = sorted({f"charger:{k}" for k in a.kinds[i][drew] if k in UNACTABLE})
        kinds[" + ".join(label) or "none"] += 1
    uncontrollable = {
        **_figures(unc, theirs.max(axis=1), t, tick_s),
        "by_fault": dict(kinds),
        # the not-actable part of the ticks that still count (their excess is fuseguard's part)
        "a_s_within_failing_ticks": round(float(theirs[fails].max(axis=1).sum() * tick_s), 3)
        if fails.any()
        else 0.0,
    }
    excess = counted.max(axis=1)
    return fails, excess, uncontrollable, _figures(slow, excess, t, tick_s)
