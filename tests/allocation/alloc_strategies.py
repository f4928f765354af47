"""Random sites for the property tests: trees of 1-4 levels, rotations, 1/2/3-phase cars."""

from __future__ import annotations

import math

from hypothesis import strategies as st

from fuseguard.allocation import Circuit, Plug, Snapshot
from fuseguard.allocation.types import AllocationParams
from fuseguard.model.phases import Phases, Rotation
from fuseguard.model.status import ChargeMode

amps = st.integers(min_value=0, max_value=64).map(float)
loads = st.one_of(st.just(0.0), st.floats(min_value=0, max_value=70, allow_nan=False))


@st.composite
def snapshots(draw: st.DrawFn, *, max_plugs: int = 10, modes: bool = True) -> Snapshot:
    n_circ = draw(st.integers(1, 6))
    circuits = [Circuit("main", None, Phases.of(draw(amps) for _ in range(3)))]
    depth = {"main": 1}
    for i in range(1, n_circ):
        parents = [c.id for c in circuits if depth[c.id] < 4]
        parent = draw(st.sampled_from(parents))
        cid = f"c{i}"
        depth[cid] = depth[parent] + 1
        circuits.append(
            Circuit(
                cid,
                parent,
                Phases.of(draw(amps) for _ in range(3)),
                power_limit_w=draw(st.one_of(st.none(), st.floats(0, 30000))),
            )
        )
    # non-EV load flowing through a circuit includes its sub-circuits' load
    own = {c.id: Phases.of(draw(loads) for _ in range(3)) for c in circuits}
    total = dict(own)
    for c in reversed(circuits):
        if c.parent is not None:
            total[c.parent] = total[c.parent] + total[c.id]
    circuits = [Circuit(c.id, c.parent, c.limit_a, total[c.id], c.power_limit_w) for c in circuits]
    mode_st = (
        st.sampled_from([ChargeMode.FAST] * 4 + [ChargeMode.PV, ChargeMode.MINPV, ChargeMode.OFF])
        if modes
        else st.just(ChargeMode.FAST)
    )
    n_plugs = draw(st.integers(0, max_plugs))
    plugs = []
    for i in range(n_plugs):
        rot = draw(st.sampled_from(list(Rotation)))
        min_a = draw(st.sampled_from([6, 6, 6, 1, 8]))
        running = draw(st.booleans())
        plugs.append(
            Plug(
                id=f"p{i}",
                circuit=draw(st.sampled_from([c.id for c in circuits])),
                phases=rot.grid_phases(draw(st.integers(1, 3))),
                max_a=draw(st.integers(4, 32)),
                min_a=min_a,
                priority=draw(st.integers(0, 2)),
                mode=draw(mode_st),
                target_a=draw(st.one_of(st.none(), st.none(), st.integers(0, 32))),
                available=draw(st.booleans().map(lambda b: b or True)) if modes else True,
                setpoint_a=min_a if running else 0,
                running_s=draw(st.floats(0, 2000)) if running else None,
                paused_s=None if running else draw(st.one_of(st.none(), st.floats(0, 2000))),
                pv_timer_s=draw(st.floats(0, 400)),
            )
        )
    surplus = draw(st.floats(0, 20000))
    return Snapshot(tuple(circuits), tuple(plugs), pv_surplus_w=surplus, params=AllocationParams())


def subtree(snap: Snapshot, root: str) -> set[str]:
    """Ids of ``root`` and every circuit below it."""
    parent = {c.id: c.parent for c in snap.circuits}
    out = set()
    for cid in parent:
        node: str | None = cid
        while node is not None:
            if node == root:
                out.add(cid)
                break
            node = parent[node]
    return out


def usage(snap: Snapshot, values: dict[str, float], root: str) -> tuple[Phases, float]:
    """Per-phase current and phase-amp total of the plugs below ``root``."""
    below = subtree(snap, root)
    cur = [0.0, 0.0, 0.0]
    for p in snap.plugs:
        if p.circuit in below:
            for ph in p.phases:
                cur[ph.index] += values[p.id]
    return Phases.of(cur), math.fsum(cur)
