"""The session reuses the last answer only for the same input: every answer it gives is the one
the pure allocator gives for the input it reports (issue 18: no allocation when nothing moved)."""

from __future__ import annotations

from dataclasses import replace

from alloc_strategies import check_as_fresh, snapshots
from hypothesis import given
from hypothesis import strategies as st

from fuseguard.allocation import AllocationSession, Snapshot
from fuseguard.model.phases import Phases


def _vary(snap: Snapshot, how: int) -> Snapshot:
    """The same site, one input moved (0: nothing)."""
    if how == 0 or not snap.circuits:
        return snap
    main = snap.circuits[0]
    if how == 1:
        moved = replace(main, non_ev_load_a=main.non_ev_load_a + Phases(0.25, 0.0, 0.0))
        return replace(snap, circuits=(moved, *snap.circuits[1:]))
    if how == 2 and snap.plugs:
        first = replace(snap.plugs[0], available=not snap.plugs[0].available)
        return replace(snap, plugs=(first, *snap.plugs[1:]))
    return replace(snap, pv_surplus_w=snap.pv_surplus_w + 500.0)


@given(
    snapshots(),
    st.lists(st.tuples(st.integers(0, 3), st.sampled_from([0.0, 0.0, 1.0, 400.0])), max_size=12),
)
def test_every_answer_is_the_allocators_answer_for_the_input_used(
    snap: Snapshot, steps: list[tuple[int, float]]
) -> None:
    session = AllocationSession()
    now = 0.0
    current = snap
    for how, dt in [(0, 0.0), *steps]:
        now += dt
        current = _vary(current, how)
        check_as_fresh(session, session.step(current, now))


@given(snapshots())
def test_state_is_filled_in_whether_or_not_a_plug_is_copied(snap: Snapshot) -> None:
    session = AllocationSession()
    session.step(snap, 0.0)
    full = session.with_state(snap, 700.0)
    for plug, filled in zip(snap.plugs, full.plugs, strict=True):
        t = session.timers(plug.id)
        assert t is not None
        if not plug.available:
            assert (filled.setpoint_a, filled.running_s, filled.paused_s) == (0, None, None)
            continue
        assert filled.setpoint_a == t.setpoint_a
        expected_run = None if t.running_since_s is None else 700.0 - t.running_since_s
        assert filled.running_s == expected_run
        assert filled == replace(
            plug,
            setpoint_a=filled.setpoint_a,
            running_s=filled.running_s,
            paused_s=filled.paused_s,
            pv_timer_s=filled.pv_timer_s,
        )


def test_with_timers_carries_every_other_field_over() -> None:
    """The direct copy equals ``dataclasses.replace`` on a plug whose every field differs from
    its default (a field added to ``Plug`` and forgotten in the copy fails here)."""
    from dataclasses import fields
    from datetime import UTC, datetime

    from fuseguard.allocation.session import with_timers
    from fuseguard.allocation.types import Plug
    from fuseguard.model.phases import Phase
    from fuseguard.model.status import ChargeMode

    plug = Plug(
        id="p",
        circuit="c",
        phases=(Phase.L2,),
        max_a=20,
        min_a=7,
        priority=2,
        mode=ChargeMode.PV,
        target_a=11,
        target_until=datetime(2026, 1, 1, tzinfo=UTC),
        available=False,
        setpoint_a=9,
        running_s=1.5,
        paused_s=2.5,
        pv_timer_s=3.5,
        share_a=4.5,
        need_wh=5.5,
        departure_s=6.5,
        phases_known=False,
        plan_rank=3,
        car_limit_a=13.0,
        seen_max_a=14.0,
    )
    defaults = Plug(id="", circuit="", phases=(), max_a=0)
    for f in fields(Plug):
        if f.name not in ("id", "circuit", "phases", "max_a"):
            assert getattr(plug, f.name) != getattr(defaults, f.name), f.name
    copied = with_timers(plug, 1, None, 8.0, 0.0)
    assert copied == replace(plug, setpoint_a=1, running_s=None, paused_s=8.0, pv_timer_s=0.0)
