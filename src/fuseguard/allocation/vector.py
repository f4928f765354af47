"""The allocator on NumPy arrays: the path for sites above ``SMALL_SITE_PLUGS`` plugs.

The pipeline of :mod:`fuseguard.allocation.engine` as array operations over the entries of
:class:`~fuseguard.allocation.vector_site.SiteArrays`; the kernels are in
:mod:`fuseguard.allocation.vector_fill`, the row layout, PV condition and reasons are shared with
the pure-Python path (:mod:`.common`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from fuseguard.allocation.common import (
    EPS,
    KEEP_BAND_A,
    M_MINPV,
    M_OFF,
    M_PV,
    MAX_BELOW_MIN,
    MIN_PAUSE,
    OFF,
    REJECTED,
    RUN,
    TARGET_LOW,
    TARGET_ZERO,
    UNAVAILABLE,
    paused_reason,
    pv_condition,
    running_reason,
    surplus_kw,
)
from fuseguard.allocation.handout import hand_out
from fuseguard.allocation.reserve import admit_prefix, fill_levels, reserves
from fuseguard.allocation.types import Allocation, Plug, Snapshot
from fuseguard.allocation.vector_fill import first_fit, progressive_fill
from fuseguard.allocation.vector_site import SiteArrays
from fuseguard.allocation.weights import phase_weights

if TYPE_CHECKING:  # NumPy is imported where it is used: small sites never load it
    import numpy as np
    from numpy.typing import NDArray

    FloatArr = NDArray[np.float64]
    IntArr = NDArray[np.int64]
    BoolArr = NDArray[np.bool_]


@dataclass(slots=True)
class _Queue:
    """Step 2: who is running, how long each has waited, the queue, the PV verdict as masks."""

    running: BoolArr
    waiting: FloatArr
    order: IntArr
    stopping: BoolArr
    pv_pending: BoolArr


def _eligibility(prep: SiteArrays) -> IntArr:
    """Step 1: the outcome code of every plug that cannot run whatever the limits (else RUN)."""
    import numpy as np

    lo = prep.lo
    code = np.full(lo.size, RUN, dtype=np.int64)
    code[prep.target == 0] = TARGET_ZERO
    code[(code == RUN) & (prep.target > 0) & (prep.target < lo)] = TARGET_LOW
    code[(code == RUN) & (prep.max_a < lo)] = MAX_BELOW_MIN
    code[~prep.avail] = UNAVAILABLE
    code[prep.mode == M_OFF] = OFF
    return code


def _queue(snapshot: Snapshot, prep: SiteArrays, code: IntArr) -> _Queue:
    """Step 2: minimum pause, the queue (level: priority and urgency, locked runners, lowest
    energy share, longest waiting, runners before fresh plugs, snapshot order; :mod:`.urgency`)
    and the shared PV condition in queue order."""
    import numpy as np

    params = snapshot.params
    n = code.size
    running = prep.running & (code == RUN)
    run_s = np.nan_to_num(prep.running_s, nan=0.0)
    locked = running & (run_s < params.min_run_s)
    paused_known = ~np.isnan(prep.paused)
    blocked = (code == RUN) & ~running & paused_known & (prep.paused < params.min_pause_s)
    code[blocked] = MIN_PAUSE
    waiting = np.where(running, 0.0, np.nan_to_num(prep.paused, nan=0.0))
    id_rank = np.arange(n)  # ties: snapshot order
    order = np.lexsort(
        (id_rank, run_s, ~running, -waiting, prep.share, ~locked, -prep.prio)
    ).astype(np.int64)
    mode_q = prep.mode[order]
    pv_q = order[(code[order] == RUN) & ((mode_q == M_PV) | (mode_q == M_MINPV))]
    verdict = pv_condition(
        pv_q.tolist(),
        need_w=(prep.nph[pv_q] * prep.lo[pv_q] * params.voltage_v).tolist(),
        minpv=(prep.mode[pv_q] == M_MINPV).tolist(),
        running=running[pv_q].tolist(),
        timer_s=[snapshot.plugs[i].pv_timer_s for i in pv_q.tolist()],
        surplus_w=snapshot.pv_surplus_w,
        params=params,
    )
    for i, c in verdict.codes.items():
        code[i] = c
    stopping = np.zeros(n, dtype=np.bool_)
    stopping[np.fromiter(verdict.stopping, np.int64, len(verdict.stopping))] = True
    pending = np.zeros(n, dtype=np.bool_)
    pending[np.fromiter(verdict.pending, np.int64, len(verdict.pending))] = True
    return _Queue(running, waiting, order, stopping, pending)


def _fill_levels(
    prep: SiteArrays, admitted: BoolArr, weight: float = 1.0
) -> tuple[FloatArr, IntArr, FloatArr, FloatArr]:
    """Step 4: max-min fair filling, priority level by priority level (lower-priority running
    plugs reserved at their minimum; one-phase plugs weighted by ``weight``, :mod:`.weights`).
    Returns the exact currents, the row that froze each plug, the capacities (the PV row raised
    to the admitted PV minimum) and the load at minimum."""
    import numpy as np

    er, ep, ec, lo = prep.e_row, prep.e_plug, prep.e_coef, prep.lo
    n, n_rows = lo.size, prep.b.size
    b = prep.b.copy()
    pv_min = float(np.sum((prep.nph * lo)[admitted & (prep.mode != 0)]))
    b[prep.pv_row] = max(b[prep.pv_row], pv_min)
    on = admitted[ep]
    # sums over a subset of the entries as full-length bincounts with zero weights elsewhere
    # (adding 0.0 changes no sum, so this equals summing the subset, bit for bit)
    lo_w = ec * lo[ep]
    used_at_min = cast("FloatArr", np.bincount(er, np.where(on, lo_w, 0.0), minlength=n_rows))
    used = used_at_min.copy()
    x = np.zeros(n)
    bott = np.full(n, -1, dtype=np.int64)
    wl = phase_weights(prep.nph.tolist(), weight)
    f_lo, f_hi, f_ec = lo, prep.hi, ec  # the filling's variable: x / weight (.weights)
    if wl is not None:
        wt = np.asarray(wl)
        f_lo, f_hi, f_ec = lo / wt, prep.hi / wt, ec * wt[ep]
    for level_prio in sorted(set(prep.prio[admitted].tolist()), reverse=True):
        lv = admitted & (prep.prio == level_prio)
        lv_e = lv[ep]
        own = np.bincount(er, np.where(lv_e, lo_w, 0.0), minlength=n_rows)
        xl, bl = progressive_fill(
            lv, lo=f_lo, hi=f_hi, e_row=er, e_plug=ep, e_coef=f_ec, resid=b - used + own
        )
        if wl is not None:
            xl = np.minimum(np.maximum(xl * wt, lo), prep.hi)
        x[lv] = xl[lv]
        bott[lv] = bl[lv]
        used += np.bincount(er, np.where(lv_e, ec * (xl - lo)[ep], 0.0), minlength=n_rows)
    return x, bott, b, used_at_min


def _round(prep: SiteArrays, admitted: BoolArr, x: FloatArr, b: FloatArr, code: IntArr) -> FloatArr:
    """Step 5: floor, then one more amp by largest remainder (the holder of the amp counted
    ``KEEP_BAND_A`` larger), first-fit, then the amps still free handed out in max-min order
    (:mod:`.handout`); a row over its limit afterwards (never, by construction) pauses every
    plug on it."""
    import numpy as np

    er, ep, ec, hi = prep.e_row, prep.e_plug, prep.e_coef, prep.hi
    n, n_rows = x.size, b.size
    fl = np.where(admitted, np.floor(x + 1e-7), 0.0)
    fl = np.minimum(fl, np.where(admitted, hi, 0.0))
    resid = b - np.bincount(er, ec * fl[ep], minlength=n_rows)  # fl is 0 unless admitted
    frac = x - fl
    up_idx = np.flatnonzero(admitted & (frac > 1e-7) & (fl + 1 <= hi + EPS))
    # the holder of the amp (its setpoint in force is its floor + 1) keeps it until another
    # remainder is larger by the band (common.KEEP_BAND_A)
    keep = frac + np.where(prep.setpoint == fl + 1.0, KEEP_BAND_A, 0.0)
    up_order = up_idx[np.lexsort((up_idx, -keep[up_idx]))]
    extra = first_fit(up_order, n=n, e_row=er, e_plug=ep, e_amount=ec, resid=resid)
    setpoint: FloatArr = fl + extra
    usage = np.bincount(er, ec * setpoint[ep], minlength=n_rows)
    if _hand_out(prep, admitted, setpoint, b - usage):
        usage = np.bincount(er, ec * setpoint[ep], minlength=n_rows)
    # a row the cars draw on that is over its limit (a row whose non-EV load alone is over its
    # limit admitted nobody: it pauses no one else)
    bad_rows = (usage > 0.0) & (usage > b + 1e-6 * (1.0 + np.abs(b)))
    bad_rows[prep.pv_row] = False
    if bad_rows.any():  # pragma: no cover - the pipeline above never gets here
        hit = np.zeros(n, dtype=np.bool_)
        hit[ep[bad_rows[er]]] = True
        setpoint[hit] = 0
        code[hit] = REJECTED
    return setpoint


def _hand_out(prep: SiteArrays, admitted: BoolArr, setpoint: FloatArr, free: FloatArr) -> bool:
    """The shared hand-out pass on the plugs one more amp fits now (pre-filtered with arrays: a
    plug that does not fit now never does). Changes ``setpoint`` in place; True if it did."""
    import numpy as np

    er, ep, ec = prep.e_row, prep.e_plug, prep.e_coef
    n = setpoint.size
    r = free[er]
    no_room = ec > r + EPS * (1.0 + np.abs(r))
    blocked = np.bincount(ep, no_room.astype(np.float64), minlength=n) > 0
    cand = admitted & ~blocked & (setpoint + 1.0 <= prep.hi + EPS)
    if not cand.any():
        return False
    idx = np.flatnonzero(cand)
    sel = cand[ep]
    rows: dict[int, list[int]] = {int(i): [] for i in idx}
    coefs: dict[int, list[float]] = {int(i): [] for i in idx}
    for i, row, a in zip(ep[sel].tolist(), er[sel].tolist(), ec[sel].tolist()):  # noqa: B905
        rows[i].append(row)
        coefs[i].append(a)
    sp = setpoint.tolist()
    before = list(sp)
    hi = prep.hi.tolist()
    hand_out(
        idx.tolist(),
        setpoint=sp,
        hi=hi,
        prio=prep.prio.tolist(),
        rows=rows,
        coefs=coefs,
        resid=free.tolist(),
    )
    if sp == before:
        return False
    setpoint[:] = sp
    return True


def _admit_reserved(
    prep: SiteArrays,
    prep_plugs: tuple[Plug, ...],
    cand: IntArr,
    reserve: list[float],
    phys: tuple[IntArr, IntArr, FloatArr],
    locked: BoolArr,
) -> BoolArr:
    """Admission with reserves: the shared sequential pass (:func:`.reserve.admit_prefix`) up
    to the last plug with a reserve, then the array first-fit of minimums on what is left; the
    admitted reserves become minimums and the urgent plugs fill at their priority's level
    (``prep.lo`` and ``prep.prio`` replaced)."""
    er_p, ep_p, ec_p = phys
    import numpy as np

    n = prep.lo.size
    order = cand.tolist()
    lo = prep.lo.tolist()
    last = max((pos for pos, i in enumerate(order) if reserve[i] > lo[i]), default=-1)
    head = order[: last + 1]
    held = cand[locked[cand]].tolist()  # the runners inside their minimum run, in queue order
    need = sorted(set(head).union(held))
    starts = np.searchsorted(ep_p, need, side="left").tolist()  # entries are sorted by plug
    ends = np.searchsorted(ep_p, need, side="right").tolist()
    rows: dict[int, list[int]] = {}
    coefs: dict[int, list[float]] = {}
    er_l, ec_l = er_p.tolist(), ec_p.tolist()
    for i, a, z in zip(need, starts, ends, strict=True):
        rows[i], coefs[i] = er_l[a:z], ec_l[a:z]
    resid = prep.b.tolist()
    adm, got, k = admit_prefix(
        head, lo=lo, reserve=reserve, rows=rows, coefs=coefs, resid=resid, locked=held
    )
    admitted = first_fit(
        cand[k:],
        n=n,
        e_row=er_p,
        e_plug=ep_p,
        e_amount=ec_p * prep.lo[ep_p],
        resid=np.asarray(resid, dtype=np.float64),
    )
    admitted[np.asarray(adm, dtype=np.int64)] = True
    if got:  # a reserve is its plug's minimum in the filling
        new_lo = prep.lo.copy()
        new_lo[np.fromiter(got, np.int64, len(got))] = np.fromiter(
            got.values(), np.float64, len(got)
        )
        prep.lo = new_lo
    prep.prio = np.fromiter(
        fill_levels(prep_plugs, prep.prio.tolist(), prep.urgent.tolist()), np.int64, n
    )
    return admitted


def allocate_numpy(snapshot: Snapshot) -> Allocation:
    """The NumPy path of :func:`~fuseguard.allocation.engine.allocate` (any size; the fastest
    above a few dozen plugs)."""
    import numpy as np

    prep = SiteArrays(snapshot)
    n = len(prep.ids)
    if n == 0:
        return Allocation({}, {}, {}, frozenset())
    code = _eligibility(prep)
    q = _queue(snapshot, prep, code)
    # 3. admission: first-fit of minimum currents on the physical and power rows
    phys = prep.e_row != prep.pv_row
    er_p, ep_p, ec_p = prep.e_row[phys], prep.e_plug[phys], prep.e_coef[phys]
    cand = q.order[code[q.order] == RUN]
    reserve = reserves(snapshot.plugs, prep.nph.tolist(), prep.urgent.tolist(), snapshot.params)
    if reserve is None:
        admitted = first_fit(
            cand, n=n, e_row=er_p, e_plug=ep_p, e_amount=ec_p * prep.lo[ep_p], resid=prep.b
        )
    else:  # urgent plugs admitted with what they need to finish (:mod:`.reserve`)
        run_s = np.nan_to_num(prep.running_s, nan=0.0)
        locked = q.running & (run_s < snapshot.params.min_run_s)
        admitted = _admit_reserved(prep, snapshot.plugs, cand, reserve, (er_p, ep_p, ec_p), locked)
    code[(code == RUN) & ~admitted] = REJECTED
    x, bott, b, used_at_min = _fill_levels(prep, admitted, snapshot.params.single_phase_weight)
    setpoint = _round(prep, admitted, x, b, code)
    reasons = _reasons(
        snapshot,
        prep=prep,
        code=code,
        x=x,
        setpoint=setpoint,
        bott=bott,
        stopping=q.stopping,
        waiting=q.waiting,
        resid_after_admission=b - used_at_min,
    )
    return Allocation(
        setpoints=dict(zip(prep.ids, setpoint.astype(np.int64).tolist(), strict=True)),
        reasons=reasons,
        exact_a=dict(zip(prep.ids, np.where(admitted, x, 0.0).tolist(), strict=True)),
        pv_pending=frozenset(prep.ids[i] for i in np.flatnonzero(q.pv_pending).tolist()),
    )


def _reasons(
    snap: Snapshot,
    *,
    prep: SiteArrays,
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
    names = prep.layout.names(snap.circuits)
    run = (code == RUN) & ~stopping & ~prep.urgent  # urgent plugs: a note per plug
    limited = run & (bott >= 0) & (bott != prep.pv_row) & (setpoint < prep.hi)
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


def _fail_rows(prep: SiteArrays, code: IntArr, resid: FloatArr) -> IntArr:
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
