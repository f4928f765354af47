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

Entries = list[tuple[int, float]]  # (row, coefficient) of one plug, in the NumPy entry order


def _first_fit(
    order: list[int], entries: list[Entries], amount: list[list[float]], resid: list[float]
) -> set[int]:
    """Sequential first-fit: admit an item when its amounts fit what the earlier ones left."""
    cap = [r + EPS * (1.0 + abs(r)) for r in resid]
    used = [0.0] * len(resid)
    admitted: set[int] = set()
    for i in order:
        ent = entries[i]
        amt = amount[i]
        for k, (row, _) in enumerate(ent):
            if used[row] + amt[k] > cap[row]:
                break
        else:
            for k, (row, _) in enumerate(ent):
                used[row] += amt[k]
            admitted.add(i)
    return admitted


def _fill(
    level: list[int],
    *,
    lo: list[float],
    hi: list[float],
    entries: list[Entries],
    resid: list[float],
    x: list[float],
    bott: list[int],
) -> None:
    """Progressive filling of the plugs in ``level`` (ascending); writes ``x`` and ``bott``.

    Mirrors :func:`fuseguard.allocation.engine.progressive_fill` round by round. A row's load at
    a level ``v`` is ``sum a * clamp(v, lo, hi)``: integers, exact in any order, so each row keeps
    its load at the lowest and the highest breakpoint (every plug at ``lo`` / at ``hi``) and is
    evaluated in between only when it saturates there. Sums of non-integers (``resid`` updates)
    are accumulated in plug order from 0.0, like ``np.bincount``.
    """
    s1: dict[int, float] = {}
    for i in level:
        li = lo[i]
        for row, a in entries[i]:
            s1[row] = s1.get(row, 0.0) + a * li
    active = [i for i in level if hi[i] > lo[i] + EPS]
    s2: dict[int, float] = {}
    for i in active:
        li = lo[i]
        for row, a in entries[i]:
            s2[row] = s2.get(row, 0.0) + a * li
    resid = resid.copy()
    for row, v in s1.items():
        resid[row] = (resid[row] - v) + s2.get(row, 0.0)
    for i in level:
        x[i] = lo[i]
        bott[i] = -1
    if not active:
        return
    inf = math.inf
    on_row: dict[int, list[tuple[float, float, float, int]]] = {}
    bottom: dict[int, float] = {}
    top: dict[int, float] = {}
    count: dict[int, int] = {}
    for i in active:
        li, hi_i = lo[i], hi[i]
        for row, a in entries[i]:
            lst = on_row.get(row)
            if lst is None:
                on_row[row] = [(a, li, hi_i, i)]
                bottom[row] = a * li
                top[row] = a * hi_i
                count[row] = 1
            else:
                lst.append((a, li, hi_i, i))
                bottom[row] += a * li
                top[row] += a * hi_i
                count[row] += 1
    # A row that fits with every plug at its cap never saturates in this level (freezing a plug
    # lowers its load by a * hi >= a * x): its level stays +inf, which changes no plug's minimum,
    # and it can only be the "first minimal row" of plugs that end at their cap. Drop it.
    for row in [row for row in on_row if top[row] <= resid[row]]:
        del on_row[row]
    rows_of = {i: [(row, a) for row, a in entries[i] if row in on_row] for i in active}
    alive = dict.fromkeys(active, True)
    while active:
        bps = sorted({lo[i] for i in active} | {hi[i] for i in active})
        last = len(bps) - 1
        t_row: dict[int, float] = {}
        for row, lst in on_row.items():
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
        m: dict[int, float] = {}
        row_min = dict.fromkeys(on_row, inf)
        for i in active:
            mi = inf
            for row, _ in rows_of[i]:
                t = t_row[row]
                mi = min(mi, t)
            m[i] = mi
            for row, _ in rows_of[i]:
                row_min[row] = min(row_min[row], mi)
        frozen: list[int] = []
        for i in active:
            mi = m[i]
            first = -1
            for row, _ in rows_of[i]:
                rm = row_min[row]
                if t_row[row] <= rm + EPS * (1.0 + abs(rm)):
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
            xi = x[i]
            for row, a in rows_of[i]:
                sub[row] = sub.get(row, 0.0) + a * xi
                bottom[row] -= a * lo[i]  # integers: exact
                top[row] -= a * hi[i]
                count[row] -= 1
                if not count[row]:
                    del on_row[row]
        for row, v in sub.items():
            resid[row] -= v
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
    entries: list[Entries] = []
    code: list[int] = []
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
        chain = chains[index[p.circuit]]
        ent: Entries = [(ci * 3 + ph, 1.0) for ci in chain for ph in (0, 1, 2) if mask[ph]]
        ent.extend((power_row[ci], k) for ci in chain if power_row[ci] >= 0)
        if md in (M_PV, M_MINPV):
            ent.append((pv_row, k))
        entries.append(ent)
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
    queue = sorted(
        range(n),
        key=lambda i: (
            -plugs[i].priority,
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
    phys = [[(row, a) for row, a in ent if row != pv_row] for ent in entries]
    cand = [i for i in queue if code[i] == RUN]
    mins = [[a * lo[i] for _, a in ent] for i, ent in enumerate(phys)]
    adm_set = _first_fit(cand, phys, mins, b)
    admitted = [i in adm_set for i in range(n)]
    for i in range(n):
        if code[i] == RUN and not admitted[i]:
            code[i] = REJECTED
    adm = [i for i in range(n) if admitted[i]]

    # 4. max-min fair filling, priority level by priority level
    pv_min = 0.0
    for i in adm:
        if mode[i] != 0:
            pv_min += nph[i] * lo[i]
    b[pv_row] = max(b[pv_row], pv_min)
    used = [0.0] * n_rows
    for i in adm:
        li = lo[i]
        for row, a in entries[i]:
            used[row] += a * li
    x = [0.0] * n
    bott = [-1] * n
    prio = [p.priority for p in plugs]
    for level_prio in sorted({prio[i] for i in adm}, reverse=True):
        lv = [i for i in adm if prio[i] == level_prio]
        own = [0.0] * n_rows
        for i in lv:
            li = lo[i]
            for row, a in entries[i]:
                own[row] += a * li
        resid = [(bb - u) + o for bb, u, o in zip(b, used, own, strict=True)]
        _fill(lv, lo=lo, hi=hi, entries=entries, resid=resid, x=x, bott=bott)
        inc = [0.0] * n_rows
        for i in lv:
            d = x[i] - lo[i]
            for row, a in entries[i]:
                inc[row] += a * d
        used = [u + v for u, v in zip(used, inc, strict=True)]

    # 5. integer amps: floor, then one more amp by largest remainder, first-fit
    fl = [0.0] * n
    for i in adm:
        fl[i] = min(float(math.floor(x[i] + 1e-7)), hi[i])
    sub = [0.0] * n_rows
    for i in adm:
        fi = fl[i]
        for row, a in entries[i]:
            sub[row] += a * fi
    resid = [bb - s for bb, s in zip(b, sub, strict=True)]
    frac = [x[i] - fl[i] for i in range(n)]
    up = [i for i in adm if frac[i] > 1e-7 and fl[i] + 1 <= hi[i] + EPS]
    up.sort(key=lambda i: (-frac[i], i))
    coefs = [[a for _, a in ent] for ent in entries]
    extra = _first_fit(up, entries, coefs, resid)
    setpoint = [fl[i] + (1.0 if i in extra else 0.0) for i in range(n)]

    # defence in depth: a row over its limit pauses every plug on it
    usage = [0.0] * n_rows
    for i in range(n):
        s = setpoint[i]
        for row, a in entries[i]:
            usage[row] += a * s
    bad = [u > bb + 1e-6 * (1.0 + abs(bb)) for u, bb in zip(usage, b, strict=True)]
    bad[pv_row] = False
    if any(bad):  # pragma: no cover - the pipeline above never gets here
        for i in range(n):
            if any(bad[row] for row, _ in entries[i]):
                setpoint[i] = 0.0
                code[i] = REJECTED

    # reasons
    names = RowNames([circ.id for circ in circuits], power_rows, pv_row)
    kw = surplus_kw(snapshot.pv_surplus_w)
    reasons: dict[str, str] = {}
    resid_after: list[float] | None = None
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
            if resid_after is None:
                sub = [0.0] * n_rows
                for j in adm:
                    lj = lo[j]
                    for row, a in entries[j]:
                        sub[row] += a * lj
                resid_after = [bb - s for bb, s in zip(b, sub, strict=True)]
            best = -math.inf
            for row, a in phys[i]:
                deficit = a * lo[i] - resid_after[row]
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
