"""The runner's metrics on tiny hand-computed scenarios, determinism, and the policies."""

from __future__ import annotations

import pytest
from helpers_scenario import tiny

from fuseguard.scenario.runner import PolicyUnavailableError, simulate

VOLT = 230


def _strip(report: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in report.items() if k not in ("wall_s", "sim_wall_s")}


def test_static_overload_energy_by_hand() -> None:
    # Fuse 20 A, base 10 A per phase, static split gives the one charger 20 A; the car takes 16 A
    # from t=100 to t=400: 6 A over the fuse on each phase for 300 s.
    sc = tiny()
    rep = simulate(sc, "static").report
    assert rep["overload_as"]["total"] == pytest.approx(3 * 6 * 300, rel=1e-6)
    assert rep["overload_as"]["per_circuit"]["main"] == {"L1": 1800.0, "L2": 1800.0, "L3": 1800.0}
    assert rep["max_overshoot_a"] == pytest.approx(6.0)
    assert rep["energy_delivered_wh"]["per_car"]["cp1@100"] == pytest.approx(
        16 * 3 * VOLT * 300 / 3600, rel=1e-6
    )
    assert rep["unmet_wh"]["cp1@100"] == pytest.approx(100000 - 920, rel=1e-6)
    assert rep["pause_resume_cycles"] == {"cp1@100": 0}
    assert rep["jain_fairness"] is None  # one car: not applicable
    # The whole stay is one non-compliant stretch that never ends while the car charges.
    assert rep["reaction_s"]["count"] == 1
    assert rep["reaction_s"]["p50"] == pytest.approx(300)
    # LP: headroom 10 A for 300 s.
    assert rep["offline_optimum_wh"] == pytest.approx(10 * 3 * VOLT * 300 / 3600, rel=1e-3)
    assert rep["optimality"] == pytest.approx(920 / 575, rel=1e-3)
    assert rep["policy"] == "static"
    assert "re-implementation" in rep["policy_note"]


def test_only_the_ev_share_of_an_overload_counts() -> None:
    # The non-EV load alone (25 A) exceeds the 20 A fuse; the car adds 16 A: only 16 A count.
    sc = tiny(base=(25, 0, 0))
    rep = simulate(sc, "static", compute_optimum=False).report
    per = rep["overload_as"]["per_circuit"]["main"]
    assert per["L1"] == pytest.approx(16 * 300)
    # L2/L3: 16 A on a 20 A fuse with no other load: fine.
    assert per["L2"] == 0.0
    assert per["L3"] == 0.0
    assert rep["offline_optimum_wh"] is None


def test_sub_circuit_overload_is_accounted_per_circuit() -> None:
    sc = tiny(
        fuse_a=100,
        base=(0, 0, 0),
        circuits=[{"id": "garage", "parent": "main", "fuse_a": 10}],
        chargers=[{"id": "g1", "circuit": "garage", "max_a": 16}],
        cars=[{"charger": "g1", "arrive_s": 100, "depart_s": 400, "energy_wh": 1e6, "max_a": 16}],
    )
    rep = simulate(sc, "static", compute_optimum=False).report
    # Static gives min(100, 10) = 10 A: compliant in the garage and on main.
    assert rep["overload_as"]["total"] == 0.0
    assert rep["energy_delivered_wh"]["total"] == pytest.approx(10 * 3 * VOLT * 300 / 3600)


def test_equal_split_is_fair_and_respects_targets() -> None:
    sc = tiny(
        fuse_a=40,
        base=(4, 4, 4),
        duration_s=1200,
        chargers=[{"id": "cp1"}, {"id": "cp2"}],
        cars=[
            {"charger": "cp1", "arrive_s": 0, "depart_s": 1200, "energy_wh": 1e6, "max_a": 32},
            {"charger": "cp2", "arrive_s": 0, "depart_s": 1200, "energy_wh": 1e6, "max_a": 32},
        ],
        events=[{"at_s": 405, "target": {"charger": "cp1", "current_a": 0, "duration_s": 300}}],
    )
    rep = simulate(sc, "ten_second_equal").report
    assert rep["overload_as"]["total"] == 0.0
    # The target pauses cp1 once; it resumes when the target expires.
    assert rep["pause_resume_cycles"] == {"cp1@0": 1, "cp2@0": 0}
    assert rep["jain_fairness"] is not None
    assert rep["jain_fairness"] > 0.95
    assert rep["max_cycles_per_car_hour"] == pytest.approx(3.0)
    # The target (at 405 s, between two 10 s cycles) is complied with at the next cycle.
    assert rep["reaction_s"]["count"] == 1
    assert rep["reaction_s"]["max"] == pytest.approx(5.0)


def test_meter_fault_fallback_time() -> None:
    # openWB-style baseline: after 60 s of meter errors a 7000 W budget (~10.1 A per phase).
    sc = tiny(
        fuse_a=40,
        base=(5, 5, 5),
        duration_s=900,
        site={"meter_fallback_a": 10.5},
        cars=[{"charger": "cp1", "arrive_s": 0, "depart_s": 900, "energy_wh": 1e6, "max_a": 32}],
        events=[{"at_s": 300, "fault": {"device": "meter", "kind": "offline", "duration_s": 300}}],
    )
    rep = simulate(sc, "ten_second_equal", compute_optimum=False).report
    (fault,) = rep["fallback"]
    assert fault["device"] == "meter"
    assert fault["kind"] == "offline"
    assert 60 <= fault["fallback_s"] <= 75


def test_virtual_time_is_deterministic() -> None:
    sc = tiny(
        fuse_a=32,
        duration_s=1800,
        chargers=[{"id": "cp1"}, {"id": "cp2", "rotation": "L2L3L1"}],
        cars=[
            {"charger": "cp1", "arrive_s": 0, "depart_s": 1800, "energy_wh": 9000},
            {"charger": "cp2", "arrive_s": 60, "depart_s": 1500, "energy_wh": 9000, "phases": 1},
        ],
        events=[
            {"at_s": 600, "base_step": {"delta_a": [8, 0, 0], "duration_s": 300}},
            {"at_s": 900, "fault": {"device": "cp2", "kind": "offline", "duration_s": 120}},
        ],
    )
    for policy in ("round_robin_30s", "ten_second_equal", "fuseguard"):
        a = simulate(sc, policy, compute_optimum=False)
        b = simulate(sc, policy, compute_optimum=False)
        assert _strip(a.report) == _strip(b.report), policy
        assert a.timeline is not None
        assert b.timeline is not None
        assert a.timeline.n == b.timeline.n == 1801
        assert (a.timeline.charger_a == b.timeline.charger_a).all()


def test_fuseguard_policy_runs_the_real_controller() -> None:
    sc = tiny(
        fuse_a=25,
        base=(5, 5, 5),
        duration_s=900,
        chargers=[{"id": "cp1"}, {"id": "cp2"}],
        cars=[
            {"charger": "cp1", "arrive_s": 0, "depart_s": 900, "energy_wh": 1e6, "max_a": 16},
            {"charger": "cp2", "arrive_s": 0, "depart_s": 900, "energy_wh": 1e6, "max_a": 16},
        ],
    )
    rep = simulate(sc, "fuseguard").report
    assert rep["policy"] == "fuseguard"
    assert rep["energy_delivered_wh"]["total"] > 0
    assert rep["optimality"] is not None
    assert 0 < rep["optimality"] <= 1.0 + 1e-6


def test_unknown_policy() -> None:
    with pytest.raises(PolicyUnavailableError, match="unknown policy"):
        simulate(tiny(), "magic")
