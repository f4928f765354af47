"""The allocator: a snapshot in, a safe, fair, integer setpoint per plug out (pure: no I/O, clock).

Pipeline (see ``docs/allocation.md`` for the worked example):

1. **Constraint rows.** Every (circuit, phase) is a row ``sum of setpoints on that phase of every
   plug below the circuit <= limit - non-EV load``; a circuit with a power limit adds a row with
   coefficient "number of phases" per plug (in A, i.e. W / V); the PV surplus is one more row for
   ``pv``/``minpv`` plugs.
2. **Eligibility and queue.** Plugs that are off, unavailable, paused by target, inside their
   minimum pause or waiting for PV are out. The rest are ordered by priority, then plugs inside
   their minimum run time, then waiting time (the queue, so paused cars take turns).
3. **Admission (who runs).** Greedy first-fit in queue order: a plug runs if its minimum current
   still fits every row it loads. Vectorised in rounds (each round decides every plug whose fate is
   already certain from upper and lower bounds of the usage before it).
4. **Max-min fair filling,** priority level by priority level (higher first; lower-priority running
   plugs are reserved at their minimum): progressive filling with one water level ``t`` per plug,
   ``x = clamp(t, min, cap)``. Each round computes, for every row, the level at which it would
   saturate (rows are piecewise linear in ``t``; evaluated at all breakpoints at once with NumPy),
   and freezes every plug on a row whose level is minimal among the rows it shares plugs with.
5. **Integer amps.** Round down, then hand one more amp (never more than the ceiling of the exact
   value) to the plugs with the largest remainders first, by the same first-fit.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Final

from fuseguard.allocation.common import (
    EPS,
    M_MINPV,
    M_OFF,
    M_PV,
    MAX_BELOW_MIN,
    MIN_PAUSE,
    MODE_CODE,
    OFF,
    PV_SHORT,
    PV_WAIT,
    REJECTED,
    RUN,
    TARGET_LOW,
    TARGET_ZERO,
    UNAVAILABLE,
    RowNames,
    check_plugs,
    circuit_chains,
    paused_reason,
    phase_mask,
    running_reason,
    surplus_kw,
)
from fuseguard.allocation.finite import non_finite_inputs, refused
from fuseguard.allocation.small import allocate_small
from fuseguard.allocation.types import Allocation, Circuit, Snapshot
from fuseguard.model.phases import Phase

if TYPE_CHECKING:  # NumPy is imported where it is used: small sites never load it
    import numpy as np
    from numpy.typing import NDArray

    FloatArr = NDArray[np.float64]
    IntArr = NDArray[np.int64]
    BoolArr = NDArray[np.bool_]

#: Up to this many plugs the pure-Python path is faster than the NumPy one.
SMALL_SITE_PLUGS: Final = 40

_MODE_CODE: Final = MODE_CODE
_M_PV: Final = M_PV
_M_MINPV: Final = M_MINPV
_M_OFF: Final = M_OFF


# --- tree ------------------------------------------------------------------------------------


def _ancestors(circuits: tuple[Circuit, ...]) -> tuple[dict[str, int], IntArr]:
    """Circuit index by id, and per circuit its chain to the root (self first), padded with -1."""
    import numpy as np

    index, chains = circuit_chains(circuits)
    depth = max((len(ch) for ch in chains), default=1)
    anc = np.full((len(circuits), depth), -1, dtype=np.int64)
    for i, ch in enumerate(chains):
        anc[i, : len(ch)] = ch
    return index, anc


# --- vectorised building blocks -------------------------------------------------------------


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
    k_n = bps.size
    while er.size:
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
        t = np.full(n_rows, np.inf)
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
        te = t[er]
        starts = np.flatnonzero(np.concatenate(([True], ep[1:] != ep[:-1])))
        m = np.full(n, np.inf)
        m[ep[starts]] = np.minimum.reduceat(te, starts)
        row_min = np.full(n_rows, np.inf)
        np.minimum.at(row_min, er, m[ep])
        locmin = t <= row_min + EPS * (1.0 + np.abs(row_min))
        on_min = locmin[er]
        hit = np.zeros(n, dtype=np.bool_)
        hit[ep[on_min]] = True
        freeze = active & (hit | (hi <= m + EPS))
        if not freeze.any():  # pragma: no cover - the global minimum row always freezes
            freeze = active.copy()
        xf = np.clip(m[freeze], lo[freeze], hi[freeze])
        x[freeze] = xf
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


# --- the allocator ---------------------------------------------------------------------------


@functools.cache
def _phase_masks() -> tuple[BoolArr, FloatArr]:
    """Per 3-bit phase code: the phase mask and the number of phases (built on first use)."""
    import numpy as np

    mask8 = np.array([[bool(k & 1), bool(k & 2), bool(k & 4)] for k in range(8)], dtype=np.bool_)
    nph8: FloatArr = mask8.sum(axis=1).astype(np.float64)
    return mask8, nph8


_PHASE_BITS: dict[tuple[Phase, ...], int] = {}


def _phase_bits(phases: tuple[Phase, ...]) -> int:
    mask = phase_mask(phases)
    bits = _PHASE_BITS[phases] = mask[0] | mask[1] << 1 | mask[2] << 2
    return bits


class _Prepared:
    """The snapshot as arrays."""

    __slots__ = (
        "avail",
        "b",
        "circuit_ids",
        "e_coef",
        "e_plug",
        "e_row",
        "hi",
        "ids",
        "lo",
        "max_a",
        "mode",
        "n_circ",
        "nph",
        "paused",
        "power_rows",
        "prio",
        "pv_row",
        "running",
        "running_s",
        "setpoint",
        "target",
    )

    def __init__(self, snap: Snapshot) -> None:
        import numpy as np

        circuits = snap.circuits
        index, anc = _ancestors(circuits)
        volt = snap.params.voltage_v
        n_circ = len(circuits)
        self.n_circ = n_circ
        self.circuit_ids = [c.id for c in circuits]
        power_rows = np.full(n_circ, -1, dtype=np.int64)
        b_list: list[float] = []
        for c in circuits:
            b_list.extend(lim - load for lim, load in zip(c.limit_a, c.non_ev_load_a, strict=True))
        self.power_rows: dict[int, tuple[int, float]] = {}
        for i, c in enumerate(circuits):
            if c.power_limit_w is not None:
                power_rows[i] = len(b_list)
                self.power_rows[len(b_list)] = (i, c.power_limit_w)
                b_list.append(c.power_limit_w / volt - c.non_ev_load_a.total)
        self.pv_row = len(b_list)
        b_list.append(max(snap.pv_surplus_w, 0.0) / volt)
        self.b = np.array(b_list, dtype=np.float64)

        plugs = snap.plugs
        n = len(plugs)
        self.ids = [p.id for p in plugs]
        try:
            circ_list = [index[p.circuit] for p in plugs]
        except KeyError:
            check_plugs(plugs, index)
            raise
        if len(set(self.ids)) != n:
            check_plugs(plugs, index)
        bits_get = _PHASE_BITS.get
        bit_list = [bits_get(p.phases, -1) for p in plugs]
        if -1 in bit_list:
            if not all(p.phases for p in plugs):
                check_plugs(plugs, index)
            bit_list = [_phase_bits(p.phases) for p in plugs]
        f64 = np.float64
        circ = np.fromiter(circ_list, np.int64, n)
        bits = np.fromiter(bit_list, np.int64, n)
        mask8, nph8 = _phase_masks()
        mask = mask8[bits]
        self.nph = nph8[bits]
        self.lo = np.fromiter([p.min_a for p in plugs], f64, n)
        self.max_a = np.fromiter([p.max_a for p in plugs], f64, n)
        # None -> NaN: every comparison with a missing target is False
        self.target = np.array([p.target_a for p in plugs], dtype=f64).reshape(n)
        self.hi = np.where(self.target >= 0, np.minimum(self.max_a, self.target), self.max_a)
        self.prio = np.fromiter([p.priority for p in plugs], np.int64, n)
        self.mode = np.fromiter([_MODE_CODE[p.mode] for p in plugs], np.int64, n)
        self.avail = np.fromiter([p.available for p in plugs], np.bool_, n)
        self.setpoint = np.fromiter([p.setpoint_a for p in plugs], f64, n)
        self.running_s = np.array([p.running_s for p in plugs], dtype=f64).reshape(n)
        self.paused = np.array([p.paused_s for p in plugs], dtype=f64).reshape(n)
        self.running = self.setpoint > 0

        # entries: (row, plug, coefficient), sorted by plug
        anc_p = anc[circ]  # n x depth
        depth = anc_p.shape[1]
        rows3 = anc_p[:, :, None] * 3 + np.arange(3)[None, None, :]
        valid3 = (anc_p >= 0)[:, :, None] & mask[:, None, :]
        plug3 = np.broadcast_to(np.arange(n)[:, None, None], (n, depth, 3))
        e_row = [rows3[valid3]]
        e_plug = [plug3[valid3]]
        e_coef = [np.ones(e_row[0].size)]
        if self.power_rows:
            pr = np.where(anc_p >= 0, power_rows[anc_p], -1)
            vp = pr >= 0
            e_row.append(pr[vp])
            pp = np.broadcast_to(np.arange(n)[:, None], (n, depth))[vp]
            e_plug.append(pp)
            e_coef.append(self.nph[pp])
        pv_group = np.flatnonzero((self.mode == _M_PV) | (self.mode == _M_MINPV))
        if pv_group.size:
            e_row.append(np.full(pv_group.size, self.pv_row, dtype=np.int64))
            e_plug.append(pv_group)
            e_coef.append(self.nph[pv_group])
        if len(e_row) > 1:
            er = np.concatenate(e_row).astype(np.int64)
            ep = np.concatenate(e_plug).astype(np.int64)
            ec = np.concatenate(e_coef)
            srt = np.argsort(ep, kind="stable")
            er, ep, ec = er[srt], ep[srt], ec[srt]
        else:
            er, ep, ec = e_row[0].astype(np.int64), e_plug[0].astype(np.int64), e_coef[0]
        self.e_row, self.e_plug, self.e_coef = er, ep, ec


def allocate(snapshot: Snapshot) -> Allocation:
    """Setpoints and reasons for every plug of ``snapshot`` (pure, deterministic).

    Small sites take the pure-Python path (:mod:`fuseguard.allocation.small`, same algorithm and
    the same floating-point operations, so the same answer); larger ones the NumPy path.
    A non-finite limit or load anywhere gives every plug 0 A (:mod:`fuseguard.allocation.finite`).
    """
    problems = non_finite_inputs(snapshot)
    if problems:
        return refused(snapshot, problems)
    if len(snapshot.plugs) <= SMALL_SITE_PLUGS:
        return allocate_small(snapshot)
    return allocate_numpy(snapshot)


def allocate_numpy(snapshot: Snapshot) -> Allocation:
    """The NumPy path of :func:`allocate` (any size; the fastest from a few dozen plugs)."""
    import numpy as np

    prep = _Prepared(snapshot)
    params = snapshot.params
    n = len(prep.ids)
    if n == 0:
        return Allocation({}, {}, {}, frozenset())
    lo, hi, volt = prep.lo, prep.hi, params.voltage_v

    # 1. eligibility
    code = np.full(n, RUN, dtype=np.int64)
    code[prep.target == 0] = TARGET_ZERO
    code[(code == RUN) & (prep.target > 0) & (prep.target < lo)] = TARGET_LOW
    code[(code == RUN) & (prep.max_a < lo)] = MAX_BELOW_MIN
    code[~prep.avail] = UNAVAILABLE
    code[prep.mode == _M_OFF] = OFF
    running = prep.running & (code == RUN)
    run_s = np.nan_to_num(prep.running_s, nan=0.0)
    locked = running & (run_s < params.min_run_s)
    paused_known = ~np.isnan(prep.paused)
    blocked = (code == RUN) & ~running & paused_known & (prep.paused < params.min_pause_s)
    code[blocked] = MIN_PAUSE
    waiting = np.where(running, 0.0, np.nan_to_num(prep.paused, nan=0.0))

    # 2. queue: priority, locked runners, longest waiting, runners before fresh plugs, order
    id_rank = np.arange(n)  # ties: snapshot order
    queue = np.lexsort(
        (id_rank, run_s, ~running, -waiting, ~locked, -prep.prio),
    ).astype(np.int64)

    # PV condition, in queue order, on the PV row only
    pv_pending = np.zeros(n, dtype=np.bool_)
    stopping = np.zeros(n, dtype=np.bool_)
    pv_q = queue[
        (code[queue] == RUN) & ((prep.mode[queue] == _M_PV) | (prep.mode[queue] == _M_MINPV))
    ]
    surplus_w = max(snapshot.pv_surplus_w, 0.0)
    left_w = surplus_w
    for i in pv_q.tolist():
        need_w = prep.nph[i] * lo[i] * volt
        if prep.mode[i] == _M_MINPV:
            left_w -= need_w
            continue
        if running[i]:
            if left_w + params.pv_disable_threshold_w >= need_w:
                left_w -= need_w
            elif snapshot.plugs[i].pv_timer_s < params.pv_disable_delay_s:
                left_w -= need_w
                stopping[i] = True
                pv_pending[i] = True
            else:
                code[i] = PV_SHORT
                pv_pending[i] = True
        elif left_w >= need_w + params.pv_enable_threshold_w:
            left_w -= need_w
            if snapshot.plugs[i].pv_timer_s < params.pv_enable_delay_s:
                code[i] = PV_WAIT
                pv_pending[i] = True
        else:
            code[i] = PV_SHORT

    # 3. admission: first-fit of minimum currents on the physical and power rows
    phys = prep.e_row != prep.pv_row
    er_p, ep_p, ec_p = prep.e_row[phys], prep.e_plug[phys], prep.e_coef[phys]
    cand = queue[code[queue] == RUN]
    admitted = first_fit(cand, n=n, e_row=er_p, e_plug=ep_p, e_amount=ec_p * lo[ep_p], resid=prep.b)
    code[(code == RUN) & ~admitted] = REJECTED

    # 4. max-min fair filling, priority level by priority level
    er, ep, ec = prep.e_row, prep.e_plug, prep.e_coef
    n_rows = prep.b.size
    b = prep.b.copy()
    pv_min = float(np.sum((prep.nph * lo)[admitted & (prep.mode != 0)]))
    b[prep.pv_row] = max(b[prep.pv_row], pv_min)
    on = admitted[ep]
    # sums over a subset of the entries as full-length bincounts with zero weights elsewhere
    # (adding 0.0 changes no sum, so this equals summing the subset, bit for bit)
    lo_w = ec * lo[ep]
    used_at_min = np.bincount(er, np.where(on, lo_w, 0.0), minlength=n_rows)
    used = used_at_min.copy()
    x = np.zeros(n)
    bott = np.full(n, -1, dtype=np.int64)
    for level_prio in sorted(set(prep.prio[admitted].tolist()), reverse=True):
        lv = admitted & (prep.prio == level_prio)
        lv_e = lv[ep]
        own = np.bincount(er, np.where(lv_e, lo_w, 0.0), minlength=n_rows)
        xl, bl = progressive_fill(
            lv, lo=lo, hi=hi, e_row=er, e_plug=ep, e_coef=ec, resid=b - used + own
        )
        x[lv] = xl[lv]
        bott[lv] = bl[lv]
        used += np.bincount(er, np.where(lv_e, ec * (xl - lo)[ep], 0.0), minlength=n_rows)

    # 5. integer amps: floor, then one more amp by largest remainder, first-fit
    fl = np.where(admitted, np.floor(x + 1e-7), 0.0)
    fl = np.minimum(fl, np.where(admitted, hi, 0.0))
    resid = b - np.bincount(er, ec * fl[ep], minlength=n_rows)  # fl is 0 unless admitted
    frac = x - fl
    up = admitted & (frac > 1e-7) & (fl + 1 <= hi + EPS)
    up_idx = np.flatnonzero(up)
    up_order = up_idx[np.lexsort((id_rank[up_idx], -frac[up_idx]))]
    extra = first_fit(up_order, n=n, e_row=er, e_plug=ep, e_amount=ec, resid=resid)
    setpoint = fl + extra

    # defence in depth: a row over its limit pauses every plug on it
    usage = np.bincount(er, ec * setpoint[ep], minlength=n_rows)
    bad_rows = usage > b + 1e-6 * (1.0 + np.abs(b))
    bad_rows[prep.pv_row] = False
    if bad_rows.any():  # pragma: no cover - the pipeline above never gets here
        hit = np.zeros(n, dtype=np.bool_)
        hit[ep[bad_rows[er]]] = True
        setpoint[hit] = 0
        code[hit] = REJECTED

    resid_after = b - used_at_min
    reasons = _reasons(
        snapshot,
        prep=prep,
        code=code,
        x=x,
        setpoint=setpoint,
        bott=bott,
        stopping=stopping,
        waiting=waiting,
        resid_after_admission=resid_after,
    )
    sp_list = setpoint.astype(np.int64).tolist()
    x_list = np.where(admitted, x, 0.0).tolist()
    return Allocation(
        setpoints=dict(zip(prep.ids, sp_list, strict=True)),
        reasons=reasons,
        exact_a=dict(zip(prep.ids, x_list, strict=True)),
        pv_pending=frozenset(prep.ids[i] for i in np.flatnonzero(pv_pending).tolist()),
    )


def _reasons(
    snap: Snapshot,
    *,
    prep: _Prepared,
    code: IntArr,
    x: FloatArr,
    setpoint: FloatArr,
    bott: IntArr,
    stopping: BoolArr,
    waiting: FloatArr,
    resid_after_admission: FloatArr,
) -> dict[str, str]:
    """Reasons for every plug: the common "limited by <row>" once per row, the rest per plug."""
    import numpy as np

    params = snap.params
    plugs = snap.plugs
    kw = surplus_kw(snap.pv_surplus_w)
    names = RowNames(prep.circuit_ids, prep.power_rows, prep.pv_row)
    run = (code == RUN) & ~stopping
    limited = run & (bott >= 0) & (bott != prep.pv_row)
    by_row = {r: f"limited by {names(r)}" for r in np.unique(bott[limited]).tolist()}
    get = by_row.get
    texts: list[str | None] = [get(r) for r in bott.tolist()]
    # at the own maximum without a target: "at maximum N A" (one string per N)
    at_max = run & (bott < 0) & np.isnan(prep.target) & (setpoint >= prep.max_a)
    if at_max.any():
        idx = np.flatnonzero(at_max)
        mx = prep.max_a[idx].astype(np.int64)
        by_max = {int(v): f"at maximum {v} A" for v in np.unique(mx).tolist()}
        for i, v in zip(idx.tolist(), mx.tolist(), strict=True):
            texts[i] = by_max[v]
    others = np.flatnonzero(~(limited | at_max)).tolist()
    if others:
        fail = _fail_rows(prep, code, resid_after_admission)
        for i in others:
            p = plugs[i]
            c = int(code[i])
            if c == RUN:
                texts[i] = running_reason(
                    p,
                    sp=int(setpoint[i]),
                    x=float(x[i]),
                    row=int(bott[i]),
                    names=names,
                    kw=kw,
                    stopping=bool(stopping[i]),
                    params=params,
                )
            else:
                texts[i] = paused_reason(
                    p,
                    c=c,
                    params=params,
                    names=names,
                    kw=kw,
                    waiting_s=float(waiting[i]),
                    fail_row=int(fail[i]),
                )
    return dict(zip(prep.ids, texts, strict=True))  # type: ignore[arg-type]


def _fail_rows(prep: _Prepared, code: IntArr, resid: FloatArr) -> IntArr:
    """Per rejected plug, the physical row where its minimum misses most (others: -1)."""
    import numpy as np

    fail = np.full(code.size, -1, dtype=np.int64)
    sel = (code[prep.e_plug] == REJECTED) & (prep.e_row != prep.pv_row)
    if not sel.any():
        return fail
    er, ep = prep.e_row[sel], prep.e_plug[sel]
    deficit = prep.e_coef[sel] * prep.lo[ep] - resid[er]
    srt = np.lexsort((-deficit, ep))
    ep_s = ep[srt]
    first = np.concatenate(([True], ep_s[1:] != ep_s[:-1]))
    fail[ep_s[first]] = er[srt][first]
    return fail
