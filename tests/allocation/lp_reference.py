"""Reference: the lexicographic max-min fair allocation as a sequence of LPs (scipy HiGHS).

Slow and exact; used by the tests and ``bench/allocation.py`` to check :func:`allocate` from
outside (test code, not part of the package). Needs scipy (the ``dev`` extra). Same rows, same
running set, same priority levels as the allocator.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fuseguard.allocation.types import Snapshot
from fuseguard.allocation.vector_site import SiteArrays

FloatArr = NDArray[np.float64]
IntArr = NDArray[np.int64]


def _max_common_level(
    a_mat: Any, b_used: FloatArr, *, lb: FloatArr, ub: FloatArr, u_idx: IntArr, t_cap: float
) -> tuple[float, FloatArr]:
    """Maximise ``t`` subject to ``A x <= b``, ``lb <= x <= ub`` and ``x_i >= t`` for the
    unfrozen plugs ``u_idx``; returns ``t*`` and the duals of the ``x_i >= t`` rows."""
    from scipy.optimize import linprog
    from scipy.sparse import csr_matrix, hstack, vstack

    m = lb.size
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
    return float(res.x[-1]), np.asarray(res.ineqlin.marginals)[a_mat.shape[0] :]


def reference_allocation(
    snapshot: Snapshot, running: Collection[str], weights: Sequence[float] | None = None
) -> dict[str, float]:
    """Exact currents (before rounding) for the plugs in ``running``; every other plug gets 0.

    Priority levels are filled from the highest down (lower levels held at their minimum); inside a
    level, repeatedly maximise the common level ``t`` of the unfrozen plugs, then freeze the plugs
    whose ``x >= t`` constraint has a non-zero dual (they are blocked) and those at their cap.
    ``weights`` (one per plug of the snapshot): ``x_i >= weight_i * t`` instead, solved on
    ``x / weight`` (the allocator's one-phase weight, :mod:`fuseguard.allocation.weights`).
    """
    from scipy.sparse import csr_matrix

    prep = SiteArrays(snapshot)
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
    lo, hi, prio = prep.lo[idx], prep.hi[idx], prep.prio[idx]
    w = np.ones(idx.size) if weights is None else np.asarray(weights, dtype=np.float64)[idx]
    a_mat = csr_matrix(a_mat.multiply(w[np.newaxis, :]))
    lo, hi = lo / w, hi / w
    x = lo.copy()
    fixed_val = np.full(idx.size, np.nan)  # frozen values
    for level in sorted(set(prio.tolist()), reverse=True):
        unfrozen = (prio == level) & np.isnan(fixed_val)
        fixed_val[unfrozen & (hi <= lo + 1e-12)] = lo[unfrozen & (hi <= lo + 1e-12)]
        unfrozen &= np.isnan(fixed_val)
        while unfrozen.any():
            lb = np.where(np.isnan(fixed_val), lo, fixed_val)
            ub = np.where(np.isnan(fixed_val), hi, fixed_val)
            ub = np.where((prio < level) & np.isnan(fixed_val), lo, ub)
            u_idx = np.flatnonzero(unfrozen)
            t_star, duals = _max_common_level(
                a_mat, b[used_rows], lb=lb, ub=ub, u_idx=u_idx, t_cap=float(hi[u_idx].min())
            )
            blocked = u_idx[np.abs(duals) > 1e-9]
            at_cap = u_idx[hi[u_idx] <= t_star + 1e-9]
            freeze = np.union1d(blocked, at_cap)
            if freeze.size == 0:
                freeze = u_idx
            fixed_val[freeze] = np.clip(t_star, lo[freeze], hi[freeze])
            unfrozen[freeze] = False
        x = np.where(np.isnan(fixed_val), lo, fixed_val)
    x = x * w
    for j, i in enumerate(idx.tolist()):
        out[prep.ids[i]] = float(x[j])
    return out
