"""A raise not measured yet explains a meter rise with its whole offer only within the start
window (docs/safety.md, "Start window", round 11): after ``START_WINDOW_S`` the car has answered
the raise, so it keeps explaining what was attributed to it, and a further rise of the meter is
building load. Before round 11 such a raise explained up to its whole offer until the charger's
next measurement (MeterValues: 10-60 s), so a building load step coinciding with 100 raised but
unmeasured charge points waited for their MeterValues (``bench/ocpp.py --chargers 100``)."""

from __future__ import annotations

from fuseguard.control.load import EvDraw, LoadEstimator, Metered
from fuseguard.control.policies.expected import START_WINDOW_S, responding
from fuseguard.model.circuits import CircuitSpec, CircuitTree
from fuseguard.model.phases import ZERO, Phases

from .doubles import charger_sample, meter_sample, plug

DELAY_S = 1.0


def estimator() -> LoadEstimator:
    tree = CircuitTree.of([CircuitSpec("main", None, 100.0)])
    return LoadEstimator(tree, voltage_v=230.0, phase_assumption="worst", peak_window_s=900.0)


def measure(est: LoadEstimator, amps: Phases, unseen: list[EvDraw]) -> Phases:
    metered = [Metered(circuit="main", sample=meter_sample(amps), fresh=True, record=True,
                       held_a=ZERO)]  # fmt: skip
    return est.update(0.0, metered, [], unseen)["main"]


def raise_of(amps: float, *, late: bool) -> EvDraw:
    return EvDraw("main", Phases.uniform(amps), amps * 3 * 230.0, late=late)


def test_a_late_raise_keeps_what_it_explained_and_no_more() -> None:
    est = estimator()
    assert measure(est, Phases.uniform(8), []) == Phases.uniform(8)
    # within the window: a car raised by 10 A takes 4 A of it, the meter rises by 4 A
    assert measure(est, Phases.uniform(12), [raise_of(10, late=False)]) == Phases.uniform(8)
    # the window is over, not measured yet: the 4 A stay the car's, a further rise of 5 A is
    # building load (before round 11: the 10 A offer explained it as well)
    assert measure(est, Phases.uniform(12), [raise_of(10, late=True)]) == Phases.uniform(8)
    assert measure(est, Phases.uniform(17), [raise_of(10, late=True)]) == Phases.uniform(13)
    # never more than the offer, never less than nothing
    assert measure(est, Phases.uniform(2), [raise_of(10, late=True)]) == ZERO


def test_a_late_raise_the_car_did_not_take_explains_nothing() -> None:
    est = estimator()
    measure(est, Phases.uniform(8), [])
    # the car did not take its raise within the window: the meter stayed flat
    assert measure(est, Phases.uniform(8), [raise_of(10, late=False)]) == Phases.uniform(8)
    # a building load step after the window counts in full at once, not at the next
    # MeterValues
    assert measure(est, Phases.uniform(14), [raise_of(10, late=True)]) == Phases.uniform(14)


def test_a_late_raise_and_a_start_in_its_window_together() -> None:
    est = estimator()
    measure(est, Phases.uniform(8), [])
    assert measure(est, Phases.uniform(11), [raise_of(10, late=False)]) == Phases.uniform(8)
    # the raise's window is over (3 A kept); another car starts with 6 A: a rise of 6 A more is
    # that car's, beyond it building load
    both = [raise_of(10, late=True), raise_of(6, late=False)]
    assert measure(est, Phases.uniform(17), both) == Phases.uniform(8)
    assert measure(est, Phases.uniform(19), both) == Phases.uniform(10)


def test_the_window_of_a_raise_is_counted_from_its_taking_effect() -> None:
    assert responding(now=11.0 + START_WINDOW_S, changed_at=10.0, delay_s=DELAY_S)
    assert not responding(now=11.1 + START_WINDOW_S, changed_at=10.0, delay_s=DELAY_S)


def test_a_plug_with_an_unmeasured_raise_is_pending_in_its_window_then_late() -> None:
    p = plug(reports_late=True, limit_delay_s=DELAY_S)
    measured = charger_sample(current_a=Phases.uniform(6), power_w=4140.0, measured_age_s=0.5)
    p.reading.update(measured, 99.0)
    p.setpoint.changes.extend([(50.0, 6), (100.0, 16)])
    p.setpoint.written_a, p.setpoint.changed_at = 16, 100.0
    within = p.facts(100.0 + DELAY_S + START_WINDOW_S)
    assert within.unconfirmed_a == Phases.uniform(10)
    assert within.pending_a == Phases.uniform(10)
    assert within.late_a is None
    assert within.unseen() == [(Phases.uniform(10), False)]
    after = p.facts(100.0 + DELAY_S + START_WINDOW_S + 0.5)
    assert after.pending_a is None
    assert after.late_a == Phases.uniform(10)
    assert after.unseen() == [(Phases.uniform(10), True)]
    assert after.counted_a == Phases.uniform(6)  # counted as before: the measurement
