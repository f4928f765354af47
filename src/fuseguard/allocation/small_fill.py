"""Max-min fair progressive filling of one priority level, in pure Python (the small-site path).

Mirrors :func:`fuseguard.allocation.vector_fill.progressive_fill` round by round. A row's load at a
level ``v`` is ``sum a * clamp(v, lo, hi)``: integers, exact in any order, so each row keeps its
load at the lowest and the highest breakpoint (every plug at ``lo`` / at ``hi``) and is evaluated
in between only when it saturates there. Sums of non-integers (``resid`` updates) are accumulated
in plug order from 0.0, like ``np.bincount``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from fuseguard.allocation.common import EPS

Rows = list[int]
Coefs = list[float]
#: (coefficient, lo, hi, plug) of one plug on one row
Entry = tuple[float, float, float, int]


@dataclass(slots=True)
class _RowState:
    """The rows the growing plugs of a level are on, and their loads at the extreme breakpoints."""

    bottom: list[float]  # load with every growing plug at lo (integers: exact)
    top: list[float]  # ... at hi
    on_row: dict[int, list[Entry]]  # rows that can saturate -> their growing plugs
    kept: dict[int, list[tuple[int, float]]]  # plug -> (row, coefficient) on those rows
    rows_of: dict[int, Rows]  # plug -> those rows, in entry order
    count: dict[int, int]  # row -> growing plugs left on it


def _row_state(
    active: list[int],
    *,
    lo: list[float],
    hi: list[float],
    rows: list[Rows],
    coefs: list[Coefs],
    resid: list[float],
) -> _RowState:
    n_rows = len(resid)
    bottom = [0.0] * n_rows
    top = [0.0] * n_rows
    for i in active:
        li, hi_i = lo[i], hi[i]
        for row, a in zip(rows[i], coefs[i]):  # noqa: B905 - equal lengths by construction
            bottom[row] += a * li
            top[row] += a * hi_i
    # A row that fits with every plug at its cap never saturates in this level (freezing a plug
    # lowers its load by a * hi >= a * x): its level stays +inf, which changes no plug's minimum,
    # and it can only be the "first minimal row" of plugs that end at their cap. Leave it out.
    keep = [t > r for t, r in zip(top, resid)]  # noqa: B905
    on_row: dict[int, list[Entry]] = {}
    kept: dict[int, list[tuple[int, float]]] = {}
    rows_of: dict[int, Rows] = {}
    for i in active:
        li, hi_i = lo[i], hi[i]
        k_rows: Rows = []
        k_ent: list[tuple[int, float]] = []
        for row, a in zip(rows[i], coefs[i]):  # noqa: B905
            if keep[row]:
                k_rows.append(row)
                k_ent.append((row, a))
                lst = on_row.get(row)
                if lst is None:
                    on_row[row] = [(a, li, hi_i, i)]
                else:
                    lst.append((a, li, hi_i, i))
        rows_of[i] = k_rows
        kept[i] = k_ent
    count = {row: len(lst) for row, lst in on_row.items()}
    return _RowState(bottom, top, on_row, kept, rows_of, count)


def _saturation_levels(
    todo: Iterable[int],
    st: _RowState,
    resid: list[float],
    bps: list[float],
    alive: dict[int, bool],
    t_row: list[float],
) -> None:
    """Write into ``t_row`` the level at which each row of ``todo`` saturates (+inf: never)."""
    inf = math.inf
    last = len(bps) - 1
    on_row, bottom, top = st.on_row, st.bottom, st.top
    for row in todo:
        lst = on_row.get(row)
        if lst is None:
            continue
        r = resid[row]
        cap = r + EPS * (1.0 + abs(r))
        if top[row] <= cap:  # fits with every plug at its cap
            t_row[row] = inf
            continue
        g0 = bottom[row]
        if g0 > cap:
            t_row[row] = bps[0]
            continue
        for k in range(1, last + 1):
            v = bps[k]
            if k == last:
                g = top[row]
            else:
                g = 0.0
                for a, li, hi_i, j in lst:
                    if alive[j]:
                        g += a * (li if v <= li else (hi_i if v >= hi_i else v))
            if g > cap:
                v0 = bps[k - 1]
                t_row[row] = v0 + (r - g0) * (v - v0) / (g - g0)
                break
            g0 = g


def _freeze(
    active: list[int],
    rows_of: dict[int, Rows],
    t_row: list[float],
    lo: list[float],
    hi: list[float],
    x: list[float],
    bott: list[int],
) -> list[int]:
    """Freeze every plug on a row whose level is minimal among the rows it shares plugs with (and
    plugs whose cap is below all their rows' levels); write their ``x`` and ``bott``."""
    inf = math.inf
    t_get = t_row.__getitem__
    row_min = [inf] * len(t_row)
    m: dict[int, float] = {}
    for i in active:
        ri = rows_of[i]
        mi = min(map(t_get, ri)) if ri else inf
        m[i] = mi
        for row in ri:
            if mi < row_min[row]:  # noqa: PLR1730 - cheaper than min()
                row_min[row] = mi
    locmin = [t <= rm + EPS * (1.0 + abs(rm)) for t, rm in zip(t_row, row_min)]  # noqa: B905
    frozen: list[int] = []
    for i in active:
        mi = m[i]
        first = -1
        for row in rows_of[i]:
            if locmin[row]:
                first = row
                break
        if first >= 0 or hi[i] <= mi + EPS:
            xi = min(max(mi, lo[i]), hi[i])
            x[i] = xi
            if first >= 0:
                bott[i] = first
            if xi >= hi[i] - EPS:
                bott[i] = -1
            frozen.append(i)
    if not frozen:  # pragma: no cover - the global minimum row always freezes
        for i in active:
            x[i] = min(max(m[i], lo[i]), hi[i])
            if x[i] >= hi[i] - EPS:
                bott[i] = -1
        frozen = active
    return frozen


def fill_level(
    level: list[int],
    *,
    lo: list[float],
    hi: list[float],
    rows: list[Rows],
    coefs: list[Coefs],
    resid: list[float],
    own: list[float],
    x: list[float],
    bott: list[int],
) -> None:
    """Progressive filling of the plugs in ``level`` (ascending); writes ``x`` and ``bott``.

    ``resid`` is each row's capacity left by everything outside the level plus the level's own
    load at the minimum currents, ``own``.
    """
    active = [i for i in level if hi[i] > lo[i] + EPS]
    if len(active) == len(level):
        s2 = own
    else:
        s2 = [0.0] * len(resid)
        for i in active:
            li = lo[i]
            for row, a in zip(rows[i], coefs[i]):  # noqa: B905
                s2[row] += a * li
    resid = [(r - o) + v for r, o, v in zip(resid, own, s2)]  # noqa: B905
    for i in level:
        x[i] = lo[i]
        bott[i] = -1
    if not active:
        return
    st = _row_state(active, lo=lo, hi=hi, rows=rows, coefs=coefs, resid=resid)
    alive = dict.fromkeys(active, True)
    # the level's breakpoints, fixed for all rounds (a superset of the growing plugs' ones: the
    # loads between two neighbours stay linear and exact), as in the NumPy path
    bps = sorted({lo[i] for i in active} | {hi[i] for i in active})
    t_row = [math.inf] * len(resid)
    todo: Iterable[int] = list(st.on_row)  # rows whose level must be (re)computed
    on_row, bottom, top, count, kept = st.on_row, st.bottom, st.top, st.count, st.kept
    while active:
        _saturation_levels(todo, st, resid, bps, alive, t_row)
        frozen = _freeze(active, st.rows_of, t_row, lo, hi, x, bott)
        # take the frozen plugs out of their rows and their currents off resid
        sub: dict[int, float] = {}
        for i in frozen:
            alive[i] = False
            xi, li, hi_i = x[i], lo[i], hi[i]
            for row, a in kept[i]:
                sub[row] = sub.get(row, 0.0) + a * xi
                bottom[row] -= a * li  # integers: exact
                top[row] -= a * hi_i
                count[row] -= 1
                if not count[row]:
                    del on_row[row]
        for row, v in sub.items():
            resid[row] -= v
        if len(frozen) == len(active):
            break
        todo = sub  # only the rows the frozen plugs were on have changed
        active = [i for i in active if alive[i]]
