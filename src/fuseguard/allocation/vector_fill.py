"""The NumPy path's two kernels: greedy first-fit (who runs, the extra amp when rounding) and
max-min fair progressive filling of one priority level. Pure functions over (row, plug,
coefficient) entries; :mod:`fuseguard.allocation.small` does the same in plain Python.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fuseguard.allocation.common import EPS

if TYPE_CHECKING:  # NumPy is imported where it is used: small sites never load it
    import numpy as np
    from numpy.typing import NDArray

    FloatArr = NDArray[np.float64]
    IntArr = NDArray[np.int64]
    BoolArr = NDArray[np.bool_]


def _segcumsum(values: FloatArr, seg_first: IntArr) -> FloatArr:
    """Inclusive cumulative sum restarting at every segment (``seg_first``: first index of each)."""
    import numpy as np

    cs = np.cumsum(values)
    out: FloatArr = cs - (cs[seg_first] - values[seg_first])
    return out


def _admitted(state: NDArray[np.int8]) -> BoolArr:
    out: BoolArr = state == 1
    return out


def first_fit(
    order: IntArr,
    *,
    n: int,
    e_row: IntArr,
    e_plug: IntArr,
    e_amount: FloatArr,
    resid: FloatArr,
) -> BoolArr:
    """Greedy first-fit: take items in ``order``; admit one if its amounts fit the rows' residuals
    left by the items admitted before it.

    Computed in rounds: with ``ub`` = usage of every not-rejected item up to and including an item
    and ``lb`` = usage of the admitted items before it plus its own, an item is certainly admitted
    when ``ub`` fits on all its rows and certainly rejected when ``lb`` does not fit on one. The
    first undecided item always has ``ub == lb``, so every round decides at least one item;
    typically two or three rounds decide everything.
    """
    import numpy as np

    state = np.zeros(n, dtype=np.int8)  # 0 undecided, 1 admitted, 2 rejected
    if order.size == 0:
        return _admitted(state)
    rank = np.full(n, -1, dtype=np.int64)
    rank[order] = np.arange(order.size)
    e_rank = rank[e_plug]
    inside = e_rank >= 0
    total = np.bincount(e_row[inside], e_amount[inside], minlength=resid.size)
    binding = total > resid + EPS * (1.0 + np.abs(resid))
    if not binding.any():
        state[order] = 1  # everything fits: first-fit admits all
        return _admitted(state)
    # a row that holds every item never rejects one: only the binding rows matter
    keep = inside & binding[e_row]
    er, ep, ea, rk = e_row[keep], e_plug[keep], e_amount[keep], e_rank[keep]
    srt = np.argsort(er * order.size + rk)  # by row, then rank (keys are unique)
    er, ep, ea = er[srt], ep[srt], ea[srt]
    undecided = np.zeros(n, dtype=np.bool_)
    undecided[order] = True
    while undecided.any():
        if er.size == 0:
            state[undecided] = 1
            break
        first = np.empty(er.size, dtype=np.bool_)
        first[0] = True
        first[1:] = er[1:] != er[:-1]
        seg_first = np.maximum.accumulate(np.where(first, np.arange(er.size), 0))
        cap = resid[er] + EPS * (1.0 + np.abs(resid[er]))
        zero = np.zeros(er.size)
        st = state[ep]
        ub = _segcumsum(np.where(st != 2, ea, zero), seg_first)
        lb = _segcumsum(np.where(st == 1, ea, zero), seg_first) + np.where(st == 0, ea, zero)
        bad_ub = np.zeros(n, dtype=np.bool_)
        bad_ub[ep[ub > cap]] = True
        bad_lb = np.zeros(n, dtype=np.bool_)
        bad_lb[ep[lb > cap]] = True
        admit = undecided & ~bad_ub
        reject = undecided & bad_lb & ~admit
        if not admit.any() and not reject.any():  # pragma: no cover - impossible by construction
            reject[order[undecided[order]][0]] = True
        state[admit] = 1
        state[reject] = 2
        undecided &= ~(admit | reject)
        # only rows with undecided items matter from now on; rejected items weigh nothing
        st = state[ep]
        row_open = np.zeros(resid.size, dtype=np.bool_)
        row_open[er[st == 0]] = True
        keep = row_open[er] & (st != 2)
        er, ep, ea = er[keep], ep[keep], ea[keep]
    return _admitted(state)


def _saturation_levels(
    active: BoolArr,
    *,
    lo: FloatArr,
    hi: FloatArr,
    er: IntArr,
    ep: IntArr,
    ea: FloatArr,
    bps: FloatArr,
    resid: FloatArr,
) -> FloatArr:
    """For every row, the level ``t`` at which it saturates (+inf: never), from its load at every
    breakpoint of the level (piecewise linear in ``t`` between two neighbours)."""
    import numpy as np

    n, n_rows, k_n = lo.size, resid.size, bps.size
    act = np.flatnonzero(active)
    lo_e, hi_e = lo[ep], hi[ep]
    pos = np.zeros((2, n), dtype=np.int64)  # breakpoint index of each plug's lo and hi
    pos[0, act] = np.searchsorted(bps, lo[act])
    pos[1, act] = np.searchsorted(bps, hi[act])
    idx_lo = er * k_n + pos[0, ep]
    idx_hi = er * k_n + pos[1, ep]
    size = n_rows * k_n
    s_lo = np.bincount(idx_lo, ea, size).reshape(n_rows, k_n)
    w_lo = np.bincount(idx_lo, ea * lo_e, size).reshape(n_rows, k_n)
    s_hi = np.bincount(idx_hi, ea, size).reshape(n_rows, k_n)
    w_hi = np.bincount(idx_hi, ea * hi_e, size).reshape(n_rows, k_n)
    # load of each row at each breakpoint: plugs still at lo, plugs at hi, plugs at t
    above = w_lo[:, ::-1].cumsum(axis=1)[:, ::-1]  # sum a*lo for lo >= t
    capped = w_hi.cumsum(axis=1)  # sum a*hi for hi <= t
    growing = (s_lo.cumsum(axis=1) - s_lo) - s_hi.cumsum(axis=1)  # sum a for lo < t < hi
    load = above + capped + bps[None, :] * growing
    over = load > (resid + EPS * (1.0 + np.abs(resid)))[:, None]
    has = over.any(axis=1)
    k = np.argmax(over, axis=1)
    t: FloatArr = np.full(n_rows, np.inf)
    at0 = has & (k == 0)
    t[at0] = bps[0]
    mid = np.flatnonzero(has & (k > 0))
    if mid.size:
        km = k[mid]
        g0 = load[mid, km - 1]
        g1 = load[mid, km]
        v0 = bps[km - 1]
        v1 = bps[km]
        t[mid] = v0 + (resid[mid] - g0) * (v1 - v0) / (g1 - g0)
    return t


def _freeze(
    t: FloatArr, *, active: BoolArr, hi: FloatArr, er: IntArr, ep: IntArr
) -> tuple[BoolArr, FloatArr, BoolArr]:
    """Which plugs freeze this round: those on a row whose level is minimal among the rows it
    shares plugs with, and those whose cap is below all their rows' levels. Returns them, each
    plug's lowest row level ``m`` and, per entry, whether its row is such a minimal row."""
    import numpy as np

    n, n_rows = hi.size, t.size
    te = t[er]
    starts = np.flatnonzero(np.concatenate(([True], ep[1:] != ep[:-1])))
    m = np.full(n, np.inf)
    m[ep[starts]] = np.minimum.reduceat(te, starts)
    row_min = np.full(n_rows, np.inf)
    np.minimum.at(row_min, er, m[ep])
    locmin = t <= row_min + EPS * (1.0 + np.abs(row_min))
    on_min: BoolArr = locmin[er]
    hit = np.zeros(n, dtype=np.bool_)
    hit[ep[on_min]] = True
    freeze: BoolArr = active & (hit | (hi <= m + EPS))
    if not freeze.any():  # pragma: no cover - the global minimum row always freezes
        freeze = active.copy()
    return freeze, m, on_min


def progressive_fill(
    level: BoolArr,
    *,
    lo: FloatArr,
    hi: FloatArr,
    e_row: IntArr,
    e_plug: IntArr,
    e_coef: FloatArr,
    resid: FloatArr,
) -> tuple[FloatArr, IntArr]:
    """Max-min fair currents for the plugs in ``level`` (each within [lo, hi]).

    ``resid`` is each row's capacity left by everything outside ``level``. Entries must be sorted
    by plug. Returns the currents (only meaningful for ``level``) and per plug the row that froze
    it (-1: it reached its own cap ``hi``).
    """
    import numpy as np

    n = lo.size
    n_rows = resid.size
    x = lo.copy()
    bott = np.full(n, -1, dtype=np.int64)
    resid = resid.copy()
    sel = level[e_plug]
    er, ep, ea = e_row[sel], e_plug[sel], e_coef[sel]
    resid -= np.bincount(er, ea * lo[ep], minlength=n_rows)
    active = level & (hi > lo + EPS)
    keep = active[ep]
    er, ep, ea = er[keep], ep[keep], ea[keep]
    # the fixed plugs (lo == hi) are already counted at lo; active ones are re-added at lo below
    resid += np.bincount(er, ea * lo[ep], minlength=n_rows)
    # the level's breakpoints, fixed for all rounds: a superset of the growing plugs' ones, so
    # each row's load stays linear (and exact: sums of integers) between two neighbours
    act = np.flatnonzero(active)
    bps = np.unique(np.concatenate((lo[act], hi[act])))
    while er.size:
        t = _saturation_levels(active, lo=lo, hi=hi, er=er, ep=ep, ea=ea, bps=bps, resid=resid)
        freeze, m, on_min = _freeze(t, active=active, hi=hi, er=er, ep=ep)
        x[freeze] = np.clip(m[freeze], lo[freeze], hi[freeze])
        fe = freeze[ep]
        b_sel = fe & on_min
        bott[ep[b_sel][::-1]] = er[b_sel][::-1]  # the first row (deepest circuit, L1) names it
        at_cap = freeze & (x >= hi - EPS)
        bott[at_cap] = -1
        resid -= np.bincount(er[fe], ea[fe] * x[ep[fe]], minlength=n_rows)
        active &= ~freeze
        nf = ~fe
        er, ep, ea = er[nf], ep[nf], ea[nf]
    return x, bott
