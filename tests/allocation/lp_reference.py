"""Reference: the lexicographic max-min fair allocation as a sequence of LPs (scipy HiGHS).

Slow and exact; used by the benchmark and the tests to check :func:`allocate` from outside. Needs
scipy (the ``sim``/``dev`` extra). Same rows, same running set, same priority levels as the engine.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from fuseguard.allocation.engine import _Prepared
from fuseguard.allocation.types import Snapshot


def reference_allocation(snapshot: Snapshot, running: Collection[str]) -> dict[str, float]:
    """Exact currents (before rounding) for the plugs in ``running``; every other plug gets 0.

    Priority levels are filled from the highest down (lower levels held at their minimum); inside a
    level, repeatedly maximise the common level ``t`` of the unfrozen plugs, then freeze the plugs
    whose ``x >= t`` constraint has a non-zero dual (they are blocked) and those at their cap.
    """
    from scipy.optimize import linprog
    from scipy.sparse import csr_matrix, hstack, vstack

    prep = _Prepared(snapshot)
    n = len(prep.ids)
    run = np.array([pid in running for pid in prep.ids], dtype=np.bool_)
    idx = np.flatnonzero(run)
    out = dict.fromkeys(prep.ids, 0.0)
    if idx.size == 0:
        return out
    b = prep.b.copy()
    pv_min = float(np.sum((prep.nph * prep.lo)[run & (prep.mode != 0)]))
    b[prep.pv_row] = max(b[prep.pv_row], pv_min)
    col = np.full(n, -1, dtype=np.int64)
    col[idx] = np.arange(idx.size)
    sel = run[prep.e_plug]
    rows = prep.e_row[sel]
    used_rows = np.unique(rows)
    row_pos = np.full(b.size, -1, dtype=np.int64)
    row_pos[used_rows] = np.arange(used_rows.size)
    a_mat = csr_matrix(
        (prep.e_coef[sel], (row_pos[rows], col[prep.e_plug[sel]])),
        shape=(used_rows.size, idx.size),
    )
    b_used = b[used_rows]
    lo = prep.lo[idx]
    hi = prep.hi[idx]
    prio = prep.prio[idx]
    m = idx.size
    x = lo.copy()
    fixed_val = np.full(m, np.nan)  # frozen values
    for level in sorted(set(prio.tolist()), reverse=True):
        higher_or_frozen = ~np.isnan(fixed_val)
        unfrozen = (prio == level) & ~higher_or_frozen
        fixed_val[unfrozen & (hi <= lo + 1e-12)] = lo[unfrozen & (hi <= lo + 1e-12)]
        unfrozen &= np.isnan(fixed_val)
        while unfrozen.any():
            # variables: x (m) and t; maximise t
            lb = np.where(np.isnan(fixed_val), lo, fixed_val)
            ub = np.where(np.isnan(fixed_val), hi, fixed_val)
            lower_level = prio < level
            ub = np.where(lower_level & np.isnan(fixed_val), lo, ub)
            u_idx = np.flatnonzero(unfrozen)
            t_cap = float(hi[u_idx].min())
            g_mat = csr_matrix(
                (-np.ones(u_idx.size), (np.arange(u_idx.size), u_idx)), shape=(u_idx.size, m)
            )
            a_ub = vstack(
                [
                    hstack([a_mat, csr_matrix((a_mat.shape[0], 1))]),
                    hstack([g_mat, csr_matrix(np.ones((u_idx.size, 1)))]),
                ]
            ).tocsr()
            b_ub = np.concatenate((b_used, np.zeros(u_idx.size)))
            c = np.zeros(m + 1)
            c[-1] = -1.0
            bounds = [*zip(lb.tolist(), ub.tolist(), strict=True), (None, t_cap)]
            res = linprog(c, A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs")
            if res.status != 0:
                msg = f"reference LP failed: {res.message}"
                raise RuntimeError(msg)
            t_star = float(res.x[-1])
            duals = np.asarray(res.ineqlin.marginals)[a_mat.shape[0] :]
            blocked = u_idx[np.abs(duals) > 1e-9]
            at_cap = u_idx[hi[u_idx] <= t_star + 1e-9]
            freeze = np.union1d(blocked, at_cap)
            if freeze.size == 0:
                freeze = u_idx
            fixed_val[freeze] = np.clip(t_star, lo[freeze], hi[freeze])
            unfrozen[freeze] = False
        x = np.where(np.isnan(fixed_val), lo, fixed_val)
    for j, i in enumerate(idx.tolist()):
        out[prep.ids[i]] = float(x[j])
    return out
