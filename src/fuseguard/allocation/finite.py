"""Refusal of non-finite inputs (issue 17): a NaN limit would remove a limit, a NaN load hide one.

Comparisons with NaN are false, so a NaN ``limit_a`` or ``non_ev_load_a`` would make a constraint
row vanish and an infinite limit would make it unbounded. The allocator therefore checks every
limit and load before it allocates; one non-finite value anywhere and every plug gets 0 A, with a
reason naming the value. Nothing non-finite can allocate more than the finite case.
"""

from __future__ import annotations

import math

from fuseguard.allocation.types import Allocation, Snapshot


def non_finite_inputs(snapshot: Snapshot) -> list[str]:
    """The limits and loads of ``snapshot`` that are NaN or infinite, by name (empty: none)."""
    bad: list[str] = []
    for c in snapshot.circuits:
        if not c.limit_a.is_finite():
            bad.append(f"limit of circuit {c.id!r}")
        if not c.non_ev_load_a.is_finite():
            bad.append(f"non-EV load of circuit {c.id!r}")
        if c.power_limit_w is not None and not math.isfinite(c.power_limit_w):
            bad.append(f"power limit of circuit {c.id!r}")
    if not math.isfinite(snapshot.pv_surplus_w):
        bad.append("PV surplus")
    if not math.isfinite(snapshot.params.voltage_v) or snapshot.params.voltage_v <= 0:
        bad.append("voltage")
    return bad


def refused(snapshot: Snapshot, problems: list[str]) -> Allocation:
    """0 A for every plug, each reason naming what was not a finite number."""
    reason = "refused: not a finite number: " + ", ".join(problems)
    return Allocation(
        setpoints={p.id: 0 for p in snapshot.plugs},
        reasons={p.id: reason for p in snapshot.plugs},
        exact_a={p.id: 0.0 for p in snapshot.plugs},
    )


__all__ = ["non_finite_inputs", "refused"]
