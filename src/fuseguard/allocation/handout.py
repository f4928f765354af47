"""Step 6 of both allocator paths: hand the whole amps that rounding left free out again.

The exact max-min solution fills its bottleneck rows; flooring leaves up to one amp per plug on
them, and the largest-remainder pass gives back only what fits one amp per fractional plug. What is
still free can belong to a plug whose exact value was already whole (issue 18: ``p3`` at 9 A below
its 10 A target while 1 A of main L2 is free). This pass gives one amp at a time to the plug with
the highest priority, then the lowest setpoint, then the lowest index (max-min order), whenever the
amp fits every row on its path (phase, power and PV rows) and the plug stays at or below its cap.

Residuals only shrink, so a plug that does not fit once never fits again: the result is the same
whether the caller pre-filters the candidates or not (the NumPy path does, with array operations).
It is shared code so both paths subtract the same integers in the same order, bit for bit.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence

from fuseguard.allocation.common import EPS


def fits(rows: Sequence[int], coefs: Sequence[float], resid: Sequence[float]) -> bool:
    """One more amp of a plug fits every row it loads (the tolerance of the first-fit passes)."""
    for row, a in zip(rows, coefs):  # noqa: B905 - equal lengths by construction
        r = resid[row]
        if a > r + EPS * (1.0 + abs(r)):
            return False
    return True


def hand_out(
    cand: Iterable[int],
    *,
    setpoint: list[float],
    hi: Sequence[float],
    prio: Sequence[int],
    rows: Sequence[Sequence[int]] | Mapping[int, Sequence[int]],
    coefs: Sequence[Sequence[float]] | Mapping[int, Sequence[float]],
    resid: list[float],
) -> None:
    """Raise ``setpoint`` of the plugs in ``cand`` amp by amp in max-min order while an amp fits;
    ``resid`` (the rows' free capacity after rounding) is reduced in place."""
    heap = [
        (-prio[i], setpoint[i], i)
        for i in cand
        if setpoint[i] + 1.0 <= hi[i] + EPS and fits(rows[i], coefs[i], resid)
    ]
    heapq.heapify(heap)
    while heap:
        neg_prio, sp, i = heapq.heappop(heap)
        ri, ci = rows[i], coefs[i]
        if not fits(ri, ci, resid):
            continue  # never fits again: residuals only shrink
        for row, a in zip(ri, ci):  # noqa: B905
            resid[row] -= a
        sp += 1.0
        setpoint[i] = sp
        if sp + 1.0 <= hi[i] + EPS:
            heapq.heappush(heap, (neg_prio, sp, i))
