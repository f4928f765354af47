"""Least laxity for a car seen drawing more than the usual limit (allocation/urgency.py, round 12).

A car whose own limit is not learned is judged at ``UNKNOWN_CAR_LIMIT_A`` (16 A) to enter the
urgency window (round 11b). A car seen drawing 25 A (``seen_max_a``) can take at least 25 A: it
is judged at that instead (at most its cap), so a 32 A car seen at full rate is not urgent
early because it might be a 16 A car.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from fuseguard.allocation import (
    AllocationParams,
    AllocationSession,
    Circuit,
    Plug,
    Snapshot,
    allocate,
)
from fuseguard.allocation.small import allocate_small
from fuseguard.allocation.snapshot import snapshot_from_data, snapshot_to_data
from fuseguard.allocation.urgency import is_urgent, queue_keys, urgent_laxity_s
from fuseguard.allocation.vector import allocate_numpy
from fuseguard.model.phases import ALL_PHASES, Phases

PARAMS = AllocationParams(urgent_laxity_s=7200.0)  # the rule, not the default window
#: 22.08 kWh: one hour at 3 x 32 A x 230 V, two hours at 3 x 16 A
NEED_WH = 22080.0
DEP_S = 12000.0  # laxity 8400 s at 32 A, 4800 s at 16 A, 7392 s at 25 A, 6240 s at 20 A


def _car(seen_a: float | None, limit_a: float | None = None, **kw: float) -> Plug:
    return Plug(
        "u",
        "main",
        ALL_PHASES,
        max_a=32,
        need_wh=NEED_WH,
        departure_s=DEP_S,
        car_limit_a=limit_a,
        seen_max_a=seen_a,
        **kw,  # type: ignore[arg-type]
    )


def _snap(limit_a: float, *plugs: Plug) -> Snapshot:
    return Snapshot((Circuit("main", None, Phases.of((limit_a,) * 3)),), plugs, 0, PARAMS)


def test_a_car_seen_drawing_more_is_judged_at_what_it_drew() -> None:
    assert urgent_laxity_s(_car(None), 3.0, PARAMS) == pytest.approx(4800.0)  # at 16 A
    assert not is_urgent(_car(25.0), 3.0, PARAMS)  # 7392 s at 25 A: outside the window
    assert urgent_laxity_s(_car(20.0), 3.0, PARAMS) == pytest.approx(6240.0)
    assert not is_urgent(_car(40.0), 3.0, PARAMS)  # more than the plug's 32 A: at its cap


@pytest.mark.parametrize("seen", [None, 0.0, 6.0, 13.0, 16.0, -5.0, math.nan, math.inf])
def test_seen_at_or_below_the_usual_limit_or_hostile_changes_nothing(
    seen: float | None,
) -> None:
    assert urgent_laxity_s(_car(seen), 3.0, PARAMS) == pytest.approx(4800.0)


def test_a_learned_limit_wins_over_the_seen_draw() -> None:
    # learned as a 16 A car (it drew 25 A earlier on another phase mix: the limit decides)
    assert urgent_laxity_s(_car(25.0, 16.0), 3.0, PARAMS) == pytest.approx(4800.0)
    assert not is_urgent(_car(25.0, 32.0), 3.0, PARAMS)


def test_unknown_phases_still_judged_on_one_phase() -> None:
    # seen at 25 A but its phases not known: one phase at 25 A needs 3.84 h > 3.33 h to go
    lax = urgent_laxity_s(_car(25.0, phases_known=False), 3.0, PARAMS)
    assert lax is not None and lax == pytest.approx(DEP_S - NEED_WH * 3600.0 / (25.0 * 230.0))


def test_the_seen_draw_decides_the_only_slot_on_both_paths() -> None:
    # room for one car at 8 A: the plain car has less energy share and goes first unless the
    # announced car is urgent; judged at 16 A it is, seen drawing 25 A it is not
    plain = Plug("b", "main", ALL_PHASES, max_a=32, share_a=1.0, paused_s=5000.0)
    for seen, expect in ((None, {"u": 8, "b": 0}), (25.0, {"u": 0, "b": 8})):
        snap = _snap(8, _car(seen, share_a=5.0), plain)
        small, vec = allocate_small(snap), allocate_numpy(snap)
        assert small == vec
        assert small.setpoints == expect
        _, _, urgent = queue_keys(snap.plugs, (3.0, 3.0), PARAMS)
        assert urgent == [seen is None, False]


def test_the_seen_draw_is_part_of_the_memo_key() -> None:
    """The session must not reuse the last answer when only the seen draw moved."""
    plain = Plug("b", "main", ALL_PHASES, max_a=32, share_a=1.0, paused_s=5000.0)
    before = _snap(8, _car(None, share_a=5.0), plain)
    after = replace(before, plugs=(replace(before.plugs[0], seen_max_a=25.0), plain))
    assert before != after
    session = AllocationSession()
    first = session.step(before, 0.0)
    second = session.step(after, 0.0)
    used = session.last_input
    assert used is not None and used.plugs[0].seen_max_a == 25.0
    assert second == allocate(used)
    assert first.setpoints["u"] > 0  # urgent at 16 A: the slot ...
    assert "urgent" in first.reasons["u"]
    # ... then a 25 A car: relaxed (it keeps running inside its minimum run time), and the
    # answer is a new one, not the last one reused
    assert "urgent" not in second.reasons["u"]


def test_the_seen_draw_survives_the_snapshot_form() -> None:
    snap = _snap(32, _car(25.0))
    data = snapshot_to_data(snap)
    assert data["plugs"][0]["seen_max_a"] == 25.0
    assert snapshot_from_data(data).plugs[0].seen_max_a == 25.0
    assert "seen_max_a" not in snapshot_to_data(_snap(32, _car(None)))["plugs"][0]
    for bad in (-1.0, math.nan, math.inf):
        data["plugs"][0]["seen_max_a"] = bad
        with pytest.raises(ValueError):
            snapshot_from_data(data)
