"""DemandCap learns the car's own current limit (``car_limit_a``) and least laxity uses it: a
16 A car on a 32 A plug is urgent in time (``control/policies/demand.py``,
``allocation/urgency.py``)."""

from __future__ import annotations

import math

import pytest

from fuseguard.allocation import Circuit, Plug, Snapshot
from fuseguard.allocation.snapshot import snapshot_from_data, snapshot_to_data
from fuseguard.allocation.types import AllocationParams
from fuseguard.allocation.urgency import cap_a, is_urgent, laxity_s
from fuseguard.control.allocator import AllocatorSession
from fuseguard.control.policies.demand import DemandCap
from fuseguard.control.types import ChargerSpec, ControllerConfig, PlugDemand
from fuseguard.model.circuits import CircuitSpec
from fuseguard.model.phases import ALL_PHASES, Phases
from fuseguard.model.status import ChargeMode, CpState

from .doubles import charger_sample, facts

SPEC = ChargerSpec(id="cp1", max_a=32)


def policy() -> DemandCap:
    return DemandCap(SPEC, margin_a=2.0, after_s=30.0, probe_s=300.0)


def drawing(amps: float, now: float, written_a: int = 32, cp: CpState = CpState.C):  # type: ignore[no-untyped-def]
    sample = charger_sample(cp, current_a=Phases(amps, amps, amps))
    return facts(now=now, sample=sample, written_a=written_a)


def test_learned_after_underuse_after_s_and_kept_past_the_probe() -> None:
    p = policy()
    p.update(drawing(12.6, 100.0))
    assert p.car_limit_a is None  # the clock starts
    p.update(drawing(12.6, 130.0))
    assert p.car_limit_a == 13.0  # whole amps up
    assert p.cap_a == 15.0  # ceil(12.6 + 2)
    p.update(drawing(12.6, 430.0, written_a=15))  # the cap is probed away ...
    assert p.cap_a is None
    assert p.car_limit_a == 13.0  # ... the car's own limit is not


def test_never_learned_while_the_car_takes_what_it_is_offered() -> None:
    p = policy()
    for t in range(100, 400, 10):
        p.update(drawing(10.0, float(t), written_a=10))
    assert p.car_limit_a is None


def test_the_highest_limit_holds_a_tapering_car_does_not_lower_it() -> None:
    p = policy()
    p.update(drawing(16.0, 100.0))
    p.update(drawing(16.0, 130.0))
    assert p.car_limit_a == 16.0
    p.update(drawing(7.0, 140.0, written_a=18))
    p.update(drawing(7.0, 170.0, written_a=18))
    assert p.car_limit_a == 16.0


def test_forgotten_when_it_draws_a_whole_amp_more_or_is_unplugged() -> None:
    p = policy()
    p.update(drawing(13.0, 100.0))
    p.update(drawing(13.0, 130.0))
    p.update(drawing(13.9, 131.0, written_a=15))
    assert p.car_limit_a == 13.0  # less than a whole amp more: kept (it takes its 15 A cap)
    p.update(drawing(14.0, 132.0, written_a=15))
    assert p.car_limit_a is None  # it takes more after all
    p.update(drawing(13.0, 140.0))
    p.update(drawing(13.0, 170.0))
    assert p.car_limit_a == 13.0
    p.update(facts(now=171.0, sample=None))
    assert p.car_limit_a == 13.0  # a missed reading is not an unplugged car
    p.update(facts(now=172.0, sample=charger_sample(CpState.A)))
    assert p.car_limit_a is None


@pytest.mark.parametrize("hostile", [math.nan, -5.0, math.inf, 1e12, -math.inf])
def test_hostile_draws_teach_nothing(hostile: float) -> None:
    p = policy()
    for t in (100.0, 130.0, 160.0):
        p.update(drawing(hostile, t))
    assert p.car_limit_a is None
    p.update(drawing(13.0, 200.0))
    p.update(drawing(13.0, 230.0))
    p.update(drawing(hostile, 231.0))
    assert p.car_limit_a in (None, 13.0)  # forgotten (a huge draw) or kept, never raised
    if hostile == 1e12:
        assert p.car_limit_a is None


def test_a_low_learned_limit_is_at_least_the_minimum() -> None:
    p = policy()
    p.update(drawing(2.0, 100.0))
    p.update(drawing(2.0, 130.0))
    assert p.car_limit_a == 6.0


def _plug(**kw: object) -> Plug:
    base: dict[str, object] = {
        "id": "a",
        "circuit": "main",
        "phases": ALL_PHASES,
        "max_a": 32,
        "need_wh": 16 * 3 * 230.0 * 3.0,  # 3 h at 16 A, 1.5 h at 32 A
        "departure_s": 4 * 3600.0,
    }
    base.update(kw)
    return Plug(**base)  # type: ignore[arg-type]


def test_least_laxity_uses_the_cars_own_limit() -> None:
    """Leaving in 4 h with 3 h at 16 A to go: 2.5 h to spare at the plug's 32 A, 1 h at its own
    16 A (urgent within 2 h). Learned as a 32 A car: not urgent; not learned yet: judged at the
    usual 16 A to enter the window (round 11b), so urgent."""
    params = AllocationParams(urgent_laxity_s=7200.0)
    assert laxity_s(_plug(), 3, 230.0) == pytest.approx(2.5 * 3600.0)
    assert not is_urgent(_plug(car_limit_a=32.0), 3, params)
    assert is_urgent(_plug(), 3, params)
    own = _plug(car_limit_a=16.0)
    assert laxity_s(own, 3, 230.0) == pytest.approx(3600.0)
    assert is_urgent(own, 3, params)


@pytest.mark.parametrize(
    ("limit", "cap"),
    [
        (None, 32.0),
        (16.0, 16.0),
        (40.0, 32.0),
        (3.0, 6.0),
        (0.0, 32.0),
        (-1.0, 32.0),
        (math.nan, 32.0),
        (math.inf, 32.0),
    ],
)
def test_cap_ignores_hostile_limits(limit: float | None, cap: float) -> None:
    assert cap_a(_plug(car_limit_a=limit)) == cap


def test_target_below_the_limit_wins() -> None:
    assert cap_a(_plug(car_limit_a=16.0, target_a=10)) == 10.0


def test_carried_from_the_demand_to_the_snapshot_and_its_json() -> None:
    cfg = ControllerConfig(
        circuits=[CircuitSpec(id="main", parent=None, fuse_a=63.0)], chargers=[SPEC]
    )
    demand = PlugDemand(
        spec=SPEC,
        available=True,
        phases=ALL_PHASES,
        max_a=32,
        mode=ChargeMode.FAST,
        priority=0,
        car_limit_a=16.0,
    )
    snap = AllocatorSession(cfg).build_snapshot(
        limits={"main": Phases(63.0, 63.0, 63.0)},
        non_ev={"main": Phases(0.0, 0.0, 0.0)},
        demands=[demand],
        pv_surplus_w=0.0,
    )
    assert snap.plugs[0].car_limit_a == 16.0
    again = snapshot_from_data(snapshot_to_data(snap))
    assert again.plugs[0].car_limit_a == 16.0
    plain = Snapshot(
        circuits=(Circuit(id="main", parent=None, limit_a=Phases(16, 16, 16)),),
        plugs=(_plug(),),
    )
    assert "car_limit_a" not in snapshot_to_data(plain)["plugs"][0]  # absent when unknown
