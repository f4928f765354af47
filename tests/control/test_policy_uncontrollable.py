"""A charger that does not take its limits (refuses profiles, has no smart charging, ignores the
limit) is an uncontrollable load: its maximum reserved on its phases, and reported."""

from __future__ import annotations

from fuseguard.control.report import plug_view
from fuseguard.model.phases import ZERO, Phases, Rotation
from fuseguard.model.status import CpState

from .doubles import charger_sample, handover, plug

REFUSED = "ocpp:CP1 connector 1: lease profile refused (Rejected)"


def test_an_uncontrollable_plug_reserves_its_max_on_its_phases_and_keeps_its_value() -> None:
    p = plug(max_a=32, rotation=Rotation.L2L3L1)
    p.setpoint.written_a = 11
    sample = charger_sample(
        CpState.C, Phases(11, 0, 0), cable_rating_a=20.0, uncontrollable=REFUSED
    )
    p.reading.update(sample, 10.0)
    a = p.assess(p.facts(10.0), handover())
    assert not a.demand.available
    assert a.reserved_a == Phases(0, 20, 0)  # the cable's 20 A on the grid phase it loads
    setpoint, reason = p.verdict(a.facts, 16, "fair share", handover())
    assert setpoint == 11  # nothing it would take is written: the writer's rewrite retries
    assert reason == f"uncontrollable ({REFUSED}): 20 A reserved on its phases"
    p.setpoint.reason = reason
    view = plug_view(p, 10.0)
    assert view.error == REFUSED
    assert view.reason.startswith("uncontrollable")


def test_nothing_is_reserved_without_a_car_and_the_verdict_ends_with_the_report() -> None:
    p = plug(max_a=16)
    p.reading.update(charger_sample(CpState.A, uncontrollable=REFUSED), 10.0)
    a = p.assess(p.facts(10.0), handover())
    assert a.reserved_a == ZERO and not a.demand.available
    assert p.uncontrollable.reason == REFUSED
    p.reading.update(charger_sample(CpState.C, Phases.uniform(10)), 11.0)
    a = p.assess(p.facts(11.0), handover())
    assert p.uncontrollable.reason is None
    assert a.demand.available and a.reserved_a == ZERO
    assert p.verdict(a.facts, 16, "fair share", handover()) == (16, "fair share")


def test_uncontrollable_comes_before_stuck() -> None:
    p = plug(max_a=32)
    p.setpoint.written_a = 0
    p.setpoint.changed_at = 0.0
    for t in (10.0, 15.0):
        p.reading.update(
            charger_sample(CpState.C, Phases.uniform(12), uncontrollable="ignores the limit"), t
        )
        a = p.assess(p.facts(t), handover())
    assert a.reserved_a == Phases.uniform(32)  # its max, not just what it draws now
