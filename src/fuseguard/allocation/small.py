"""The allocator in pure Python, for small sites (a few dozen plugs).

Same algorithm as the NumPy path in :mod:`fuseguard.allocation.engine`, step by step and with the
same floating-point operations in the same order, so both give identical setpoints, reasons and
exact values (a property test checks this). NumPy's fixed per-call overhead dominates small
sites; plain lists are several times faster there. The loads at the filling breakpoints are sums
of integer amps times integer coefficients, exact in any order; every other sum is accumulated in
plug order like ``np.bincount``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

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
from fuseguard.allocation.types import Allocation, Snapshot

Rows = list[int]
Coefs = list[float]


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


def _fill(
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

    Mirrors :func:`fuseguard.allocation.engine.progressive_fill` round by round. ``own`` is the
    level's load at the minimum currents. A row's load at a level ``v`` is
    ``sum a * clamp(v, lo, hi)``: integers, exact in any order, so each row keeps its load at the
    lowest and the highest breakpoint (every plug at ``lo`` / at ``hi``) and is evaluated in
    between only when it saturates there. Sums of non-integers (``resid`` updates) are
    accumulated in plug order from 0.0, like ``np.bincount``.
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
    inf = math.inf
    n_rows = len(resid)
    bottom = [0.0] * n_rows  # load with every growing plug at lo / at hi (integers: exact)
    top = [0.0] * n_rows
    for i in active:
        li, hi_i = lo[i], hi[i]
        for row, a in zip(rows[i], coefs[i]):  # noqa: B905
            bottom[row] += a * li
            top[row] += a * hi_i
    # A row that fits with every plug at its cap never saturates in this level (freezing a plug
    # lowers its load by a * hi >= a * x): its level stays +inf, which changes no plug's minimum,
    # and it can only be the "first minimal row" of plugs that end at their cap. Leave it out.
    keep = [t > r for t, r in zip(top, resid)]  # noqa: B905
    on_row: dict[int, list[tuple[float, float, float, int]]] = {}
    kept: dict[int, list[tuple[int, float]]] = {}
    rows_of: dict[int, list[int]] = {}
    for i in active:
        li, hi_i = lo[i], hi[i]
        k_rows: list[int] = []
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
    alive = dict.fromkeys(active, True)
    # the level's breakpoints, fixed for all rounds (a superset of the growing plugs' ones: the
    # loads between two neighbours stay linear and exact), as in the NumPy path
    bps = sorted({lo[i] for i in active} | {hi[i] for i in active})
    last = len(bps) - 1
    t_row = [inf] * n_rows
    todo: Iterable[int] = list(on_row)  # rows whose level must be (re)computed
    while active:
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
        t_get = t_row.__getitem__
        row_min = [inf] * n_rows
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


def allocate_small(snapshot: Snapshot) -> Allocation:
    """:func:`fuseguard.allocation.engine.allocate` for small sites, in pure Python."""
    circuits = snapshot.circuits
    index, chains = circuit_chains(circuits)
    params = snapshot.params
    volt = params.voltage_v
    b: list[float] = []
    for circ in circuits:
        b.extend(lim - load for lim, load in zip(circ.limit_a, circ.non_ev_load_a, strict=True))
    power_row = [-1] * len(circuits)
    power_rows: dict[int, tuple[int, float]] = {}
    for ci, circ in enumerate(circuits):
        if circ.power_limit_w is not None:
            power_row[ci] = len(b)
            power_rows[len(b)] = (ci, circ.power_limit_w)
            b.append(circ.power_limit_w / volt - circ.non_ev_load_a.total)
    pv_row = len(b)
    b.append(max(snapshot.pv_surplus_w, 0.0) / volt)
    n_rows = len(b)

    plugs = snapshot.plugs
    n = len(plugs)
    ids = [p.id for p in plugs]
    if (
        any(p.circuit not in index for p in plugs)
        or len(set(ids)) != n
        or not all(p.phases for p in plugs)
    ):
        check_plugs(plugs, index)
    if n == 0:
        return Allocation({}, {}, {}, frozenset())

    lo: list[float] = []
    hi: list[float] = []
    nph: list[float] = []
    mode: list[int] = []
    rows: list[Rows] = []  # every row a plug loads, in the NumPy entry order (pv row last)
    coefs: list[Coefs] = []
    phys: list[Rows] = []  # the physical and power rows only
    code: list[int] = []
    templates: dict[tuple[int, tuple[bool, bool, bool], bool], tuple[Rows, Coefs, Rows]] = {}
    for p in plugs:
        li = float(p.min_a)
        mx = float(p.max_a)
        tg = p.target_a
        lo.append(li)
        hi.append(mx if tg is None or tg < 0 else min(mx, float(tg)))
        mask = phase_mask(p.phases)
        k = float(mask[0] + mask[1] + mask[2])
        nph.append(k)
        md = MODE_CODE[p.mode]
        mode.append(md)
        is_pv = md in (M_PV, M_MINPV)
        key = (index[p.circuit], mask, is_pv)
        tpl = templates.get(key)
        if tpl is None:
            chain = chains[key[0]]
            r_list = [ci * 3 + ph for ci in chain for ph in (0, 1, 2) if mask[ph]]
            c_list = [1.0] * len(r_list)
            for ci in chain:
                if power_row[ci] >= 0:
                    r_list.append(power_row[ci])
                    c_list.append(k)
            ph_list = r_list.copy()
            if is_pv:
                r_list.append(pv_row)
                c_list.append(k)
            tpl = templates[key] = (r_list, c_list, ph_list)
        rows.append(tpl[0])
        coefs.append(tpl[1])
        phys.append(tpl[2])
        # 1. eligibility
        if md == M_OFF:
            cd = OFF
        elif not p.available:
            cd = UNAVAILABLE
        elif tg == 0:
            cd = TARGET_ZERO
        elif tg is not None and 0 < tg < li:
            cd = TARGET_LOW
        elif mx < li:
            cd = MAX_BELOW_MIN
        else:
            cd = RUN
        code.append(cd)

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

    # 2. queue: priority, locked runners, longest waiting, runners before fresh plugs, order
    min_run = params.min_run_s
    prio = [p.priority for p in plugs]
    queue = sorted(
        range(n),
        key=lambda i: (
            -prio[i],
            not (running[i] and run_s[i] < min_run),
            -waiting[i],
            not running[i],
            run_s[i],
            i,
        ),
    )

    # PV condition, in queue order, on the PV row only
    pv_pending: set[int] = set()
    stopping: set[int] = set()
    left_w = max(snapshot.pv_surplus_w, 0.0)
    for i in queue:
        if code[i] != RUN or mode[i] not in (M_PV, M_MINPV):
            continue
        need_w = nph[i] * lo[i] * volt
        if mode[i] == M_MINPV:
            left_w -= need_w
            continue
        timer = plugs[i].pv_timer_s
        if running[i]:
            if left_w + params.pv_disable_threshold_w >= need_w:
                left_w -= need_w
            elif timer < params.pv_disable_delay_s:
                left_w -= need_w
                stopping.add(i)
                pv_pending.add(i)
            else:
                code[i] = PV_SHORT
                pv_pending.add(i)
        elif left_w >= need_w + params.pv_enable_threshold_w:
            left_w -= need_w
            if timer < params.pv_enable_delay_s:
                code[i] = PV_WAIT
                pv_pending.add(i)
        else:
            code[i] = PV_SHORT

    # 3. admission: first-fit of minimum currents on the physical and power rows
    cand = [i for i in queue if code[i] == RUN]
    mins = [[a * lo[i] for a in coefs[i]] for i in range(n)]
    adm_q, used_at_min = _first_fit(cand, phys, mins, b)
    adm = sorted(adm_q)
    admitted = [False] * n
    for i in adm:
        admitted[i] = True
    for i in cand:
        if not admitted[i]:
            code[i] = REJECTED

    # 4. max-min fair filling, priority level by priority level
    pv_min = 0.0
    for i in adm:
        if mode[i] != 0:
            pv_min += nph[i] * lo[i]
    b[pv_row] = max(b[pv_row], pv_min)
    used_at_min[pv_row] = pv_min  # the admitted pv plugs' minimum (integer sums: exact)
    used = used_at_min
    x = [0.0] * n
    bott = [-1] * n
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
        _fill(lv, lo=lo, hi=hi, rows=rows, coefs=coefs, resid=resid, own=own, x=x, bott=bott)
        if len(levels) > 1:
            inc = [0.0] * n_rows
            for i in lv:
                d = x[i] - lo[i]
                for row, a in zip(rows[i], coefs[i]):  # noqa: B905
                    inc[row] += a * d
            used = [u + v for u, v in zip(used, inc)]  # noqa: B905

    # 5. integer amps: floor, then one more amp by largest remainder, first-fit
    fl = [0.0] * n
    sub = [0.0] * n_rows
    for i in adm:
        fi = fl[i] = min(float(math.floor(x[i] + 1e-7)), hi[i])
        for row, a in zip(rows[i], coefs[i]):  # noqa: B905
            sub[row] += a * fi
    resid = [bb - s for bb, s in zip(b, sub)]  # noqa: B905
    up = [i for i in adm if x[i] - fl[i] > 1e-7 and fl[i] + 1 <= hi[i] + EPS]
    up.sort(key=lambda i: (fl[i] - x[i], i))
    setpoint = fl
    extra, used_extra = _first_fit(up, rows, coefs, resid)
    for i in extra:
        setpoint[i] += 1.0

    # defence in depth: a row over its limit pauses every plug on it (integer sums: exact)
    usage = [s + u for s, u in zip(sub, used_extra)]  # noqa: B905
    bad = [u > bb + 1e-6 * (1.0 + abs(bb)) for u, bb in zip(usage, b)]  # noqa: B905
    bad[pv_row] = False
    if True in bad:  # pragma: no cover - the pipeline above never gets here
        for i in range(n):
            if any(bad[row] for row in rows[i]):
                setpoint[i] = 0.0
                code[i] = REJECTED

    # reasons
    names = RowNames([circ.id for circ in circuits], power_rows, pv_row)
    kw = surplus_kw(snapshot.pv_surplus_w)
    reasons: dict[str, str] = {}
    for i, p in enumerate(plugs):
        c = code[i]
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
        if c == REJECTED:
            best = -math.inf
            for row, w in zip(phys[i], mins[i]):  # noqa: B905
                deficit = w - (b[row] - used_at_min[row])
                if deficit > best:
                    best, fail = deficit, row
        reasons[p.id] = paused_reason(
            p, c=c, params=params, names=names, kw=kw, waiting_s=waiting[i], fail_row=fail
        )
    return Allocation(
        setpoints={ids[i]: int(setpoint[i]) for i in range(n)},
        reasons=reasons,
        exact_a={ids[i]: (x[i] if admitted[i] else 0.0) for i in range(n)},
        pv_pending=frozenset(ids[i] for i in sorted(pv_pending)),
    )
