"""Step 3a of both allocator paths: admission that reserves what an urgent plug needs to finish.

Least laxity (:mod:`.urgency`) serves an urgent plug first: admitted first, filled first while
the plugs below hold their minimum. That is not enough where a phase is full of minimums: in the
24 h office with announced departures (``bench/notes/quality.md``, round 9) grid L2 carried ten
cars at 6 A each, every amp of it, so the urgent cars got 6 A like everyone else and least laxity
did nothing (three needs missed). Here an urgent plug is admitted with its **reserve**, the
whole amps it needs from now on to finish by its departure (``need / (phases x V x time left)``
times ``params.urgent_reserve``, at most its cap), or as much of it as its rows still hold (at
least its minimum); the plugs after it in the queue are then admitted at their minimum in what
is left. So the lower plugs whose minimums would crowd it out wait their turn instead.

Only the admission changes: who runs. Every row's limit is still enforced by the filling and the
rounding; a reserve is never a setpoint. Both paths call :func:`admit_prefix` with the same
inputs in the same order (plain Python floats), so they stay bit-identical; without a reserve
above a minimum (nothing announced: the common case) neither calls it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from fuseguard.allocation.common import EPS
from fuseguard.allocation.types import AllocationParams, Plug
from fuseguard.allocation.urgency import MAX_URGENT_LEVELS, cap_a

#: per plug index: its rows or coefficients (a list over all plugs, or a mapping of the plugs
#: the pass looks at)
PerPlug = Sequence[Sequence[int]] | Mapping[int, Sequence[int]]
PerPlugF = Sequence[Sequence[float]] | Mapping[int, Sequence[float]]


def reserves(
    plugs: Sequence[Plug], nph: Sequence[float], urgent: Sequence[bool], params: AllocationParams
) -> list[float] | None:
    """Per plug the whole amps to reserve at admission (its minimum unless it is an urgent
    least-laxity plug that needs more to finish); None when no plug needs more than its
    minimum, or ``params.urgent_reserve`` is 0 (off)."""
    factor = params.urgent_reserve
    if not (factor > 0.0 and math.isfinite(factor)) or True not in urgent:
        return None
    out: list[float] | None = None
    volt = params.voltage_v
    for i, p in enumerate(plugs):
        if not urgent[i] or p.plan_rank is not None:  # plan leaders follow the plan's caps
            continue
        dep, need, k = p.departure_s, p.need_wh, nph[i]
        if dep is None or need is None or not (math.isfinite(dep) and math.isfinite(need)):
            continue
        if dep <= 0.0 or need <= 0.0 or k <= 0.0:
            continue
        cap = cap_a(p)
        rate = need * 3600.0 / (k * volt * dep) * factor
        amps = float(math.ceil(rate - 1e-9)) if rate < cap else float(cap)  # inf: the cap
        if amps > p.min_a:
            if out is None:
                out = [float(q.min_a) for q in plugs]
            out[i] = amps
    return out


def admit_prefix(
    order: Sequence[int],
    *,
    lo: Sequence[float],
    reserve: Sequence[float],
    rows: PerPlug,
    coefs: PerPlugF,
    resid: list[float],
    locked: Sequence[int] = (),
) -> tuple[list[int], dict[int, float], int]:
    """First-fit in queue ``order`` up to the last plug with a reserve above its minimum: a plug
    is admitted when its minimum fits what the plugs admitted before it left, and then takes its
    reserve or as many whole amps of it as every one of its rows still holds. Lowers ``resid``
    in place by what it admitted (reserves included). Returns the admitted plugs, the amps each
    admitted plug with a reserve got (its minimum from now on) and how many entries of ``order``
    it decided (the rest: plain first-fit of minimums).
    ``locked``: the runners still inside their minimum run time, in queue order (``rows`` and
    ``coefs`` hold theirs too): a reserve above a minimum never takes the room their minimums
    need, so a reserve never pauses a car that has not run ``min_run_s`` yet (its own minimum
    still fits first, as before).
    ``rows`` may be a prefix of each plug's rows (the physical ones): ``coefs`` is cut to it."""
    last = -1
    for pos, i in enumerate(order):
        if reserve[i] > lo[i]:
            last = pos
    cap = [r + EPS * (1.0 + abs(r)) for r in resid]
    used = [0.0] * len(resid)
    held = [0.0] * len(resid)  # the minimums of the locked runners not decided yet
    pending = set(locked)
    for j in locked:
        for row, a in zip(rows[j], coefs[j], strict=False):
            held[row] += a * lo[j]
    admitted: list[int] = []
    got: dict[int, float] = {}
    for i in order[: last + 1]:
        ri, ci, li = rows[i], coefs[i], lo[i]
        if i in pending:  # decided now: its minimum is no longer held for it
            pending.discard(i)
            for row, a in zip(ri, ci, strict=False):
                held[row] -= a * li
        fits = True
        for row, a in zip(ri, ci, strict=False):
            if used[row] + a * li > cap[row]:
                fits = False
                break
        if not fits:
            continue
        amt = li
        if reserve[i] > li:
            room = reserve[i]
            for row, a in zip(ri, ci, strict=False):
                if a > 0.0:
                    room = min(room, (cap[row] - used[row] - held[row]) / a)
            amt = max(li, float(math.floor(room + 1e-9)))
            got[i] = amt
        for row, a in zip(ri, ci, strict=False):
            used[row] += a * amt
        admitted.append(i)
    for row, u in enumerate(used):
        if u:
            resid[row] -= u
    return admitted, got, last + 1


def fill_levels(plugs: Sequence[Plug], levels: Sequence[int], urgent: Sequence[bool]) -> list[int]:
    """The filling levels when reserves are in force: a least-laxity urgent plug (not a plan
    leader) fills with the plain plugs of its priority (it has its reserve as its minimum), so no
    urgent plug takes its cap while another one's reserve or a plain plug's fair share waits."""
    step = min(sum(urgent), MAX_URGENT_LEVELS) + 1
    return [
        step * p.priority if urgent[i] and p.plan_rank is None else levels[i]
        for i, p in enumerate(plugs)
    ]


__all__ = ["admit_prefix", "fill_levels", "reserves"]
