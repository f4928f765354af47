"""DemandCap learns the most a car has been seen to draw (``seen_max_a``) and carries it to the
allocator: least laxity judges a car whose limit is not learned at no less than that
(``control/policies/demand.py``, ``allocation/urgency.py``, round 12)."""

from __future__ import annotations

import math

import pytest

from fuseguard.control.allocator import AllocatorSession
from fuseguard.control.policies.demand import DemandCap
from fuseguard.control.types import ChargerSpec, ControllerConfig
from fuseguard.model.circuits import CircuitSpec
from fuseguard.model.phases import Phases
from fuseguard.model.status import CpState

from .doubles import charger_sample, facts, handover, plug

SPEC = ChargerSpec(id="cp1", max_a=32)


def policy() -> DemandCap:
    return DemandCap(SPEC, margin_a=2.0, after_s=30.0, probe_s=300.0)


def drawing(  # type: ignore[no-untyped-def]
    a: Phases, now: float, written_a: int | None = 32, cp: CpState = CpState.C
):
    return facts(now=now, sample=charger_sample(cp, current_a=a), written_a=written_a)


def test_the_highest_phase_in_whole_amps_down_and_only_rising() -> None:
    p = policy()
    assert p.seen_max_a is None
    p.update(drawing(Phases(0.0, 0.0, 0.0), 1.0))
    assert p.seen_max_a == 0.0
    p.update(drawing(Phases(24.9, 25.7, 3.0), 2.0))
    assert p.seen_max_a == 25.0  # the highest phase, whole amps down
    p.update(drawing(Phases(8.0, 8.0, 8.0), 3.0, written_a=8))  # a lower offer: kept
    assert p.seen_max_a == 25.0
    p.update(drawing(Phases(26.2, 26.2, 26.2), 4.0))
    assert p.seen_max_a == 26.0


def test_learned_whatever_the_offer_and_the_cap_state() -> None:
    p = policy()
    p.update(drawing(Phases.uniform(12.0), 1.0, written_a=None))  # nothing written yet
    assert p.seen_max_a == 12.0
    p.update(drawing(Phases.uniform(14.0), 2.0, cp=CpState.B))  # connected, not charging
    assert p.seen_max_a == 14.0
    assert p.car_limit_a is None  # the car's own limit is a different fact


def test_kept_on_a_missed_reading_forgotten_when_unplugged() -> None:
    p = policy()
    p.update(drawing(Phases.uniform(20.0), 1.0))
    p.update(facts(now=2.0, sample=None))
    assert p.seen_max_a == 20.0  # a missed reading is not an unplugged car
    p.update(facts(now=3.0, sample=charger_sample(CpState.A)))
    assert p.seen_max_a is None  # the next car is another car
    p.update(drawing(Phases.uniform(7.0), 4.0))
    assert p.seen_max_a == 7.0


@pytest.mark.parametrize("hostile", [math.nan, math.inf, -math.inf, -5.0])
def test_non_finite_or_negative_draws_teach_nothing(hostile: float) -> None:
    p = policy()
    p.update(drawing(Phases(hostile, 10.0, 10.0), 1.0))
    if hostile == -5.0:  # a negative phase beside real draws: the real draws count
        assert p.seen_max_a == 10.0
    else:  # a non-finite phase: the whole reading is suspect
        assert p.seen_max_a is None
    p.update(drawing(Phases.uniform(hostile), 1.5))
    p.update(drawing(Phases.uniform(10.0), 2.0))
    p.update(drawing(Phases.uniform(hostile), 3.0))
    assert p.seen_max_a == 10.0


def test_the_demand_cap_decisions_do_not_change() -> None:
    """Learned beside the cap: the same cap and limit with or without it read."""
    p = policy()
    p.update(drawing(Phases.uniform(12.6), 100.0))
    p.update(drawing(Phases.uniform(12.6), 130.0))
    assert (p.cap_a, p.car_limit_a, p.seen_max_a) == (15.0, 13.0, 12.0)


def test_carried_from_the_plug_to_the_demand_and_the_snapshot() -> None:
    p = plug(max_a=32)
    p.setpoint.written_a = 32
    p.reading.update(charger_sample(CpState.C, current_a=Phases(21.4, 21.4, 21.4)), 100.0)
    demand = p.assess(p.facts(100.0), handover()).demand
    assert demand.seen_max_a == 21.0
    cfg = ControllerConfig(
        circuits=[CircuitSpec(id="main", parent=None, fuse_a=63.0)],
        chargers=[ChargerSpec(id="cp1", max_a=32)],
    )
    snap = AllocatorSession(cfg).build_snapshot(
        limits={"main": Phases(63.0, 63.0, 63.0)},
        non_ev={"main": Phases(0.0, 0.0, 0.0)},
        demands=[demand],
        pv_surplus_w=0.0,
    )
    assert snap.plugs[0].seen_max_a == 21.0
    p.reading.update(charger_sample(CpState.A), 101.0)
    assert p.assess(p.facts(101.0), handover()).demand.seen_max_a is None
