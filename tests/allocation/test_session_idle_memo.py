"""The empty-site shortcut of the allocation session (issue 18 item 2, round 8): while every plug
is off or unavailable, a step with the same plugs reuses the last such answer whatever the
limits, non-EV loads and PV surplus do. Every answer the session gives must be the pure
allocator's answer for the input it reports, on both paths (small and NumPy), and a
non-finite limit or load is never hidden by the shortcut."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from alloc_strategies import check_as_fresh
from hypothesis import given, settings
from hypothesis import strategies as st

from fuseguard.allocation import AllocationSession, Snapshot
from fuseguard.allocation.engine import SMALL_SITE_PLUGS
from fuseguard.allocation.types import Circuit, Plug
from fuseguard.model.phases import Phase, Phases
from fuseguard.model.status import ChargeMode

PHASES = ((Phase.L1, Phase.L2, Phase.L3), (Phase.L1,), (Phase.L2,), (Phase.L3, Phase.L1))


def _site(n_plugs: int, *, available: int | None = None, off: int | None = None) -> Snapshot:
    """Two circuits (main with a power limit, a sub-circuit) and ``n_plugs`` idle plugs; plug
    ``available`` (if given) has a car ready, plug ``off`` is in mode off with a car ready."""
    circuits = (
        Circuit("main", None, Phases(63.0, 63.0, 63.0), Phases(10.0, 8.0, 9.0), 40_000.0),
        Circuit("sub", "main", Phases(32.0, 32.0, 32.0), Phases(2.0, 3.0, 1.0)),
    )
    plugs = tuple(
        Plug(
            id=f"p{i}",
            circuit="sub" if i % 2 else "main",
            phases=PHASES[i % len(PHASES)],
            max_a=16 + i % 3 * 8,
            mode=ChargeMode.OFF if i == off else (ChargeMode.PV if i % 5 == 4 else ChargeMode.FAST),
            available=i in (available, off),  # the plug off has a car ready
        )
        for i in range(n_plugs)
    )
    return Snapshot(circuits=circuits, plugs=plugs, pv_surplus_w=1500.0)


def _moved(snap: Snapshot, main_a: float, sub_a: float, limit_a: float, pv_w: float) -> Snapshot:
    main, sub = snap.circuits
    return replace(
        snap,
        circuits=(
            replace(
                main,
                non_ev_load_a=Phases(main_a, 8.0, 9.0),
                limit_a=Phases(limit_a, limit_a, limit_a),
            ),
            replace(sub, non_ev_load_a=Phases(sub_a, 3.0, 1.0)),
        ),
        pv_surplus_w=pv_w,
    )


def _check(session: AllocationSession, snap: Snapshot, now_s: float) -> None:
    check_as_fresh(session, session.step(snap, now_s))


loads = st.floats(-20.0, 90.0, allow_nan=False)
steps = st.lists(
    st.tuples(
        loads,
        loads,
        st.sampled_from([0.0, 20.0, 63.0, 100.0, math.inf, math.nan]),
        st.sampled_from([0.0, 1500.0, -800.0, 9000.0, math.nan]),
        st.sampled_from([None, None, None, 0, 3]),  # a car ready at plug 0 or 3 this step
        st.sampled_from([None, None, 1]),  # plug 1 switched off
    ),
    min_size=1,
    max_size=10,
)


@pytest.mark.parametrize("n_plugs", [6, SMALL_SITE_PLUGS + 2])
@settings(max_examples=25, deadline=None)
@given(steps=steps)
def test_every_answer_is_the_allocators_for_the_input_used(
    n_plugs: int, steps: list[tuple[float, float, float, float, int | None, int | None]]
) -> None:
    session = AllocationSession()
    now = 0.0
    for main_a, sub_a, limit_a, pv_w, available, off in steps:
        now += 1.0
        snap = _moved(_site(n_plugs, available=available, off=off), main_a, sub_a, limit_a, pv_w)
        _check(session, snap, now)


def test_the_shortcut_is_taken_only_while_nothing_can_run() -> None:
    session = AllocationSession()
    base = _site(6)
    for k in range(5):  # the loads ramp: no two inputs equal
        _check(session, _moved(base, 10.0 + k, 2.0 + k, 63.0, 1500.0 + k), float(k))
    assert session.idle_reused == 4
    # a car ready: the allocator runs and gives it current
    ready = _moved(_site(6, available=0), 15.0, 7.0, 63.0, 1500.0)
    answer = session.step(ready, 5.0)
    assert answer.setpoints["p0"] > 0
    assert session.idle_reused == 4
    # it leaves: the same idle plugs as before, the last idle answer again
    _check(session, _moved(base, 30.0, 2.0, 20.0, 0.0), 6.0)
    assert session.idle_reused == 5


def test_a_non_finite_limit_or_load_is_never_hidden() -> None:
    session = AllocationSession()
    base = _site(4)
    session.step(_moved(base, 10.0, 2.0, 63.0, 1500.0), 0.0)
    for bad in (
        _moved(base, math.nan, 2.0, 63.0, 1500.0),
        _moved(base, 10.0, 2.0, math.inf, 1500.0),
        _moved(base, 10.0, 2.0, 63.0, math.nan),
    ):
        answer = session.step(bad, 1.0)
        assert all(r.startswith("refused: not a finite number") for r in answer.reasons.values())
    assert session.idle_reused == 0


def test_off_switch_turns_it_off() -> None:
    session = AllocationSession()
    session.idle_reuse = False
    base = _site(4)
    for k in range(3):
        _check(session, _moved(base, 10.0 + k, 2.0, 63.0, 1500.0), float(k))
    assert session.idle_reused == 0


def test_a_plug_switched_off_with_a_car_ready_is_idle() -> None:
    session = AllocationSession()
    base = _site(6, off=2)
    assert base.plugs[2].available
    for k in range(3):
        _check(session, _moved(base, 10.0 + k, 2.0, 63.0, 1500.0), float(k))
    assert session.idle_reused == 2
