"""Late measurements and delayed limits (OCPP): the expected draw and the policies that must not
judge a measurement taken under another limit than the one in force."""

from __future__ import annotations

from fuseguard.control.policies.demand import DemandCap
from fuseguard.control.policies.expected import expected_draw_a
from fuseguard.control.policies.handover import BreakBeforeMake, decrease_pending
from fuseguard.control.policies.idle import IdleCar
from fuseguard.control.policies.stuck import StuckContactor
from fuseguard.control.types import ChargerSpec
from fuseguard.control.writer import Setpoint
from fuseguard.model.phases import Phase, Phases
from fuseguard.model.status import CpState

from .doubles import charger_sample, facts, history

DELAY_S = 5.0


def expect(sp: Setpoint, measured: Phases, *, measured_at: float, now: float) -> Phases | None:
    return expected_draw_a(
        sample=charger_sample(current_a=measured),
        grid_a=measured,
        measured_at=measured_at,
        now=now,
        setpoint=sp,
        delay_s=DELAY_S,
        margin_a=1.0,
    )


def test_limit_in_force_follows_the_writes_after_the_delay() -> None:
    sp = history((0.0, 16), (100.0, 8))
    assert sp.limit_at(4.0, DELAY_S) is None
    assert sp.limit_at(5.0, DELAY_S) == 16
    assert sp.limit_at(104.9, DELAY_S) == 16
    assert sp.limit_at(105.0, DELAY_S) == 8


def test_a_measurement_taken_with_the_setpoint_in_force_stands() -> None:
    sp = history((0.0, 16), (100.0, 8))
    assert expect(sp, Phases.uniform(8), measured_at=106.0, now=130.0) is None


def test_a_car_lowered_draws_its_old_value_until_the_new_limit_is_in_force() -> None:
    sp = history((0.0, 16), (100.0, 8))
    measured = Phases.uniform(16)
    assert expect(sp, measured, measured_at=60.0, now=102.0) == Phases.uniform(16)
    assert expect(sp, measured, measured_at=60.0, now=106.0) == Phases.uniform(8)


def test_a_car_raised_that_took_what_it_was_offered_takes_the_new_limit_on_its_phases() -> None:
    sp = history((0.0, 6), (100.0, 20))
    one_phase = Phases(6, 0, 0)
    assert expect(sp, one_phase, measured_at=60.0, now=102.0) == Phases(6, 0, 0)
    assert expect(sp, one_phase, measured_at=60.0, now=106.0) == Phases(20, 0, 0)


def test_a_car_that_took_less_than_offered_is_expected_to_take_the_same() -> None:
    sp = history((0.0, 16), (100.0, 32))
    assert expect(sp, Phases.uniform(10), measured_at=60.0, now=110.0) == Phases.uniform(10)
    lowered = history((0.0, 16), (100.0, 8))  # ... at most the new limit
    assert expect(lowered, Phases.uniform(10), measured_at=60.0, now=110.0) == Phases.uniform(8)


def test_nothing_to_expect_without_a_charging_car_or_a_known_limit() -> None:
    sp = history((100.0, 8))
    assert expect(sp, Phases.uniform(16), measured_at=60.0, now=102.0) is None  # not in force
    idle = expected_draw_a(
        sample=charger_sample(cp=CpState.B),
        grid_a=Phases(),
        measured_at=0.0,
        now=200.0,
        setpoint=sp,
        delay_s=DELAY_S,
        margin_a=1.0,
    )
    assert idle is None


def late(*, now: float, changed_at: float, age_s: float, amps: float, written_a: int, **kw: object):
    f = facts(
        now=now,
        sample=charger_sample(current_a=Phases.uniform(amps)),
        written_a=written_a,
        changed_at=changed_at,
    )
    f.age_s, f.delay_s = age_s, DELAY_S
    for key, value in kw.items():
        setattr(f, key, value)
    return f


def test_break_before_make_holds_until_a_decrease_is_in_force_and_one_meter_period_more() -> None:
    p = BreakBeforeMake(margin_a=1.0, grace_s=6.0, evidence_s=1.0)
    for now, held in ((101.0, True), (105.5, True), (106.5, False)):
        f = late(now=now, changed_at=100.0, age_s=now - 60.0, amps=16, written_a=8, previous_a=16)
        assert decrease_pending(f, 1.0) is held
        p.begin()
        assert p.update(f) == Phases()  # never counted as uncontrollable on an old measurement
        assert p.decreasing is held
        assert (p.held(20, written_a=10) == 10) is held


def test_a_raise_in_flight_holds_nothing() -> None:
    p = BreakBeforeMake(margin_a=1.0, grace_s=6.0, evidence_s=1.0)
    p.begin()
    p.update(late(now=102.0, changed_at=100.0, age_s=40.0, amps=6, written_a=20, previous_a=6))
    assert not p.decreasing


def test_policies_do_not_judge_a_measurement_taken_under_an_older_limit() -> None:
    spec = ChargerSpec(id="cp")
    # paused 30 s ago, last measured 50 s ago at 6 A: not a stuck contactor
    stuck = StuckContactor(spec, margin_a=2.0, after_s=5.0)
    paused = late(now=130.0, changed_at=100.0, age_s=50.0, amps=6, written_a=0)
    assert not paused.settled
    assert not stuck.update(paused)
    assert not stuck.update(late(now=140.0, changed_at=100.0, age_s=60.0, amps=6, written_a=0))
    # a measurement taken with the pause in force that still shows 6 A is judged
    after = late(now=140.0, changed_at=100.0, age_s=5.0, amps=6, written_a=0)
    assert after.settled
    assert not stuck.update(after)  # over since now ...
    assert stuck.update(late(now=146.0, changed_at=100.0, age_s=11.0, amps=6, written_a=0))
    # raised to 20 A, last measured at 6 A before: no demand cap, no idle car
    cap = DemandCap(spec, margin_a=2.0, after_s=30.0, probe_s=300.0)
    idle = IdleCar(spec, grace_s=6.0, after_s=60.0, reprobe_s=900.0)
    for now in (110.0, 150.0, 200.0):
        raised = late(now=now, changed_at=100.0, age_s=now - 90.0, amps=0.0, written_a=20)
        assert cap.update(raised) is None
        assert not idle.update(raised)


def test_a_car_that_started_after_its_measurement_draws_the_limit_up_to_the_minimum() -> None:
    sp = history((0.0, 0), (100.0, 6))
    started = expected_draw_a(
        sample=charger_sample(current_a=Phases()),
        grid_a=Phases(),
        measured_at=50.0,
        now=103.0,
        setpoint=sp,
        delay_s=1.0,
        margin_a=1.0,
        charging_since=102.0,
        phases=(Phase.L1, Phase.L2, Phase.L3),
        min_a=6,
    )
    assert started == Phases.uniform(6)
