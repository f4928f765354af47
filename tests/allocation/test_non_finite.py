"""Issue 17 item 6: the allocator refuses non-finite limits and loads.

Property: replacing any limit, load, power limit or the PV surplus of a valid snapshot by NaN or
an infinity never allocates more to any plug than the finite snapshot does (here: every plug 0 A,
with a reason naming the value). Also through the NumPy path, which large sites take.
"""

from __future__ import annotations

import dataclasses
import math

from alloc_strategies import snapshots
from hypothesis import given, settings
from hypothesis import strategies as st

from fuseguard.allocation import Circuit, Plug, Snapshot, allocate
from fuseguard.allocation.engine import SMALL_SITE_PLUGS
from fuseguard.model.phases import Phase, Phases

NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])
FIELDS = st.sampled_from(["limit_a", "non_ev_load_a", "power_limit_w", "pv_surplus_w"])


def _poison(snap: Snapshot, index: int, field: str, phase: int, value: float) -> Snapshot:
    if field == "pv_surplus_w":
        return dataclasses.replace(snap, pv_surplus_w=value)
    circuits = list(snap.circuits)
    c = circuits[index % len(circuits)]
    if field == "power_limit_w":
        circuits[index % len(circuits)] = dataclasses.replace(c, power_limit_w=value)
    else:
        per_phase = list(getattr(c, field))
        per_phase[phase] = value
        circuits[index % len(circuits)] = dataclasses.replace(c, **{field: Phases.of(per_phase)})
    return dataclasses.replace(snap, circuits=tuple(circuits))


@settings(max_examples=300, deadline=None)
@given(
    snapshots(),
    st.integers(0, 10),
    FIELDS,
    st.integers(0, 2),
    NON_FINITE,
)
def test_non_finite_input_never_allocates_more(
    snap: Snapshot, index: int, field: str, phase: int, value: float
) -> None:
    finite = allocate(snap)
    poisoned = allocate(_poison(snap, index, field, phase, value))
    for pid, amps in poisoned.setpoints.items():
        assert amps <= finite.setpoints[pid]
        assert amps == 0
        assert "not a finite number" in poisoned.reasons[pid]


def test_nan_fuse_phase_no_longer_lifts_that_phase() -> None:
    """The probe of the issue: main_fuse_a = [25, nan, 25] gave 45 A on a 25 A phase."""
    for n_plugs in (3, SMALL_SITE_PLUGS + 1):  # pure-Python and NumPy path
        plugs = tuple(
            Plug(id=f"p{i}", circuit="main", phases=(Phase.L2,), max_a=32) for i in range(n_plugs)
        )
        snap = Snapshot(
            circuits=(Circuit("main", None, Phases(25.0, math.nan, 25.0)),), plugs=plugs
        )
        answer = allocate(snap)
        assert sum(answer.setpoints.values()) == 0
        assert "limit of circuit 'main'" in answer.reasons["p0"]
