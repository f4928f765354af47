"""IdleCar on its own: a car that takes nothing although offered is paused and re-probed."""

from __future__ import annotations

from fuseguard.control.policies.idle import MAX_BACKOFF, IdleCar
from fuseguard.control.types import ChargerSpec
from fuseguard.model.phases import Phases
from fuseguard.model.status import CpState

from .doubles import charger_sample, facts


def policy() -> IdleCar:
    return IdleCar(ChargerSpec(id="cp1"), grace_s=6.0, after_s=60.0, reprobe_s=900.0)


def idle_at(now: float, *, written_a: int = 16, **kw: object):
    sample = charger_sample(CpState.B)
    return facts(now=now, sample=sample, written_a=written_a, **kw)  # type: ignore[arg-type]


def test_paused_after_idle_after_s_then_offered_again_after_reprobe() -> None:
    p = policy()
    assert not p.update(idle_at(100.0))  # the clock starts
    assert not p.update(idle_at(159.0))
    assert p.update(idle_at(160.0))
    assert p.paused_until == 1060.0
    assert p.reason(160.0) == "car takes no current (full?): offered again in 15 min"
    assert p.update(idle_at(1059.0))
    assert not p.update(idle_at(1060.0))  # probe: offered again
    assert p.paused_until is None and p.reason(1060.0) is None


def test_the_clock_starts_after_the_decrease_grace_of_a_setpoint_change() -> None:
    p = policy()
    p.update(idle_at(100.0, changed_at=98.0))  # since = max(100, 98 + 6) = 104
    assert not p.update(idle_at(163.0, changed_at=98.0))
    assert p.update(idle_at(164.0, changed_at=98.0))


def test_a_car_that_draws_or_is_offered_too_little_is_not_idle() -> None:
    p = policy()
    p.update(idle_at(100.0))
    drawing = facts(now=130.0, sample=charger_sample(current_a=Phases.uniform(10)), written_a=16)
    assert not p.update(drawing)  # resets the clock
    assert not p.update(idle_at(180.0))
    assert not p.update(idle_at(239.0))
    assert p.update(idle_at(240.0))
    q = policy()
    for t in (100.0, 200.0, 300.0):  # offered below the minimum: it cannot charge
        assert not q.update(idle_at(t, written_a=0))


def test_a_stale_sample_does_not_count_as_idle() -> None:
    p = policy()
    p.update(idle_at(100.0))
    assert not p.update(idle_at(130.0, fresh=False))  # resets the clock
    assert not p.update(idle_at(180.0))
    assert p.update(idle_at(240.0))


def test_unplugging_forgets_everything() -> None:
    p = policy()
    p.update(idle_at(100.0))
    p.update(idle_at(160.0))
    assert p.paused_until is not None
    assert not p.update(facts(now=170.0, sample=charger_sample(CpState.A)))
    assert p.paused_until is None
    assert not p.update(idle_at(171.0))  # a new car starts from scratch


def test_the_reason_query_does_not_change_state() -> None:
    p = policy()
    p.update(idle_at(100.0))
    p.update(idle_at(160.0))
    assert p.reason(2000.0) is not None  # even long after the pause: only update moves it
    assert p.paused_until == 1060.0


def test_every_probe_turned_down_doubles_the_pause_up_to_max_backoff() -> None:
    p = policy()
    t = 100.0
    pauses = []
    for _ in range(5):
        p.update(idle_at(t))  # offered (again): the clock starts
        assert p.update(idle_at(t + 60.0))
        until = p.paused_until
        assert until is not None
        pauses.append(until - (t + 60.0))
        assert not p.probing
        t = until
        assert not p.update(idle_at(t))  # probe
        assert p.probing
        t += 1.0
    assert pauses == [900.0, 1800.0, 3600.0, 3600.0, 3600.0]
    assert MAX_BACKOFF == 4


def test_a_car_that_draws_after_a_probe_starts_over() -> None:
    p = policy()
    p.update(idle_at(100.0))
    assert p.update(idle_at(160.0))
    assert not p.update(idle_at(1060.0))  # probe with the minimum
    assert p.probing
    drawing = facts(now=1070.0, sample=charger_sample(current_a=Phases.uniform(6)), written_a=6)
    assert not p.update(drawing)
    assert not p.probing  # it charges: its fair share again
    p.update(idle_at(2000.0))  # full again later: the first pause is the short one again
    assert p.update(idle_at(2060.0))
    assert p.paused_until == 2060.0 + 900.0


def test_unplugging_ends_a_probe_and_the_backoff() -> None:
    p = policy()
    p.update(idle_at(100.0))
    p.update(idle_at(160.0))
    p.update(idle_at(1060.0))
    assert p.probing
    assert not p.update(facts(now=1070.0, sample=charger_sample(CpState.A)))
    assert not p.probing
    p.update(idle_at(1100.0))
    assert p.update(idle_at(1160.0))
    assert p.paused_until == 1160.0 + 900.0
