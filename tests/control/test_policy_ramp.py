"""Ramp on its own: decreases at once, increases held for raise_after_s and ramped."""

from __future__ import annotations

from fuseguard.control.policies.ramp import Ramp
from fuseguard.control.types import ChargerSpec


def policy() -> Ramp:
    return Ramp(ChargerSpec(id="cp1", min_a=6), raise_after_s=5.0, up_a_per_s=4.0, period_s=1.0)


def test_a_decrease_is_immediate() -> None:
    assert policy().update(8, written_a=20, changed_at=0.0, now=10.0) == 8
    assert policy().update(0, written_a=20, changed_at=9.9, now=10.0) == 0


def test_a_paused_car_starts_at_its_minimum() -> None:
    assert policy().update(32, written_a=None, changed_at=0.0, now=10.0) == 6
    assert policy().update(32, written_a=0, changed_at=0.0, now=10.0) == 6


def test_a_running_car_is_raised_after_the_value_held_to_the_lowest_value_of_that_time() -> None:
    p = policy()
    assert p.update(20, written_a=10, changed_at=0.0, now=100.0) == 10  # held
    assert p.raising_since == 100.0
    assert p.update(14, written_a=10, changed_at=0.0, now=102.0) == 10
    assert p.update(20, written_a=10, changed_at=0.0, now=104.9) == 10
    # after 5 s: the lowest value allowed meanwhile (14), within the ramp (4 A/s * 105 s)
    assert p.update(20, written_a=10, changed_at=0.0, now=105.0) == 14
    assert p.raising_since is None


def test_the_step_is_limited_by_the_ramp_rate_since_the_last_change() -> None:
    p = policy()
    p.update(32, written_a=6, changed_at=104.0, now=100.0)
    # 1 s since the last change: at most 4 A up
    assert p.update(32, written_a=6, changed_at=104.0, now=105.0) == 10


def test_a_drop_cancels_a_pending_raise() -> None:
    p = policy()
    p.update(20, written_a=10, changed_at=0.0, now=100.0)
    assert p.update(9, written_a=10, changed_at=0.0, now=101.0) == 9
    assert p.raising_since is None
    assert p.update(20, written_a=10, changed_at=0.0, now=102.0) == 10  # the wait starts again
