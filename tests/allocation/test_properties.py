"""Property tests: every rule of the allocator over random trees, rotations and loads."""

from __future__ import annotations

import math

from alloc_strategies import check_safe, snapshots, subtree, usage
from hypothesis import given
from hypothesis import strategies as st
from lp_reference import reference_allocation

from fuseguard.allocation import Plug, Snapshot, allocate
from fuseguard.model.status import ChargeMode

TOL = 1e-6


def _cap(p: object) -> int:
    plug = p  # typed loosely for brevity
    cap: int = plug.max_a  # type: ignore[attr-defined]
    if plug.target_a is not None:  # type: ignore[attr-defined]
        cap = min(cap, plug.target_a)  # type: ignore[attr-defined]
    return cap


@given(snapshots())
def test_safety_after_rounding(snap: Snapshot) -> None:
    alloc = allocate(snap)
    check_safe(snap, {k: float(v) for k, v in alloc.setpoints.items()})
    check_safe(snap, alloc.exact_a)


@given(snapshots())
def test_load_above_a_limit_pauses_every_plug_below_it(snap: Snapshot) -> None:
    alloc = allocate(snap)
    for c in snap.circuits:
        if any(c.non_ev_load_a[ph] > c.limit_a[ph] for ph in range(3)):
            below = subtree(snap, c.id)
            over = [ph for ph in range(3) if c.non_ev_load_a[ph] > c.limit_a[ph]]
            for p in snap.plugs:
                if p.circuit in below and any(ph.index in over for ph in p.phases):
                    assert alloc.setpoints[p.id] == 0


@given(snapshots())
def test_bounds_targets_and_modes(snap: Snapshot) -> None:
    alloc = allocate(snap)
    assert set(alloc.setpoints) == {p.id for p in snap.plugs} == set(alloc.reasons)
    for p in snap.plugs:
        sp = alloc.setpoints[p.id]
        assert isinstance(sp, int)
        assert sp == 0 or p.min_a <= sp <= _cap(p)
        if p.target_a is not None:
            assert sp <= p.target_a
        if p.mode is ChargeMode.OFF or not p.available or p.target_a == 0:
            assert sp == 0
        assert alloc.reasons[p.id]


@given(snapshots(max_plugs=8))
def test_exact_allocation_is_the_lexicographic_max_min_fair_one(snap: Snapshot) -> None:
    """Fairness, priority and work conservation at once: equal to the LP reference."""
    alloc = allocate(snap)
    running = [k for k, v in alloc.setpoints.items() if v > 0]
    ref = reference_allocation(snap, running)
    for k in running:
        assert abs(alloc.exact_a[k] - ref[k]) <= 1e-5, (k, alloc.exact_a[k], ref[k])


def _one_more_amp_breaks_a_limit(snap: Snapshot, sp: dict[str, float], p: Plug) -> bool:
    """One more amp for ``p`` breaks a phase or power limit on some circuit above it, or the PV
    surplus (for a PV plug)."""
    volt = snap.params.voltage_v
    bumped = dict(sp)
    bumped[p.id] += 1
    for c in snap.circuits:
        if p.circuit not in subtree(snap, c.id):
            continue
        cur, total = usage(snap, bumped, c.id)
        if any(c.non_ev_load_a[ph] + cur[ph] > c.limit_a[ph] + TOL for ph in range(3)):
            return True
        if c.power_limit_w is not None and (
            (c.non_ev_load_a.total + total) * volt > c.power_limit_w + 1e-3
        ):
            return True
    pv_total = sum(
        bumped[q.id] * len(q.phases)
        for q in snap.plugs
        if q.mode in (ChargeMode.PV, ChargeMode.MINPV)
    )
    return p.mode in (ChargeMode.PV, ChargeMode.MINPV) and pv_total * volt > max(
        snap.pv_surplus_w,
        sum(
            q.min_a * len(q.phases) * volt
            for q in snap.plugs
            if q.mode in (ChargeMode.PV, ChargeMode.MINPV) and sp[q.id] > 0
        ),
    )


@given(snapshots())
def test_rounding_never_goes_below_the_exact_floor(snap: Snapshot) -> None:
    alloc = allocate(snap)
    for p in snap.plugs:
        s = alloc.setpoints[p.id]
        if s > 0:
            assert math.floor(alloc.exact_a[p.id] + 1e-7) <= s <= _cap(p)


@given(snapshots())
def test_no_running_plug_below_its_cap_while_its_path_has_a_free_amp(snap: Snapshot) -> None:
    """Issue 18 item 5: the whole amps rounding frees are handed out again."""
    alloc = allocate(snap)
    sp = {k: float(v) for k, v in alloc.setpoints.items()}
    for p in snap.plugs:
        if 0 < alloc.setpoints[p.id] < _cap(p):
            assert _one_more_amp_breaks_a_limit(snap, sp, p), p.id


@given(snapshots(modes=False))
def test_paused_plugs_could_not_run_at_minimum(snap: Snapshot) -> None:
    """Pausing the fewest: a plug paused for lack of current would break a limit at its minimum."""
    alloc = allocate(snap)
    mins = {p.id: float(p.min_a if alloc.setpoints[p.id] > 0 else 0) for p in snap.plugs}
    volt = snap.params.voltage_v
    for p in snap.plugs:
        if not alloc.reasons[p.id].startswith("paused: less than"):
            continue
        trial = dict(mins)
        trial[p.id] = float(p.min_a)
        broken = False
        for c in snap.circuits:
            if p.circuit not in subtree(snap, c.id):
                continue
            cur, total = usage(snap, trial, c.id)
            broken |= any(c.non_ev_load_a[ph] + cur[ph] > c.limit_a[ph] + TOL for ph in range(3))
            if c.power_limit_w is not None:
                broken |= (c.non_ev_load_a.total + total) * volt > c.power_limit_w + 1e-3
        assert broken, p.id


@given(snapshots(modes=False))
def test_equal_plugs_get_equal_current(snap: Snapshot) -> None:
    alloc = allocate(snap)
    groups: dict[tuple[object, ...], list[int]] = {}
    for p in snap.plugs:
        if alloc.setpoints[p.id] > 0:
            key = (p.circuit, p.phases, p.priority, p.min_a, _cap(p))
            groups.setdefault(key, []).append(alloc.setpoints[p.id])
    for values in groups.values():
        assert max(values) - min(values) <= 1


@given(snapshots(modes=False))
def test_higher_priority_is_never_below_a_lower_one_on_the_same_circuit(snap: Snapshot) -> None:
    alloc = allocate(snap)
    running = [p for p in snap.plugs if alloc.setpoints[p.id] > 0]
    for a in running:
        for b in running:
            same = a.circuit == b.circuit and a.phases == b.phases and a.min_a == b.min_a
            if same and a.priority > b.priority and alloc.exact_a[b.id] > b.min_a + TOL:
                assert alloc.exact_a[a.id] >= min(alloc.exact_a[b.id], _cap(a)) - TOL


@given(snapshots(), st.randoms(use_true_random=False))
def test_deterministic(snap: Snapshot, rnd: object) -> None:
    a1 = allocate(snap)
    a2 = allocate(snap)
    assert a1 == a2
