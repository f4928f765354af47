"""Step 2a of both allocator paths: who goes first when there is not enough for everyone.

A pure pre-step over the plugs that both paths (:mod:`.small`, :mod:`.vector`) consume, so the
order cannot drift between them. It turns two optional per-plug facts the controller fills in
into the two queue keys:

* **Level**: least laxity first. A plug with an announced departure
  (``departure_s`` from now) and energy still needed (``need_wh``) has the *laxity*
  ``departure_s - need_wh / (phases * cap * V)`` (s): how long it may still wait and finish at
  its cap (its max, its target and the car's own limit where the controller learned it,
  ``car_limit_a``: a 16 A car on a 32 A plug finishes at 16 A). With
  ``0 <= laxity <= params.urgent_laxity_s`` it is *urgent* and is served in a sub-level above
  the other plugs of its priority, one sub-level per urgent plug (at most
  ``MAX_URGENT_LEVELS``; the rest share the lowest), the least laxity highest, by
  ``LAXITY_BAND_S`` bands, halving below the first (:func:`laxity_rank`: near-equal
  laxities keep their order) (level
  ``(sub-levels + 1) * priority + sub-level``): admitted first, filled first
  (the plugs below keep their minimum), so the least-laxity car charges at its cap, then the
  next, and so on (greedy least laxity first). Charging at its cap keeps the
  laxity constant, so an urgent plug stays urgent until its need is met; one that can no longer
  finish (laxity < 0) drops back and leaves the current to those that still can. A car whose
  own limit is not learned yet (``car_limit_a`` None: it has never been offered more than it
  takes) may be a 16 A car on a 32 A plug: its laxity at the plug's cap is optimistic. It is
  judged at both ends: urgent when its laxity at ``UNKNOWN_CAR_LIMIT_A`` (the usual on-board
  limit, where below its cap) is within the window and it can still finish at its cap, ranked by
  the former (round 11b, ``bench/notes/quality.md``: a 16 A car judged at 32 A became urgent
  when it could no longer finish, at some windows and not at others); a car seen drawing more
  than that (``seen_max_a``) can take at least what it drew and is judged at that. Likewise a
  car whose phases are not known yet (``phases_known`` False: assumed on all wired phases) is
  judged on one phase to enter the window (a 1-phase car judged on three waited as a relaxed
  car while its real laxity ran out). Priorities keep their order (an urgent plug never
  overtakes a higher priority).
  **Plan leaders** (``plan_rank``, set by the horizon planner,
  :mod:`fuseguard.control.planner`, for the plugs its plan wants charging now; rank 0 the largest
  planned current, equal ranks for equal whole amps) take the sub-levels above the least-laxity
  ones, in the order (rank, laxity, energy share): admitted first and filled up to their caps
  (the plan's currents) before the others, so that the plan's order, not only its caps, reaches
  the setpoints, and when the plan splits the current evenly below the minimum (turns), the
  least laxity runs first. Only the order changes: every limit, cap and minimum stays the
  allocator's.
* **Share** (``share_a``, the mean per-phase current since the car was plugged in: its energy
  per hour plugged in): within a level, after the runners inside their minimum run time, the plug
  with the lowest share is admitted first. Paused cars lose share while they wait and running
  ones gain it, so the 6 A slots rotate by energy deficit; the minimum run and pause times keep
  it to at most one pause/resume per car-hour. Plugs without a share count as 0 (the waiting time
  then decides, as before).

Non-finite or negative inputs count as unknown: they never raise a plug above the others.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

from fuseguard.allocation.types import AllocationParams, Plug
from fuseguard.allocation.weights import phase_weights

#: at most this many urgent sub-levels per priority (each level is one filling pass); the
#: urgent plugs beyond share the lowest urgent sub-level
MAX_URGENT_LEVELS: Final = 8

#: the car's own limit (A) assumed, where below the plug's cap, when judging whether a car whose
#: limit is not learned yet is urgent: most AC cars take at most 16 A a phase (11 kW on three
#: phases, 3.7 kW on one)
UNKNOWN_CAR_LIMIT_A: Final = 16.0

#: urgent plugs are ranked by their laxity in bands of this many seconds (:func:`laxity_rank`):
#: within a band the plug order decides, so near-equal laxities do not swap the lead each
#: decision; at most this much laxity separates a car from one served before it. 300 s, not 60:
#: with 60 s two cars of near-equal laxity still swapped about once a minute (office, 13:00,
#: cp1/cp13 6 <-> 12 A), 300 and 600 s measured alike (``bench/notes/r18-flap.md``)
LAXITY_BAND_S: Final = 300.0


def cap_a(p: Plug) -> float:
    """The most the plug can charge at from now on: its max, its Direct EVSE Control target and
    the car's own learned limit (``car_limit_a``, where finite and above 0)."""
    cap = float(p.max_a if p.target_a is None or p.target_a < 0 else min(p.max_a, p.target_a))
    own = p.car_limit_a
    if own is not None and 0.0 < own < cap:  # NaN compares False: ignored
        return max(own, float(p.min_a))  # a limit below the minimum: it charges at the minimum
    return cap


def laxity_s(p: Plug, nph: float, voltage_v: float) -> float | None:
    """Seconds the plug may still wait and meet its need at its cap by its departure (None:
    no departure or need announced, or nothing left to deliver)."""
    dep, need = p.departure_s, p.need_wh
    if dep is None or need is None or not (math.isfinite(dep) and math.isfinite(need)):
        return None
    cap = cap_a(p)
    if need <= 0 or dep <= 0 or cap < p.min_a or cap <= 0 or nph <= 0:
        return None
    return _laxity_at(dep, need, nph * cap * voltage_v)


def _laxity_at(departure_s: float, need_wh: float, power_w: float) -> float:
    """Seconds left to wait before ``need_wh`` at ``power_w`` takes until ``departure_s``."""
    return departure_s - need_wh * 3600.0 / power_w


def urgent_laxity_s(p: Plug, nph: float, params: AllocationParams) -> float | None:
    """The plug's laxity (s) to rank it by when it is urgent, else None: it can still finish at
    its cap and its laxity at the rate it may really have is within ``params.urgent_laxity_s``:
    ``UNKNOWN_CAR_LIMIT_A`` while the car's own limit is not learned (or the most it has been
    seen to draw, ``seen_max_a``, where more: it can take at least that), one phase while its
    phases are not known (it has not drawn yet)."""
    lax = laxity_s(p, nph, params.voltage_v)
    if lax is None or not lax >= 0.0:
        return None
    cap = cap_a(p)
    own = p.car_limit_a
    slow_a = cap
    if not (own is not None and own > 0.0) and cap > UNKNOWN_CAR_LIMIT_A:  # NaN: not learned
        slow_a = max(UNKNOWN_CAR_LIMIT_A, float(p.min_a))
        seen = p.seen_max_a
        if seen is not None and math.isfinite(seen) and seen > slow_a:
            slow_a = min(seen, cap)  # seen drawing more: it can take at least that
    slow_ph = nph if p.phases_known else 1.0
    if slow_a < cap or slow_ph < nph:  # departure and need are set: laxity_s was not None
        lax = _laxity_at(
            p.departure_s or 0.0, p.need_wh or 0.0, slow_ph * slow_a * params.voltage_v
        )
    return lax if lax <= params.urgent_laxity_s else None


def laxity_rank(lax_s: float) -> tuple[int, float]:
    """The least-laxity sort key of an urgent plug (``lax_s >= 0``): its ``LAXITY_BAND_S``
    band, and within the lowest band its halving band (150-300 s, 75-150 s, ...); within a band
    the plug order decides, stably.

    Raw laxity let two urgent cars of near-equal laxity swap the lead on every decision (round
    18, ``bench/notes/r18-flap.md``: office_departures_announced, cp17/cp18 0.4 s apart, 6 <-> 10
    and 16 <-> 20 A every 8 s for 2 h): the one served first keeps its laxity, the other's
    falls below it, they swap. With bands the order changes only when a laxity crosses a band
    edge; a laxity falls (at the rate cap minus current over cap: the car served first the
    slowest), so each urgent car turns the order at most once per band it falls through. In the
    lowest band the bands halve: a car never waits behind one with more than twice its laxity
    there, so it is served before its own laxity runs out while the other's lasts (raw least
    laxity first's guarantee, to a factor 2), and near 0 the order is the raw one."""
    if lax_s >= LAXITY_BAND_S:
        return int(lax_s // LAXITY_BAND_S), 0.0
    if not lax_s > 0.0:
        return 0, -math.inf
    return 0, float(math.floor(math.log2(lax_s / LAXITY_BAND_S)))


def is_urgent(p: Plug, nph: float, params: AllocationParams) -> bool:
    """Least laxity first: the plug must charge at its cap from now on to finish in time."""
    return urgent_laxity_s(p, nph, params) is not None


def share_key(p: Plug) -> float:
    """The plug's energy share in A (0 when unknown or not a finite, non-negative number)."""
    s = p.share_a
    return s if s is not None and math.isfinite(s) and s > 0.0 else 0.0


def queue_keys(
    plugs: Sequence[Plug], nph: Sequence[float], params: AllocationParams
) -> tuple[list[int], list[float], list[bool]]:
    """Per plug: its level, its share key (over its phase weight, :mod:`.weights`) and whether
    it is urgent (see module doc)."""
    # (0: plan leader, 1: least laxity; plan rank or laxity band; laxity; share; index): the
    # sort order
    lax: list[tuple[int, int, float, float, int]] = []
    for i, (p, k) in enumerate(zip(plugs, nph, strict=True)):
        if p.plan_rank is not None and p.plan_rank >= 0:
            v = laxity_s(p, k, params.voltage_v) if p.departure_s is not None else None
            lax.append((0, p.plan_rank, math.inf if v is None else v, share_key(p), i))
        elif p.departure_s is not None:  # the common case (nothing announced) costs nothing
            v = urgent_laxity_s(p, k, params)
            if v is not None:
                lax.append((1, *laxity_rank(v), 0.0, i))
    n_lv = min(len(lax), MAX_URGENT_LEVELS)
    step = n_lv + 1
    levels = [step * p.priority for p in plugs]
    urgent = [False] * len(plugs)
    for rank, (*_, i) in enumerate(sorted(lax)):
        levels[i] += max(n_lv - rank, 1)  # the least laxity the highest sub-level
        urgent[i] = True
    wt = phase_weights(nph, params.single_phase_weight)
    if wt is None:
        return levels, [share_key(p) for p in plugs], urgent
    # a weighted plug's turn comes by its share over its weight, as the filling gives it
    return levels, [share_key(p) / w for p, w in zip(plugs, wt, strict=True)], urgent


def urgency_note(p: Plug, nph: float, params: AllocationParams) -> str:
    """``"; urgent: ..."`` for the reason of an urgent plug, else empty."""
    if not is_urgent(p, nph, params):
        return ""
    need_kwh = (p.need_wh or 0.0) / 1000.0
    minutes = math.ceil((p.departure_s or 0.0) / 60.0)
    return f"; urgent: {need_kwh:.1f} kWh needed before departure in {minutes} min"


__all__ = [
    "LAXITY_BAND_S",
    "MAX_URGENT_LEVELS",
    "UNKNOWN_CAR_LIMIT_A",
    "cap_a",
    "is_urgent",
    "laxity_rank",
    "laxity_s",
    "queue_keys",
    "share_key",
    "urgency_note",
    "urgent_laxity_s",
]
