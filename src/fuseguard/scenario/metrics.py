"""Control-quality metrics, measured on the virtual site tick by tick.

Definitions (also in ``docs/scenarios.md``):

* EV-attributable overload on a circuit phase = ``max(0, total - max(limit, non_ev))``: if the
  non-EV load alone exceeds the limit, only the EV share counts. Integrated over time -> A·s.
* Compliant = no circuit phase has EV-attributable overload > 0.05 A and no charger draws more
  than 0.5 A above its Direct EVSE target. A *reaction* is a maximal non-compliant stretch: from
  the tick a limit-lowering event or a load step made the site non-compliant to the first
  compliant tick.
* Jain fairness: every 10 s of site time, for each group of cars with the same priority and mode
  that are plugged in, still need energy and are at a healthy charger (>= 2 cars), the allocation is
  compared with the max-min fair split of the same total over the cars' own caps (water filling):
  ``J = (sum r)^2 / (n sum r^2)`` with ``r_i = current_i / fair_i``. Reported as the time-weighted
  mean over applicable samples; null when never applicable.
* Jain fairness by energy share (issue 18): every hour (and at the end), for each such group of
  cars present for at least an hour at a healthy charger, each car's *energy share* is its energy
  per hour plugged in, per phase: ``a = delivered Wh / (phases * V * hours plugged in)``, i.e.
  its mean per-phase current since arrival. Its fair share is the per-phase max-min split of the
  shares the group drew on each circuit and grid phase (as for the window Jain) over the cars'
  caps (min(car max, charger max, Direct EVSE target), averaged over the stay); a car whose need
  is met is capped at its own share ("capped by need": it took all it wanted). ``J`` over
  ``a / fair``, time-weighted like the window Jain. Turn-taking at 6 A evens out over the stay,
  not within an hour, so this judges what a driver sees: energy for the time the car stood there.
* Needs met by departure: a car with ``announce_departure = true`` whose unmet energy at its
  departure is at most ``MET_TOL`` of its need.
* A pause/resume cycle: a car's draw drops to 0 while it still needs energy and later resumes.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

OVERLOAD_TOL_A = 0.05
TARGET_TOL_A = 0.5
#: a departure need counts as met when at most this fraction of it is unmet
MET_TOL = 0.01


def jain(values: Sequence[float]) -> float | None:
    """Jain's fairness index of non-negative values; None for no values or all zero."""
    n = len(values)
    sq = sum(v * v for v in values)
    if n == 0 or sq <= 0:
        return None
    return sum(values) ** 2 / (n * sq)


def waterfill(total: float, caps: Sequence[float]) -> list[float]:
    """Max-min fair split of ``total`` over consumers with upper bounds ``caps``."""
    n = len(caps)
    out = [0.0] * n
    remaining = max(0.0, total)
    order = sorted(range(n), key=lambda i: caps[i])
    left = n
    for i in order:
        share = remaining / left if left else 0.0
        give = min(caps[i], share)
        out[i] = give
        remaining -= give
        left -= 1
    return out


RowT = TypeVar("RowT", bound=Hashable)


def share_ratios(members: Sequence[tuple[float, float, bool, Sequence[RowT]]]) -> list[float]:
    """Energy share over fair share per car; ``members`` are (share A, cap A, need met, rows):
    the fair share is the per-row max-min split (:func:`phase_waterfill`) of the shares the
    group's cars drew on each row (circuit, grid phase), over their caps; a car whose need is
    met is capped at its own share."""
    capacity: dict[RowT, float] = {}
    for share, _, _, rows in members:
        for row in rows:
            capacity[row] = capacity.get(row, 0.0) + share
    fair = phase_waterfill(
        capacity, [(rows, share if met else cap) for share, cap, met, rows in members]
    )
    return [m[0] / f if f > 1e-9 else 1.0 for m, f in zip(members, fair, strict=True)]


def phase_waterfill(
    capacity_a: Mapping[RowT, float], members: Sequence[tuple[Sequence[RowT], float]]
) -> list[float]:
    """Max-min fair split over shared rows (progressive filling).

    Rows are whatever the members share: the phases of a site, or (circuit, phase) pairs of a
    circuit tree. ``capacity_a`` is the current available on each row; each member is
    ``(rows it loads, cap)`` and draws the same current on each of its rows. Every member's share
    rises together until it reaches its cap or one of its rows is full.
    """
    n = len(members)
    out = [0.0] * n
    used = dict.fromkeys(capacity_a, 0.0)
    active = {i for i, (rows, cap) in enumerate(members) if cap > 1e-9 and rows}
    eps = 1e-9
    while active:
        step = min(members[i][1] - out[i] for i in active)
        for row, cap_row in capacity_a.items():
            k = sum(1 for i in active if row in members[i][0])
            if k:
                step = min(step, (cap_row - used[row]) / k)
        step = max(step, 0.0)
        for i in active:
            out[i] += step
            for row in members[i][0]:
                used[row] += step
        full = {row for row, cap_row in capacity_a.items() if cap_row - used[row] <= eps}
        done = {
            i
            for i in active
            if out[i] >= members[i][1] - eps or any(row in full for row in members[i][0])
        }
        if not done:  # numerical safety: nothing can move any more
            break
        active -= done
    return out


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (``q`` in 0..100); None for no values."""
    if not values:
        return None
    xs = sorted(values)
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass
class CarTrack:
    """Per-car bookkeeping during the run."""

    name: str
    charger: str
    arrive_s: float
    depart_s: float
    energy_wh: float
    priority: int
    mode: str
    cap_a: float
    delivered_wh: float = 0.0
    unmet_wh: float | None = None
    cycles: int = 0
    paused: bool = False
    was_drawing: bool = False
    present: bool = False


@dataclass
class FaultTrack:
    """One injected fault and when the fallback was in force."""

    device: str
    kind: str
    start_s: float
    end_s: float
    fallback_s: float | None = None
    condition: str = ""


@dataclass
class Episode:
    """A non-compliant stretch."""

    start_s: float
    end_s: float | None = None


@dataclass
class MetricState:
    """Accumulators filled by the recorder."""

    overload_as: dict[str, list[float]] = field(default_factory=dict)
    max_overshoot_a: float = 0.0
    episodes: list[Episode] = field(default_factory=list)
    jain_weighted: float = 0.0
    jain_weight: float = 0.0
    jain_samples: int = 0
    # per fairness window: car key -> [sum of draws, sum of fair shares]
    jain_window: dict[str, list[float]] = field(default_factory=dict)
    jain_window_groups: dict[str, tuple[int, str]] = field(default_factory=dict)
    share_weighted: float = 0.0
    share_weight: float = 0.0
    share_samples: int = 0

    def open_episode(self) -> Episode | None:
        """The episode in progress, if any."""
        if self.episodes and self.episodes[-1].end_s is None:
            return self.episodes[-1]
        return None
