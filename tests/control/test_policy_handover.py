"""BreakBeforeMake on its own: no increase while another car comes down."""

from __future__ import annotations

from fuseguard.control.policies.handover import BreakBeforeMake, excess_a
from fuseguard.model.phases import ZERO, Phases

from .doubles import charger_sample, facts


def policy() -> BreakBeforeMake:
    return BreakBeforeMake(margin_a=1.0, grace_s=6.0)


def above(now: float, changed_at: float, amps: float = 16.0, written_a: int = 10):
    return facts(
        now=now,
        sample=charger_sample(current_a=Phases(amps, amps, 0)),
        written_a=written_a,
        changed_at=changed_at,
    )


def test_excess_is_what_a_car_draws_above_its_setpoint_plus_margin() -> None:
    assert excess_a(above(10.0, 0.0), 1.0) == Phases(5, 5, 0)
    assert excess_a(above(10.0, 0.0, amps=11.0), 1.0) is None
    assert excess_a(above(10.0, 0.0, written_a=None), 1.0) is None  # type: ignore[arg-type]
    stale = facts(sample=charger_sample(current_a=Phases.uniform(30)), fresh=False)
    assert excess_a(stale, 1.0) is None


def test_a_car_coming_down_within_the_grace_makes_increases_wait() -> None:
    p = policy()
    p.begin()
    assert p.update(above(10.0, changed_at=5.0)) == ZERO  # lowered 5 s ago: coming down
    assert p.decreasing
    assert p.held(16, written_a=10) == 10  # another car's increase waits at its written value
    assert p.held(8, written_a=10) is None  # decreases go ahead
    assert p.held(6, written_a=None) == 0  # a paused car does not start meanwhile
    p.begin()
    assert not p.decreasing  # one cycle only


def test_at_start_up_a_car_found_charging_comes_down_instead_of_pausing() -> None:
    # fuseguard just started (nothing written yet) on a site above its limit: a car found
    # drawing 32 A and given 14 A is lowered, not held at 0 (a pause for nothing, and with
    # min_pause_s a long one); a car drawing nothing still waits until the others are down
    p = policy()
    p.begin()
    p.lowered(facts(sample=charger_sample(current_a=Phases.uniform(32))), 14)
    assert p.decreasing
    assert p.held(14, written_a=None, drawing_a=32.0) is None
    assert p.held(14, written_a=None, drawing_a=13.5) is None  # within the margin
    assert p.held(14, written_a=None, drawing_a=10.2) == 10  # an increase: it waits at 10 A
    assert p.held(14, written_a=None, drawing_a=4.0) == 0  # below 6 A: it cannot wait at 4 A
    assert p.held(14, written_a=None) == 0


def test_a_car_that_does_not_come_down_is_counted_at_its_real_draw() -> None:
    p = policy()
    p.begin()
    assert p.update(above(20.0, changed_at=5.0)) == Phases(5, 5, 0)
    assert not p.decreasing
    assert p.held(16, written_a=10) is None


def test_a_decision_that_lowers_a_car_below_its_draw_makes_increases_wait() -> None:
    p = policy()
    p.begin()
    drawing = facts(sample=charger_sample(current_a=Phases.uniform(16)), written_a=16)
    p.lowered(drawing, 16)
    assert not p.decreasing
    p.lowered(drawing, 14)
    assert p.decreasing
    assert p.held(20, written_a=16) == 16
