"""The queue pre-step (allocation/urgency.py): energy-share rotation and least laxity first."""

from __future__ import annotations

import math

from fuseguard.allocation import AllocationParams, Circuit, Plug, Snapshot, allocate
from fuseguard.allocation.reserve import reserves
from fuseguard.allocation.small import allocate_small
from fuseguard.allocation.urgency import MAX_URGENT_LEVELS, is_urgent, laxity_s, queue_keys
from fuseguard.allocation.vector import allocate_numpy
from fuseguard.model.phases import ALL_PHASES, Phase, Phases

THREE = ALL_PHASES


def _site(limit_a: float, *plugs: Plug) -> Snapshot:
    return Snapshot((Circuit("main", None, Phases.of((limit_a,) * 3)),), plugs)


def _both(snap: Snapshot) -> dict[str, int]:
    small, vec = allocate_small(snap), allocate_numpy(snap)
    assert small == vec
    return small.setpoints


def test_lowest_energy_share_gets_the_only_slot() -> None:
    # room for one car at 6 A: the car with less energy per hour plugged in goes first,
    # whatever the snapshot order and the waiting time
    a = Plug("a", "main", THREE, max_a=16, share_a=5.0, paused_s=5000.0)
    b = Plug("b", "main", THREE, max_a=16, share_a=2.0, paused_s=400.0)
    assert _both(_site(8, a, b)) == {"a": 0, "b": 8}
    assert _both(_site(8, b, a)) == {"b": 8, "a": 0}


def test_a_runner_past_its_minimum_run_yields_to_a_car_with_less_share() -> None:
    params = AllocationParams(min_run_s=600.0, min_pause_s=300.0)
    runner = Plug("r", "main", THREE, max_a=16, setpoint_a=8, running_s=700.0, share_a=7.0)
    waiting = Plug("w", "main", THREE, max_a=16, paused_s=900.0, share_a=3.0)
    snap = Snapshot((Circuit("main", None, Phases.of((8.0,) * 3)),), (runner, waiting), 0, params)
    assert _both(snap) == {"r": 0, "w": 8}
    # inside its minimum run time it keeps the slot
    locked = Plug("r", "main", THREE, max_a=16, setpoint_a=8, running_s=100.0, share_a=7.0)
    snap = Snapshot((Circuit("main", None, Phases.of((8.0,) * 3)),), (locked, waiting), 0, params)
    assert _both(snap) == {"r": 8, "w": 0}
    # a runner with less share than the waiting car keeps it too
    low = Plug("r", "main", THREE, max_a=16, setpoint_a=8, running_s=700.0, share_a=1.0)
    snap = Snapshot((Circuit("main", None, Phases.of((8.0,) * 3)),), (low, waiting), 0, params)
    assert _both(snap) == {"r": 8, "w": 0}


def test_without_queue_facts_the_order_is_the_waiting_time_as_before() -> None:
    a = Plug("a", "main", THREE, max_a=16, paused_s=400.0)
    b = Plug("b", "main", THREE, max_a=16, paused_s=900.0)
    assert _both(_site(8, a, b)) == {"a": 0, "b": 8}


def test_laxity_is_time_to_departure_minus_time_to_finish_at_the_cap() -> None:
    p = Plug("a", "main", THREE, max_a=16, need_wh=11040.0, departure_s=7200.0)
    # 11.04 kWh at 3 x 16 A x 230 V = 11.04 kW: one hour
    lax = laxity_s(p, 3.0, 230.0)
    assert lax is not None
    assert math.isclose(lax, 3600.0)
    # a target lowers the cap: two hours at 8 A, no laxity left
    lax = laxity_s(
        Plug("a", "main", THREE, max_a=16, target_a=8, need_wh=11040.0, departure_s=7200.0),
        3.0,
        230.0,
    )
    assert lax is not None
    assert math.isclose(lax, 0.0, abs_tol=1e-9)
    assert laxity_s(Plug("a", "main", THREE, max_a=16), 3.0, 230.0) is None
    assert (
        laxity_s(Plug("a", "main", THREE, max_a=16, need_wh=0.0, departure_s=10.0), 3.0, 230.0)
        is None
    )


def _no_reserve(limit_a: float, *plugs: Plug) -> Snapshot:
    """The site with ``urgent_reserve = 0``: least laxity without reserves (urgent plugs
    admitted at their minimum and filled to their caps first, in sub-levels)."""
    return Snapshot(
        (Circuit("main", None, Phases.of((limit_a,) * 3)),),
        plugs,
        params=AllocationParams(urgent_reserve=0.0),
    )


def test_an_urgent_car_charges_at_its_cap_the_others_keep_their_minimum() -> None:
    # without reserves: 30 A for three cars: equal split would be 10 A each; the car leaving in
    # 70 min with 11 kWh to go (laxity 10 min) gets its 16 A, the others share the rest
    urgent = Plug("u", "main", THREE, max_a=16, need_wh=11040.0, departure_s=4200.0)
    a = Plug("a", "main", THREE, max_a=16, need_wh=30000.0, departure_s=30000.0)
    b = Plug("b", "main", THREE, max_a=16)
    sp = _both(_no_reserve(30, a, urgent, b))
    assert sp == {"a": 7, "u": 16, "b": 7}
    assert (
        "urgent: 11.0 kWh needed before departure in 70 min"
        in allocate(_site(30, a, urgent, b)).reasons["u"]
    )
    # with the default reserve (1 x what it needs: 11040 Wh in 4200 s at 3 x 230 V = 13.7 A,
    # 14 whole amps) it gets 14 A as its minimum and the rest is shared evenly above it
    assert _both(_site(30, a, urgent, b)) == {"a": 8, "u": 14, "b": 8}


def test_a_car_that_cannot_finish_any_more_is_not_urgent() -> None:
    params = AllocationParams()
    hopeless = Plug("h", "main", THREE, max_a=16, need_wh=40000.0, departure_s=600.0)
    relaxed = Plug("r", "main", THREE, max_a=16, need_wh=1000.0, departure_s=40000.0)
    assert not is_urgent(hopeless, 3.0, params)
    assert not is_urgent(relaxed, 3.0, params)
    assert _both(_site(30, hopeless, relaxed)) == {"h": 15, "r": 15}


def test_urgency_never_overtakes_a_higher_priority() -> None:
    urgent = Plug("u", "main", THREE, max_a=16, need_wh=11040.0, departure_s=4200.0)
    high = Plug("h", "main", THREE, max_a=16, priority=1)
    levels, _, flags = queue_keys((urgent, high), (3.0, 3.0), AllocationParams())
    assert flags == [True, False]
    assert levels == [1, 2]
    assert _both(_site(8, urgent, high)) == {"u": 0, "h": 8}


def test_hostile_queue_facts_never_raise_a_plug() -> None:
    params = AllocationParams()
    for share in (math.nan, math.inf, -5.0):
        _, shares, _ = queue_keys(
            (Plug("a", "main", THREE, max_a=16, share_a=share),), (3.0,), params
        )
        assert shares == [0.0]
    for dep, need in ((math.nan, 1000.0), (math.inf, 1000.0), (100.0, math.nan), (-5.0, 10.0)):
        p = Plug("a", "main", THREE, max_a=16, need_wh=need, departure_s=dep)
        assert not is_urgent(p, 3.0, params)


def test_the_least_laxity_is_served_first_among_urgent_cars() -> None:
    # 30 A: the car with 10 min laxity gets its 16 A, the one with 40 min what is left above
    # the relaxed car's 6 A minimum
    tight = Plug("t", "main", THREE, max_a=16, need_wh=11040.0, departure_s=4200.0)
    less = Plug("l", "main", THREE, max_a=16, need_wh=11040.0, departure_s=6000.0)
    relaxed = Plug("r", "main", THREE, max_a=16)
    levels, _, flags = queue_keys((less, relaxed, tight), (3.0,) * 3, AllocationParams())
    assert flags == [True, False, True]
    assert levels[2] > levels[0] > levels[1]
    assert _both(_no_reserve(30, less, relaxed, tight)) == {"l": 8, "r": 6, "t": 16}
    # with reserves: each gets what it needs to finish (t 13.7 -> 14 A, l 9.6 -> 10 A)
    assert _both(_site(30, less, relaxed, tight)) == {"l": 10, "r": 6, "t": 14}


def test_urgent_sub_levels_are_bounded() -> None:
    # 20 urgent plugs: the 7 least-laxity ones get their own sub-levels, the rest share one
    plugs = [
        Plug(f"u{i}", "main", THREE, max_a=16, need_wh=11040.0, departure_s=4000.0 + 10 * i)
        for i in range(20)
    ]
    levels, _, flags = queue_keys(plugs, (3.0,) * 20, AllocationParams())
    assert all(flags)
    assert levels[:7] == list(range(MAX_URGENT_LEVELS, 1, -1))
    assert set(levels[7:]) == {1}


def test_plan_leaders_go_first_in_rank_order_then_laxity_then_share() -> None:
    """Plan leaders (``plan_rank``) take the sub-levels above least laxity: rank first, equal
    ranks by laxity, then energy share; plugs without a rank keep the base level."""
    params = AllocationParams()
    lead0 = Plug("lead0", "main", THREE, max_a=16, plan_rank=0, share_a=9.0)
    tight = Plug("tight", "main", THREE, max_a=16, plan_rank=1, need_wh=11040.0, departure_s=4000.0)
    loose = Plug("loose", "main", THREE, max_a=16, plan_rank=1, need_wh=11040.0, departure_s=9000.0)
    low_share = Plug("low", "main", THREE, max_a=16, plan_rank=2, share_a=1.0)
    high_share = Plug("high", "main", THREE, max_a=16, plan_rank=2, share_a=5.0)
    urgent = Plug("urgent", "main", THREE, max_a=16, need_wh=11040.0, departure_s=5000.0)
    plain = Plug("plain", "main", THREE, max_a=16)
    plugs = [plain, urgent, high_share, low_share, loose, tight, lead0]
    levels, _, marked = queue_keys(plugs, [3.0] * len(plugs), params)
    by_id = {p.id: lv for p, lv in zip(plugs, levels, strict=True)}
    order = sorted(by_id, key=lambda pid: -by_id[pid])
    assert order == ["lead0", "tight", "loose", "low", "high", "urgent", "plain"]
    assert by_id["plain"] == 0 and all(marked[1:]) and not marked[0]


def test_a_plan_leader_is_filled_to_its_cap_before_the_even_split() -> None:
    """40 A for three cars: the plan's leader (target 16 A) gets its cap, the others share the
    rest; without the rank the max-min split gives every car 13 A (and turns decide)."""
    lead = Plug("lead", "main", THREE, max_a=16, target_a=16, plan_rank=0, share_a=9.0)
    b = Plug("b", "main", THREE, max_a=16, share_a=1.0)
    c = Plug("c", "main", THREE, max_a=16, share_a=1.0)
    assert _both(_site(40, lead, b, c)) == {"lead": 16, "b": 12, "c": 12}
    plain = Plug("lead", "main", THREE, max_a=16, target_a=16, share_a=9.0)
    assert _both(_site(40, plain, b, c)) == {"lead": 14, "b": 13, "c": 13}
    # only the order changes: a leader's rank never lifts it above its cap or a limit
    capped = Plug("lead", "main", THREE, max_a=16, target_a=6, plan_rank=0)
    assert _both(_site(40, capped, b, c)) == {"lead": 6, "b": 16, "c": 16}
    assert _both(_site(10, lead, b, c)) == {"lead": 10, "b": 0, "c": 0}


def test_an_urgent_car_is_admitted_with_what_it_needs_and_the_others_wait() -> None:
    """18 A for three cars at 6 A minimum: without reserves all three run at 6 A and the urgent
    car (11 A needed: 11040 Wh in 5400 s) cannot finish; with its reserve it runs at 11 A, one
    plain car gets the rest and the one later in the queue waits its turn."""
    urgent = Plug("u", "main", THREE, max_a=16, need_wh=11040.0, departure_s=5400.0)
    a = Plug("a", "main", THREE, max_a=16, share_a=1.0)
    b = Plug("b", "main", THREE, max_a=16, share_a=2.0)
    assert _both(_no_reserve(18, a, urgent, b)) == {"a": 6, "u": 6, "b": 6}
    assert _both(_site(18, a, urgent, b)) == {"a": 7, "u": 11, "b": 0}


def test_a_reserve_is_at_most_the_cap_and_what_the_rows_hold() -> None:
    # needs more than its cap can deliver (but still urgent: laxity 0): reserved at its cap
    full = Plug("u", "main", THREE, max_a=16, need_wh=11040.0, departure_s=3600.0)
    a = Plug("a", "main", THREE, max_a=16, share_a=1.0)
    assert _both(_site(30, full, a)) == {"u": 16, "a": 14}
    assert _both(_site(20, full, a)) == {"u": 16, "a": 0}
    # the rows hold less than the reserve: as much as they hold, at least the minimum
    assert _both(_site(12, full, a)) == {"u": 12, "a": 0}
    # a target below the need caps the reserve too
    capped = Plug("u", "main", THREE, max_a=16, target_a=8, need_wh=11040.0, departure_s=9000.0)
    assert _both(_site(30, capped, a)) == {"u": 8, "a": 16}


def test_a_one_phase_reserve_holds_only_its_phase() -> None:
    """A 1-phase urgent car on L2 needing 20 A (7360 Wh in 1.6 h): L2 has 26 A for it and a
    3-phase car; the 3-phase car keeps its 6 A minimum on L2 and takes L1/L3 nowhere else
    (it is one car: its current is the same on every phase)."""
    one = Plug("u", "main", (Phase.L2,), max_a=32, need_wh=7360.0, departure_s=5760.0)
    three = Plug("t", "main", THREE, max_a=16, share_a=1.0)
    snap = Snapshot((Circuit("main", None, Phases(40.0, 26.0, 40.0)),), (one, three))
    assert _both(snap) == {"u": 20, "t": 6}
    # without the reserve the urgent car is filled first too, to 20 of L2's 26 A
    no_res = Snapshot(snap.circuits, snap.plugs, params=AllocationParams(urgent_reserve=0.0))
    assert _both(no_res) == {"u": 20, "t": 6}


def test_reserves_never_lift_a_row_over_its_limit() -> None:
    """Six urgent cars that together need more than the fuse: the reserves are handed out in
    least-laxity order as far as the rows hold; every phase stays within its limit."""
    plugs = tuple(
        Plug(f"u{i}", "main", THREE, max_a=16, need_wh=6000.0 + 500 * i, departure_s=3000.0)
        for i in range(6)
    )
    # reserves 11, 12, 13, 14, 14, 15 A (79 A) on 40 A: the least laxity (the largest need, same
    # departure) first: u5 15 A (laxity 228 s), then u3 and u4 (554 and 391 s: one 300 s band,
    # LAXITY_BAND_S, so the plug order) u3 14 A, u4 the 11 A left (of 14), the rest wait
    sp = _both(_site(40, *plugs))
    assert sp == {"u0": 0, "u1": 0, "u2": 0, "u3": 14, "u4": 11, "u5": 15}


def test_a_huge_need_reserves_the_cap_and_never_raises() -> None:
    # the reserve step on its own (such a plug is never urgent: its laxity is negative): a
    # need whose current overflows to infinity reserves the cap and raises nothing
    p = Plug("u", "main", THREE, max_a=16, need_wh=1e308, departure_s=1e-300)
    out = reserves([p], [3.0], [True], AllocationParams())
    assert out == [16.0]
    assert reserves([p], [3.0], [True], AllocationParams(urgent_reserve=0.0)) is None
