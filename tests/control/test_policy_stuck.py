"""StuckContactor on its own: judged on fresh measurements after the setpoint settled."""

from __future__ import annotations

from structlog.testing import capture_logs

from fuseguard.control.policies.stuck import StuckContactor
from fuseguard.control.types import ChargerSpec
from fuseguard.model.phases import Phases

from .doubles import charger_sample, facts

SPEC = ChargerSpec(id="cp1")


def policy(**spec: object) -> StuckContactor:
    return StuckContactor(ChargerSpec(id="cp1", **spec), margin_a=2.0, after_s=5.0)  # type: ignore[arg-type]


def drawing(amps: float, *, now: float, written_a: int | None = 0, **kw: object):
    return facts(
        now=now,
        sample=charger_sample(current_a=Phases.uniform(amps)),
        written_a=written_a,
        **kw,  # type: ignore[arg-type]
    )


def test_stuck_after_drawing_above_the_setpoint_for_the_settle_time() -> None:
    p = policy()
    assert not p.update(drawing(12, now=10.0))  # first time over: the clock starts
    assert not p.update(drawing(12, now=14.9))
    with capture_logs() as logs:
        assert p.update(drawing(12, now=15.0))
    assert p.stuck
    assert logs[0]["event"] == "charger_stuck"
    assert logs[0]["charger"] == "cp1" and logs[0]["reason"]


def test_within_the_margin_is_not_stuck_and_releases() -> None:
    p = policy()
    for t in (10.0, 20.0):
        p.update(drawing(12, now=t))
    assert p.stuck
    assert not p.update(drawing(1.9, now=21.0))  # 0 + 2 A margin: not over any more
    assert not p.stuck


def test_not_judged_until_the_setpoint_settled() -> None:
    p = policy()
    # the setpoint changed 1 s ago: the car may still be coming down
    for t in (10.0, 11.0, 12.0, 13.0):
        assert not p.update(drawing(12, now=t, changed_at=9.0))
    assert not p.update(drawing(12, now=14.0, changed_at=9.0))  # settled now: clock starts
    assert p.update(drawing(12, now=19.0, changed_at=9.0))


def test_a_stale_sample_changes_nothing() -> None:
    p = policy()
    p.update(drawing(12, now=10.0))
    p.update(drawing(12, now=15.0))
    assert p.stuck
    # no current measurement: keep the verdict, neither release nor re-judge
    assert p.update(drawing(0, now=16.0, fresh=False))
    assert p.stuck


def test_no_sample_no_written_setpoint_or_a_child_edge_is_never_stuck() -> None:
    assert not policy().update(facts(sample=None))
    assert not policy().update(drawing(30, now=10.0, written_a=None))
    child = policy(child_edge=True)
    for t in (10.0, 20.0, 30.0):
        assert not child.update(drawing(30, now=t))


def test_the_query_does_not_change_state() -> None:
    p = policy()
    p.update(drawing(12, now=10.0))
    for _ in range(3):
        assert not p.stuck
    assert p.update(drawing(12, now=15.0))


def test_a_charger_reporting_the_weld_is_stuck_at_once() -> None:
    """Its own ``contactor_welded`` confirms the measurement: no settle time, no hold time."""
    p = policy()
    welded = facts(
        now=10.0,
        changed_at=9.5,  # the setpoint changed half a second ago: not settled
        sample=charger_sample(current_a=Phases.uniform(12), errors=("contactor_welded",)),
        written_a=0,
    )
    assert p.update(welded)
    # the error alone (drawing within the margin) is not enough: the measurement decides
    calm = facts(
        now=11.0,
        sample=charger_sample(current_a=Phases.uniform(1), errors=("contactor_welded",)),
        written_a=0,
    )
    assert not policy().update(calm)
