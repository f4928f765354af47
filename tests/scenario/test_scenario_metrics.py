"""Metric helpers, the ground-truth schedule and the LP optimum on hand-solvable cases."""

from __future__ import annotations

import pytest
from helpers_scenario import tiny
from hypothesis import given, settings
from hypothesis import strategies as st

from fuseguard.scenario.metrics import jain, percentile, waterfill
from fuseguard.scenario.optimum import offline_optimum_wh
from fuseguard.scenario.schedule import Schedule


def test_jain_bounds_and_known_values() -> None:
    assert jain([5, 5, 5]) == pytest.approx(1.0)
    assert jain([1, 0, 0, 0]) == pytest.approx(0.25)
    assert jain([]) is None
    assert jain([0, 0]) is None


def test_waterfill_respects_caps_and_total() -> None:
    assert waterfill(30, [6, 32, 32]) == pytest.approx([6, 12, 12])
    assert waterfill(100, [10, 20]) == pytest.approx([10, 20])


@settings(max_examples=60, deadline=None)
@given(
    st.floats(0, 500),
    st.lists(st.floats(0, 80), min_size=1, max_size=12),
)
def test_waterfill_properties(total: float, caps: list[float]) -> None:
    out = waterfill(total, caps)
    assert all(0 <= o <= c + 1e-9 for o, c in zip(out, caps, strict=True))
    assert sum(out) == pytest.approx(min(total, sum(caps)), abs=1e-6)


def test_percentile() -> None:
    assert percentile([1, 2, 3, 4], 50) == pytest.approx(2.5)
    assert percentile([7], 99) == 7
    assert percentile([], 50) is None


def test_schedule_flex_fallback_after_keepalive_loss() -> None:
    sc = tiny(
        fuse_a=40,
        duration_s=1000,
        events=[
            {"at_s": 100, "flex": {"activation": True, "current_limit_a": 25, "fallback_a": 10}},
            {"at_s": 200, "keepalive": "stop"},
            {"at_s": 500, "keepalive": "start"},
            {"at_s": 700, "flex": {"activation": False}},
        ],
        site={"keepalive_period_s": 30, "flex_timeout_s": 120},
    )
    s = Schedule(sc)
    assert s.main_limit_a(50) == 40
    assert s.main_limit_a(150) == 25
    # Last keep-alive before the stop at 200 was at 180; fallback from 180 + 120 = 300.
    assert s.main_limit_a(299) == 25
    assert s.main_limit_a(301) == 10
    assert s.fallback_starts == [300]
    assert s.main_limit_a(501) == 25
    assert s.main_limit_a(800) == 40
    assert s.min_main_limit_a(250, 600) == 10
    assert s.meter_fallback_a(150) == 10


def test_schedule_targets_and_steps() -> None:
    sc = tiny(
        events=[
            {"at_s": 10, "target": {"charger": "cp1", "current_a": 8, "duration_s": 50}},
            {"at_s": 20, "base_step": {"delta_a": [5, 0, 0], "duration_s": 10}},
        ]
    )
    s = Schedule(sc)
    assert s.target_cap_a("cp1", 5) is None
    assert s.target_cap_a("cp1", 30) == 8
    assert s.target_cap_a("cp1", 60) is None
    assert s.base_a(25).as_tuple() == (15, 10, 10)
    assert s.base_a(31).as_tuple() == (10, 10, 10)


def test_lp_optimum_by_hand_headroom_bound() -> None:
    # Fuse 20 A, base 10 A per phase: a 3-phase car can draw 10 A for the whole hour.
    sc = tiny(
        duration_s=3600,
        cars=[{"charger": "cp1", "arrive_s": 0, "depart_s": 3600, "energy_wh": 1e6, "max_a": 16}],
    )
    assert offline_optimum_wh(sc) == pytest.approx(10 * 3 * 230 * 1.0, rel=1e-6)


def test_lp_optimum_by_hand_energy_bound_and_window() -> None:
    sc = tiny(
        duration_s=7200,
        cars=[
            # Wants only 2 kWh.
            {"charger": "cp1", "arrive_s": 0, "depart_s": 7200, "energy_wh": 2000, "max_a": 16},
            # Half an hour at its own 6 A max (1-phase): 6 * 230 * 0.5 = 690 Wh, headroom shared.
            {
                "charger": "cp2",
                "arrive_s": 1800,
                "depart_s": 3600,
                "energy_wh": 5000,
                "max_a": 6,
                "phases": 1,
            },
        ],
        chargers=[{"id": "cp1"}, {"id": "cp2"}],
    )
    assert offline_optimum_wh(sc) == pytest.approx(2000 + 690, rel=1e-6)


def test_lp_optimum_sub_circuit_and_min_current() -> None:
    # Two 3-phase cars in a 10 A garage: together 10 A for one hour = 6900 Wh.
    sc = tiny(
        fuse_a=100,
        duration_s=3600,
        circuits=[{"id": "garage", "parent": "main", "fuse_a": 10}],
        chargers=[{"id": "g1", "circuit": "garage"}, {"id": "g2", "circuit": "garage"}],
        cars=[
            {"charger": "g1", "arrive_s": 0, "depart_s": 3600, "energy_wh": 1e6},
            {"charger": "g2", "arrive_s": 0, "depart_s": 3600, "energy_wh": 1e6},
        ],
    )
    assert offline_optimum_wh(sc) == pytest.approx(6900, rel=1e-6)
    # Headroom of 5 A after the base load: below the 6 A minimum, nothing can be delivered.
    sc2 = tiny(
        base=(15, 15, 15),
        cars=[{"charger": "cp1", "arrive_s": 0, "depart_s": 600, "energy_wh": 1e6}],
    )
    assert offline_optimum_wh(sc2) == 0.0


def test_phase_waterfill_gives_a_one_phase_car_the_free_phase() -> None:
    from fuseguard.scenario.metrics import phase_waterfill

    # two 3-phase cars and a 1-phase car on L3; 20 A used on L1/L2, 36 A on L3
    rows = {0: 20.0, 1: 20.0, 2: 36.0}
    fair = phase_waterfill(rows, [((0, 1, 2), 32.0), ((0, 1, 2), 32.0), ((2,), 32.0)])
    assert fair == pytest.approx([10.0, 10.0, 16.0])
    # caps bind first: the rest is shared by the others
    fair = phase_waterfill({0: 30.0, 1: 30.0, 2: 30.0}, [((0, 1, 2), 6.0), ((0, 1, 2), 32.0)])
    assert fair == pytest.approx([6.0, 24.0])


def test_phase_waterfill_respects_a_sub_circuit_bottleneck() -> None:
    from fuseguard.scenario.metrics import phase_waterfill

    # two cars behind a 12 A garage feeder, one on main: 36 A used through main
    rows = {("main", p): 36.0 for p in range(3)} | {("garage", p): 12.0 for p in range(3)}
    garage = tuple(("garage", p) for p in range(3)) + tuple(("main", p) for p in range(3))
    main = tuple(("main", p) for p in range(3))
    fair = phase_waterfill(rows, [(garage, 32.0), (garage, 32.0), (main, 32.0)])
    assert fair == pytest.approx([6.0, 6.0, 24.0])
