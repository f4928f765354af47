"""The allocator in pure Python, for small sites (up to ``SMALL_SITE_PLUGS`` plugs).

Same algorithm as the NumPy path in :mod:`fuseguard.allocation.vector`, step by step and with the
same floating-point operations in the same order, so both give identical setpoints, reasons and
exact values (``tests/allocation/test_paths.py`` checks this exhaustively). NumPy's fixed
per-call overhead dominates small sites; plain lists are 1.4-4x faster there
(``bench/allocation.py``). The loads at the filling breakpoints are sums of integer amps times
integer coefficients, exact in any order; every other sum is accumulated in plug order like
``np.bincount``. The row layout and the PV condition are shared (:mod:`.common`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from fuseguard.allocation.common import (
    EPS,
    KEEP_BAND_A,
    M_MINPV,
    M_OFF,
    M_PV,
    MAX_BELOW_MIN,
    MIN_PAUSE,
    MODE_CODE,
    OFF,
    REJECTED,
    RUN,
    TARGET_LOW,
    TARGET_ZERO,
    UNAVAILABLE,
    PvVerdict,
    RowLayout,
    check_plugs,
    paused_reason,
    phase_mask,
    pv_condition,
    running_reason,
    surplus_kw,
)
from fuseguard.allocation.handout import hand_out
from fuseguard.allocation.reserve import admit_prefix, fill_levels, reserves
from fuseguard.allocation.small_fill import Coefs, Rows, fill_level
from fuseguard.allocation.types import Allocation, AllocationParams, Plug, Snapshot
from fuseguard.allocation.urgency import queue_keys
from fuseguard.allocation.weights import phase_weights


@dataclass(slots=True)
class _Site:
    """The snapshot's plugs as parallel lists (index: position in the snapshot)."""

    lo: list[float]
    hi: list[float]
    nph: list[float]
    mode: list[int]
    rows: list[Rows]  # every row a plug loads, in the NumPy entry order (pv row last)
    coefs: list[Coefs]
    phys: list[Rows]  # the physical and power rows only (a prefix of ``rows``)
    code: list[int]  # outcome code, RUN until a step rules the plug out


def _site(plugs: tuple[Plug, ...], layout: RowLayout) -> _Site:
    """Bounds, rows and eligibility of every plug (row lists shared per circuit and phases;
    one loop, no call per plug: this is the small path's per-plug cost)."""
    lo: list[float] = []
    hi: list[float] = []
    nph: list[float] = []
    mode: list[int] = []
    rows: list[Rows] = []
    coefs: list[Coefs] = []
    phys: list[Rows] = []
    code: list[int] = []
    templates: dict[tuple[int, tuple[bool, bool, bool], bool], tuple[Rows, Coefs, Rows]] = {}
    for p in plugs:
        mx = float(p.max_a)
        tg = p.target_a
        lo.append(float(p.min_a))
        hi.append(mx if tg is None or tg < 0 else min(mx, float(tg)))
        mask = phase_mask(p.phases)
        k = float(mask[0] + mask[1] + mask[2])
        nph.append(k)
        md = MODE_CODE[p.mode]
        mode.append(md)
        is_pv = md in (M_PV, M_MINPV)
        key = (layout.index[p.circuit], mask, is_pv)
        tpl = templates.get(key)
        if tpl is None:
            chain = layout.chains[key[0]]
            r_list = [ci * 3 + ph for ci in chain for ph in (0, 1, 2) if mask[ph]]
            c_list = [1.0] * len(r_list)
            for ci in chain:
                if layout.power_row[ci] >= 0:
                    r_list.append(layout.power_row[ci])
                    c_list.append(k)
            ph_list = r_list.copy()
            if is_pv:
                r_list.append(layout.pv_row)
                c_list.append(k)
            tpl = templates[key] = (r_list, c_list, ph_list)
        rows.append(tpl[0])
        coefs.append(tpl[1])
        phys.append(tpl[2])
        # eligibility: can the plug run at all, whatever the limits?
        if md == M_OFF:
            code.append(OFF)
        elif not p.available:
            code.append(UNAVAILABLE)
        elif tg == 0:
            code.append(TARGET_ZERO)
        elif tg is not None and 0 < tg < p.min_a:
            code.append(TARGET_LOW)
        elif p.max_a < p.min_a:
            code.append(MAX_BELOW_MIN)
        else:
            code.append(RUN)
    return _Site(lo, hi, nph, mode, rows, coefs, phys, code)


def _queue(
    plugs: tuple[Plug, ...], code: list[int], params: AllocationParams, nph: list[float]
) -> tuple[list[int], list[bool], list[float], list[int], list[bool]]:
    """The queue (level: priority and urgency, locked runners, lowest energy share, longest
    waiting, runners before fresh plugs, snapshot order), who is running, how long each plug
    has waited, the levels and who is urgent (:mod:`.urgency`); marks plugs inside their
    minimum pause."""
    running = [p.setpoint_a > 0 and code[i] == RUN for i, p in enumerate(plugs)]
    run_s = [0.0 if p.running_s is None else p.running_s for p in plugs]
    waiting: list[float] = []
    for i, p in enumerate(plugs):
        if (
            code[i] == RUN
            and not running[i]
            and p.paused_s is not None
            and p.paused_s < params.min_pause_s
        ):
            code[i] = MIN_PAUSE
        waiting.append(0.0 if running[i] or p.paused_s is None else p.paused_s)
    min_run = params.min_run_s
    prio, share, urgent = queue_keys(plugs, nph, params)
    queue = sorted(
        range(len(plugs)),
        key=lambda i: (
            -prio[i],
            not (running[i] and run_s[i] < min_run),
            share[i],
            -waiting[i],
            not running[i],
            run_s[i],
            i,
        ),
    )
    return queue, running, waiting, prio, urgent


def _ran_min(running_s: float | None, min_run_s: float) -> bool:
    """It has run its minimum run time (unknown or NaN: it has not; as the NumPy path's
    ``nan_to_num``)."""
    return running_s is not None and running_s >= min_run_s


_NO_PV: Final = PvVerdict(codes={}, stopping=set(), pending=set())  # read only


def _pv(snapshot: Snapshot, s: _Site, queue: list[int], running: list[bool]) -> PvVerdict:
    """The shared PV condition on the eligible pv/minpv plugs, in queue order."""
    code, mode = s.code, s.mode
    pv_q = [i for i in queue if code[i] == RUN and mode[i] in (M_PV, M_MINPV)]
    if not pv_q:
        return _NO_PV
    volt = snapshot.params.voltage_v
    verdict = pv_condition(
        pv_q,
        need_w=[s.nph[i] * s.lo[i] * volt for i in pv_q],
        minpv=[s.mode[i] == M_MINPV for i in pv_q],
        running=[running[i] for i in pv_q],
        timer_s=[snapshot.plugs[i].pv_timer_s for i in pv_q],
        surplus_w=snapshot.pv_surplus_w,
        params=snapshot.params,
    )
    for i, c in verdict.codes.items():
        s.code[i] = c
    return verdict


def _first_fit(
    order: list[int], rows: list[Rows], amount: list[list[float]], resid: list[float]
) -> tuple[list[int], list[float]]:
    """Sequential first-fit: admit an item when its amounts fit what the earlier ones left.

    Returns the admitted items and their usage per row (amounts are integers: exact sums).
    """
    cap = [r + EPS * (1.0 + abs(r)) for r in resid]
    total = [0.0] * len(resid)
    for i in order:
        for row, am in zip(rows[i], amount[i]):  # noqa: B905 - equal lengths by construction
            total[row] += am
    if all(t <= c for t, c in zip(total, cap)):  # noqa: B905
        return order, total  # everything fits: first-fit admits all
    used = [0.0] * len(resid)
    admitted: list[int] = []
    for i in order:
        ri, ai = rows[i], amount[i]
        for k in range(len(ri)):
            if used[ri[k]] + ai[k] > cap[ri[k]]:
                break
        else:
            for k in range(len(ri)):
                used[ri[k]] += ai[k]
            admitted.append(i)
    return admitted, used


def _fill_levels(
    s: _Site,
    adm: list[int],
    prio: list[int],
    *,
    b: list[float],
    used_at_min: list[float],
    mins: list[list[float]],
    weight: float = 1.0,
) -> tuple[list[float], list[int]]:
    """Max-min fair filling, priority level by priority level (higher first; lower levels held
    at their minimum; one-phase plugs weighted by ``weight``, :mod:`.weights`). Returns the
    exact currents and per plug the row that froze it."""
    lo, rows, coefs = s.lo, s.rows, s.coefs
    n, n_rows = len(lo), len(b)
    x = [0.0] * n
    bott = [-1] * n
    used = used_at_min
    wt = phase_weights(s.nph, weight)
    f_lo, f_hi, f_coefs = lo, s.hi, coefs  # the filling's variable: x / weight (.weights)
    if wt is not None:
        f_lo = [v / w for v, w in zip(lo, wt)]  # noqa: B905 - one per plug
        f_hi = [v / w for v, w in zip(s.hi, wt)]  # noqa: B905
        f_coefs = [[a * w for a in c] for c, w in zip(coefs, wt)]  # noqa: B905
    levels = sorted({prio[i] for i in adm}, reverse=True)
    for level_prio in levels:
        if len(levels) == 1:
            lv, own = adm, used_at_min  # integer sums: the same in any order
        else:
            lv = [i for i in adm if prio[i] == level_prio]
            own = [0.0] * n_rows
            for i in lv:
                for row, w in zip(rows[i], mins[i]):  # noqa: B905
                    own[row] += w
        resid = [(bb - u) + o for bb, u, o in zip(b, used, own)]  # noqa: B905
        fill_level(
            lv, lo=f_lo, hi=f_hi, rows=rows, coefs=f_coefs, resid=resid, own=own, x=x, bott=bott
        )
        if wt is not None:
            for i in lv:
                x[i] = min(max(x[i] * wt[i], lo[i]), s.hi[i])
        if len(levels) > 1:
            inc = [0.0] * n_rows
            for i in lv:
                d = x[i] - lo[i]
                for row, a in zip(rows[i], coefs[i]):  # noqa: B905
                    inc[row] += a * d
            used = [u + v for u, v in zip(used, inc)]  # noqa: B905
    return x, bott


def _round(
    s: _Site,
    adm: list[int],
    x: list[float],
    b: list[float],
    pv_row: int,
    prio: list[int],
    in_force: list[int],
) -> list[float]:
    """Integer amps: floor, then one more amp by largest remainder (a plug whose setpoint
    ``in_force`` is its floor + 1 counted :data:`KEEP_BAND_A` larger), first-fit, then the amps
    still free handed out in max-min order (:mod:`.handout`); a row over its limit afterwards
    (never, by construction) pauses every plug on it."""
    hi, rows, coefs = s.hi, s.rows, s.coefs
    n = len(x)
    fl = [0.0] * n
    sub = [0.0] * len(b)
    for i in adm:
        fi = fl[i] = min(float(math.floor(x[i] + 1e-7)), hi[i])
        for row, a in zip(rows[i], coefs[i]):  # noqa: B905
            sub[row] += a * fi
    resid = [bb - sb for bb, sb in zip(b, sub)]  # noqa: B905
    up = [i for i in adm if x[i] - fl[i] > 1e-7 and fl[i] + 1 <= hi[i] + EPS]
    # the holder of the amp keeps it until another remainder is larger by the band
    up.sort(
        key=lambda i: (-((x[i] - fl[i]) + (KEEP_BAND_A if in_force[i] == fl[i] + 1 else 0.0)), i)
    )
    setpoint = fl
    extra, used_extra = _first_fit(up, rows, coefs, resid)
    for i in extra:
        setpoint[i] += 1.0
    usage = [sb + u for sb, u in zip(sub, used_extra)]  # noqa: B905 - integer sums: exact
    free = [bb - u for bb, u in zip(b, usage)]  # noqa: B905
    before = [setpoint[i] for i in adm]
    hand_out(adm, setpoint=setpoint, hi=hi, prio=prio, rows=rows, coefs=coefs, resid=free)
    for i, sp0 in zip(adm, before):  # noqa: B905
        if setpoint[i] != sp0:
            for row, a in zip(rows[i], coefs[i]):  # noqa: B905
                usage[row] += a * (setpoint[i] - sp0)
    # defence in depth (integer sums: exact): a row the cars draw on that is over its limit;
    # a row whose non-EV load alone is over its limit admitted nobody and pauses no one else
    bad = [u > 0.0 and u > bb + 1e-6 * (1.0 + abs(bb)) for u, bb in zip(usage, b)]  # noqa: B905
    bad[pv_row] = False
    if True in bad:  # pragma: no cover - the pipeline above never gets here
        for i in range(n):
            if any(bad[row] for row in rows[i]):
                setpoint[i] = 0.0
                s.code[i] = REJECTED
    return setpoint


def allocate_small(snapshot: Snapshot) -> Allocation:
    """:func:`fuseguard.allocation.engine.allocate` for small sites, in pure Python."""
    layout = RowLayout.of(snapshot)
    plugs = snapshot.plugs
    n = len(plugs)
    ids = [p.id for p in plugs]
    if (
        any(p.circuit not in layout.index for p in plugs)
        or len(set(ids)) != n
        or not all(p.phases for p in plugs)
    ):
        check_plugs(plugs, layout.index)
    if n == 0:
        return Allocation({}, {}, {}, frozenset())
    s = _site(plugs, layout)
    queue, running, waiting, prio, urgent = _queue(plugs, s.code, snapshot.params, s.nph)
    pv = _pv(snapshot, s, queue, running)

    # admission: first-fit of minimum currents on the physical and power rows
    b = layout.b.copy()
    code, lo = s.code, s.lo
    cand = [i for i in queue if code[i] == RUN]
    mins = [[a * lo[i] for a in s.coefs[i]] for i in range(n)]
    reserve = reserves(plugs, s.nph, urgent, snapshot.params)
    if reserve is None:
        adm_q, used_at_min = _first_fit(cand, s.phys, mins, b)
    else:  # urgent plugs admitted with what they need to finish (:mod:`.reserve`)
        resid = list(b)
        min_run = snapshot.params.min_run_s
        locked = [i for i in cand if running[i] and not _ran_min(plugs[i].running_s, min_run)]
        adm_q, got, k = admit_prefix(
            cand, lo=lo, reserve=reserve, rows=s.phys, coefs=s.coefs, resid=resid, locked=locked
        )
        adm_rest, _ = _first_fit(cand[k:], s.phys, mins, resid)
        adm_q += adm_rest
        for i, amt in got.items():  # its reserve is its minimum in the filling
            lo[i] = amt
            mins[i] = [a * amt for a in s.coefs[i]]
        prio = fill_levels(plugs, prio, urgent)
        used_at_min = [0.0] * len(b)
        for i in adm_q:
            for row, w in zip(s.phys[i], mins[i]):  # noqa: B905 - phys is a prefix of rows
                used_at_min[row] += w
    adm = sorted(adm_q)
    admitted = [False] * n
    for i in adm:
        admitted[i] = True
    for i in cand:
        if not admitted[i]:
            code[i] = REJECTED

    pv_min = 0.0
    for i in adm:
        if s.mode[i] != 0:
            pv_min += s.nph[i] * lo[i]
    b[layout.pv_row] = max(b[layout.pv_row], pv_min)
    used_at_min[layout.pv_row] = pv_min  # the admitted pv plugs' minimum (integer sums: exact)
    weight = snapshot.params.single_phase_weight
    x, bott = _fill_levels(s, adm, prio, b=b, used_at_min=used_at_min, mins=mins, weight=weight)
    setpoint = _round(s, adm, x, b, layout.pv_row, prio, [p.setpoint_a for p in plugs])
    reasons = _reasons(
        snapshot,
        layout,
        s,
        setpoint=setpoint,
        x=x,
        bott=bott,
        stopping=pv.stopping,
        waiting=waiting,
        b=b,
        used_at_min=used_at_min,
        mins=mins,
    )
    return Allocation(
        setpoints={ids[i]: int(setpoint[i]) for i in range(n)},
        reasons=reasons,
        exact_a={ids[i]: (x[i] if admitted[i] else 0.0) for i in range(n)},
        pv_pending=frozenset(ids[i] for i in sorted(pv.pending)),
    )


def _reasons(
    snapshot: Snapshot,
    layout: RowLayout,
    s: _Site,
    *,
    setpoint: list[float],
    x: list[float],
    bott: list[int],
    stopping: set[int],
    waiting: list[float],
    b: list[float],
    used_at_min: list[float],
    mins: list[list[float]],
) -> dict[str, str]:
    """Plain-words reasons for every plug (the sentences are shared with the NumPy path)."""
    params = snapshot.params
    names = layout.names(snapshot.circuits)
    kw = surplus_kw(snapshot.pv_surplus_w)
    reasons: dict[str, str] = {}
    for i, p in enumerate(snapshot.plugs):
        c = s.code[i]
        if c == RUN:
            reasons[p.id] = running_reason(
                p,
                sp=int(setpoint[i]),
                x=x[i],
                row=bott[i],
                names=names,
                kw=kw,
                stopping=i in stopping,
                params=params,
            )
            continue
        fail = -1
        if c == REJECTED:  # the physical row where its minimum misses most
            best = -math.inf
            for row, w in zip(s.phys[i], mins[i]):  # noqa: B905
                deficit = w - (b[row] - used_at_min[row])
                if deficit > best:
                    best, fail = deficit, row
        reasons[p.id] = paused_reason(
            p, c=c, params=params, names=names, kw=kw, waiting_s=waiting[i], fail_row=fail
        )
    return reasons
