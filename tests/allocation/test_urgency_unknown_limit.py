"""Least laxity for a car whose own limit is not learned yet (allocation/urgency.py, round 11b).

A 16 A car on a 32 A plug that was never offered more than 16 A has ``car_limit_a`` None; its
laxity at the plug's 32 A is optimistic. It is urgent when its laxity at
``UNKNOWN_CAR_LIMIT_A`` is within the window and it can still finish at the plug's cap.
"""

from __future__ import annotations

import math

from fuseguard.allocation import AllocationParams, Circuit, Plug, Snapshot
from fuseguard.allocation.small import allocate_small
from fuseguard.allocation.urgency import (
    UNKNOWN_CAR_LIMIT_A,
    is_urgent,
    laxity_s,
    queue_keys,
    urgent_laxity_s,
)
from fuseguard.allocation.vector import allocate_numpy
from fuseguard.model.phases import ALL_PHASES, Phases

THREE = ALL_PHASES
PARAMS = AllocationParams(urgent_laxity_s=7200.0)  # the rule, not the default window
#: 22.08 kWh: one hour at 3 x 32 A x 230 V, two hours at 3 x 16 A
NEED_WH = 22080.0


def _car(dep_s: float, limit_a: float | None = None, **kw: float) -> Plug:
    return Plug(
        "u", "main", THREE, max_a=32, need_wh=NEED_WH, departure_s=dep_s, car_limit_a=limit_a, **kw
    )


def _both(limit_a: float, *plugs: Plug) -> dict[str, int]:
    snap = Snapshot((Circuit("main", None, Phases.of((limit_a,) * 3)),), plugs, 0, PARAMS)
    small, vec = allocate_small(snap), allocate_numpy(snap)
    assert small == vec
    return small.setpoints


def test_an_unknown_car_is_judged_at_the_usual_car_limit_to_enter_the_window() -> None:
    assert UNKNOWN_CAR_LIMIT_A == 16.0
    p = _car(12000.0)  # laxity 8400 s at 32 A (outside 7200 s), 4800 s at 16 A (inside)
    lax = laxity_s(p, 3.0, 230.0)
    assert lax is not None and math.isclose(lax, 8400.0)
    ranked = urgent_laxity_s(p, 3.0, PARAMS)
    assert ranked is not None and math.isclose(ranked, 4800.0)
    assert is_urgent(p, 3.0, PARAMS)
    # learned: a 32 A car is relaxed, a 16 A car is urgent at its own cap (as before)
    assert not is_urgent(_car(12000.0, 32.0), 3.0, PARAMS)
    learned = urgent_laxity_s(_car(12000.0, 16.0), 3.0, PARAMS)
    assert learned is not None and math.isclose(learned, 4800.0)
    # a non-finite or non-positive learned limit counts as not learned
    for bad in (math.nan, 0.0, -3.0):
        assert is_urgent(_car(12000.0, bad), 3.0, PARAMS)


def test_an_unknown_car_that_can_still_finish_at_the_plug_cap_stays_urgent_and_goes_first() -> None:
    tight = _car(5400.0)  # 1800 s at 32 A, -1800 s at 16 A: only a 32 A car can still finish
    ranked = urgent_laxity_s(tight, 3.0, PARAMS)
    assert ranked is not None and math.isclose(ranked, -1800.0)
    # a car known to be a 16 A car cannot finish any more: it drops back (as before)
    assert not is_urgent(_car(5400.0, 16.0), 3.0, PARAMS)
    other = Plug("o", "main", THREE, max_a=16, need_wh=11040.0, departure_s=4200.0)  # 600 s
    levels, _, flags = queue_keys((other, tight), (3.0, 3.0), PARAMS)
    assert flags == [True, True]
    assert levels[1] > levels[0]


def test_a_plug_at_or_below_the_usual_limit_is_judged_as_before() -> None:
    for dep in (3000.0, 4200.0, 7000.0, 9000.0):
        p = Plug("a", "main", THREE, max_a=16, need_wh=11040.0, departure_s=dep)
        lax = laxity_s(p, 3.0, 230.0)
        expect = lax if lax is not None and 0.0 <= lax <= PARAMS.urgent_laxity_s else None
        assert urgent_laxity_s(p, 3.0, PARAMS) == expect


def test_the_unknown_car_takes_the_only_slot_on_both_paths() -> None:
    # room for one car at 6 A: the plain car has less energy share and would go first; the
    # unknown car (4800 s laxity at 16 A) is urgent and is admitted with what the row holds
    plain = Plug("b", "main", THREE, max_a=32, share_a=1.0, paused_s=5000.0)
    assert _both(8, _car(12000.0, share_a=5.0), plain) == {"u": 8, "b": 0}
    # once its limit is learned as 32 A it is relaxed, and the share decides again
    assert _both(8, _car(12000.0, 32.0, share_a=5.0), plain) == {"u": 0, "b": 8}


def test_a_car_of_unknown_phases_is_judged_on_one_phase_to_enter_the_window() -> None:
    # 11.04 kWh on a 16 A plug: 1 h on three phases, 3 h on one; leaving in 12000 s
    def car(known: bool, dep_s: float = 12000.0) -> Plug:
        return Plug(
            "u", "main", THREE, max_a=16, need_wh=11040.0, departure_s=dep_s, phases_known=known
        )

    assert not is_urgent(car(True), 3.0, PARAMS)  # 8400 s to spare on three phases
    ranked = urgent_laxity_s(car(False), 3.0, PARAMS)
    assert ranked is not None and math.isclose(ranked, 1200.0)
    # it drops back only when it could not finish even on all its phases
    assert is_urgent(car(False, 5000.0), 3.0, PARAMS)  # 1400 s on three, -5800 s on one
    assert not is_urgent(car(False, 3000.0), 3.0, PARAMS)
    # both paths: the unknown car takes the only slot from a plain car with less share
    plain = Plug("b", "main", THREE, max_a=16, share_a=1.0, paused_s=5000.0)
    unknown = Plug(
        "u",
        "main",
        THREE,
        max_a=16,
        need_wh=11040.0,
        departure_s=12000.0,
        phases_known=False,
        share_a=5.0,
    )
    assert _both(8, unknown, plain) == {"u": 8, "b": 0}
