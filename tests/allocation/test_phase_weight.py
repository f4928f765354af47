"""The one-phase weight of the max-min filling (``single_phase_weight``, ``allocation/weights.py``).

With weight ``w`` a plug on one grid phase is filled at ``w`` times the common level of a plug on
three (two phases: ``sqrt(w)``); minimums, caps, admission, rounding and every limit stay the
plain allocator's. Checked here: the worked cases, every limit on every phase after rounding
(hypothesis), the exact values against the weighted LP reference, both paths agreeing, the
snapshot form, and ``w = 1`` being the plain allocator bit for bit.
"""

from __future__ import annotations

import dataclasses
import math
import random

import pytest
from alloc_strategies import check_safe, random_site, snapshots
from hypothesis import given
from hypothesis import strategies as st
from lp_reference import reference_allocation

from fuseguard.allocation import AllocationParams, Circuit, Plug, Snapshot, allocate
from fuseguard.allocation.small import allocate_small
from fuseguard.allocation.snapshot import snapshot_from_json, snapshot_to_json
from fuseguard.allocation.vector import allocate_numpy
from fuseguard.allocation.weights import phase_weights
from fuseguard.model.phases import ALL_PHASES, Phase, Phases

TOL = 1e-6
WEIGHTS = st.sampled_from((1.25, 1.5, 2.0, 3.0))


def _weighted(snap: Snapshot, w: float) -> Snapshot:
    return dataclasses.replace(snap, params=dataclasses.replace(snap.params, single_phase_weight=w))


def _site(headroom_l2: float, *plugs: Plug, w: float) -> Snapshot:
    main = Circuit("main", None, Phases(100.0, headroom_l2, 100.0))
    return Snapshot((main,), plugs, params=AllocationParams(single_phase_weight=w))


def test_weights_by_phase_count() -> None:
    assert phase_weights([3.0, 3.0], 2.0) is None  # nothing to weight
    assert phase_weights([1.0, 3.0], 1.0) is None  # plain allocator
    w = phase_weights([1.0, 2.0, 3.0], 2.0)
    assert w is not None
    assert w[0] == 2.0
    assert w[1] == pytest.approx(math.sqrt(2.0))
    assert w[2] == 1.0


@pytest.mark.parametrize("alloc", [allocate_small, allocate_numpy])
def test_a_one_phase_plug_gets_w_times_the_current_on_a_shared_bottleneck(alloc: object) -> None:
    three = Plug("three", "main", ALL_PHASES, max_a=32)
    one = Plug("one", "main", (Phase.L2,), max_a=32)
    out = alloc(_site(30.0, three, one, w=2.0))  # type: ignore[operator]
    assert out.exact_a["three"] == pytest.approx(10.0)
    assert out.exact_a["one"] == pytest.approx(20.0)
    assert out.setpoints == {"three": 10, "one": 20}
    plain = alloc(_site(30.0, three, one, w=1.0))  # type: ignore[operator]
    assert plain.setpoints == {"three": 15, "one": 15}


@pytest.mark.parametrize("alloc", [allocate_small, allocate_numpy])
def test_minimum_and_cap_still_bound_the_weighted_split(alloc: object) -> None:
    # the three-phase plug keeps its minimum; the one-phase plug stops at its cap
    three = Plug("three", "main", ALL_PHASES, max_a=32)
    one = Plug("one", "main", (Phase.L2,), max_a=16)
    out = alloc(_site(20.0, three, one, w=3.0))  # type: ignore[operator]
    assert out.setpoints == {"three": 6, "one": 14}
    out = alloc(_site(40.0, three, one, w=3.0))  # type: ignore[operator]
    assert out.setpoints == {"three": 24, "one": 16}


@given(snapshots(), WEIGHTS)
def test_every_limit_holds_after_rounding(snap: Snapshot, w: float) -> None:
    snap = _weighted(snap, w)
    alloc = allocate(snap)
    for values in ({k: float(v) for k, v in alloc.setpoints.items()}, alloc.exact_a):
        check_safe(snap, values, TOL)
    for p in snap.plugs:
        sp = alloc.setpoints[p.id]
        cap = p.max_a if p.target_a is None else min(p.max_a, p.target_a)
        assert sp == 0 or p.min_a <= sp <= cap


@given(snapshots(max_plugs=8), WEIGHTS)
def test_exact_values_are_the_weighted_lexicographic_max_min_ones(snap: Snapshot, w: float) -> None:
    snap = _weighted(snap, w)
    alloc = allocate(snap)
    running = [k for k, v in alloc.setpoints.items() if v > 0]
    nph = [float(len(set(p.phases))) for p in snap.plugs]
    weights = phase_weights(nph, w) or [1.0] * len(nph)
    ref = reference_allocation(snap, running, weights)
    for k in running:
        assert abs(alloc.exact_a[k] - ref[k]) <= 1e-5, (k, alloc.exact_a[k], ref[k])


@pytest.mark.parametrize("seed", range(150))
def test_both_paths_agree_with_weights(seed: int) -> None:
    """Setpoints and reasons identical; exact values to 1e-9 (the scaled filling sums
    non-integers, whose order differs between the paths: a last-bit difference can show)."""
    rng = random.Random(seed)
    snap = _weighted(random_site(rng, rng.randint(1, 30)), rng.choice((1.25, 1.5, 2.0, 3.0)))
    py, vec = allocate_small(snap), allocate_numpy(snap)
    assert py.setpoints == vec.setpoints
    assert py.reasons == vec.reasons
    assert py.pv_pending == vec.pv_pending
    for k, v in py.exact_a.items():
        assert vec.exact_a[k] == pytest.approx(v, rel=1e-9, abs=1e-9)


@given(snapshots())
def test_weight_one_is_the_plain_allocator(snap: Snapshot) -> None:
    assert allocate(_weighted(snap, 1.0)) == allocate(snap)


def test_the_snapshot_form_carries_the_weight() -> None:
    snap = _site(30.0, Plug("one", "main", (Phase.L2,), max_a=32), w=1.5)
    back = snapshot_from_json(snapshot_to_json(snap))
    assert back.params.single_phase_weight == 1.5
    assert snapshot_from_json(snapshot_to_json(_weighted(snap, 1.0))).params == AllocationParams()


@pytest.mark.parametrize("alloc", [allocate_small, allocate_numpy])
def test_turns_judge_a_one_phase_plugs_share_over_its_weight(alloc: object) -> None:
    """Only one of two waiting plugs fits its minimum: the lower energy share goes first, and a
    one-phase plug's share counts over its weight (the filling gives it that much more)."""
    kw = {"max_a": 32, "paused_s": 3600.0}
    three = Plug("three", "main", ALL_PHASES, share_a=6.0, **kw)  # type: ignore[arg-type]
    one = Plug("one", "main", (Phase.L2,), share_a=10.0, **kw)  # type: ignore[arg-type]
    plain = alloc(_site(8.0, three, one, w=1.0))  # type: ignore[operator]
    assert plain.setpoints == {"three": 8, "one": 0}
    weighted = alloc(_site(8.0, three, one, w=2.0))  # type: ignore[operator]
    assert weighted.setpoints == {"three": 0, "one": 8}
