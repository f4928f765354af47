"""PhaseLearning on its own: measured phases of a charging car, remembered while plugged in."""

from __future__ import annotations

from fuseguard.control.policies.phases import PhaseLearning
from fuseguard.control.types import ChargerSpec
from fuseguard.model.phases import Phase, Phases, Rotation
from fuseguard.model.status import CpState

from .doubles import charger_sample

L1, L2, L3 = Phase.L1, Phase.L2, Phase.L3


def policy(rotation: Rotation = Rotation.L1L2L3, wired: int = 3) -> PhaseLearning:
    spec = ChargerSpec(id="cp1", rotation=rotation, wired_phases=wired)  # type: ignore[arg-type]
    return PhaseLearning(spec, detect_a=1.0)


def test_all_wired_phases_until_something_is_known() -> None:
    p = policy(Rotation.L2L3L1)
    assert p.update(None) == (L2, L3, L1)
    assert p.update(charger_sample(CpState.B)) == (L2, L3, L1)
    assert policy(Rotation.L3L1L2, wired=1).update(None) == (L3,)


def test_learns_the_grid_phases_through_the_rotation_and_remembers_them() -> None:
    p = policy(Rotation.L3L1L2)
    one_phase = charger_sample(CpState.C, current_a=Phases(16, 0.2, 0))
    assert p.update(one_phase) == (L3,)
    assert p.learned == (L3,)
    # paused (CP B, no current): still the same car
    assert p.update(charger_sample(CpState.B)) == (L3,)
    # unplugged: forgotten
    assert p.update(charger_sample(CpState.A)) == (L3, L1, L2)
    assert p.learned is None


def test_the_charger_reported_phase_count_before_the_car_draws() -> None:
    p = policy(Rotation.L2L3L1)
    assert p.update(charger_sample(CpState.B, phases_in_use=1)) == (L2,)
    assert policy(wired=1).update(charger_sample(CpState.B, phases_in_use=3)) == (L1,)


def test_charging_without_measurable_current_learns_nothing() -> None:
    p = policy()
    assert p.update(charger_sample(CpState.C, current_a=Phases(0.5, 0.5, 0.5))) == (L1, L2, L3)
    assert p.learned is None


def test_queries_do_not_change_state() -> None:
    p = policy()
    p.update(charger_sample(CpState.C, current_a=Phases(10, 10, 0)))
    assert p.learned == (L1, L2)
    assert p.learned == (L1, L2)


def test_known_tells_the_assumption_from_what_is_known() -> None:
    """``known`` (the allocator's ``phases_known``, which the phase probe reads): False only
    while the all-wired-phases assumption stands."""
    p = policy(Rotation.L2L3L1)
    p.update(charger_sample(CpState.B))
    assert not p.known
    p.update(charger_sample(CpState.C, current_a=Phases(16, 0.2, 0)))
    assert p.known and p.learned == (L2,)
    p.update(charger_sample(CpState.B))  # paused: the same car, still known
    assert p.known
    p.update(charger_sample(CpState.A))  # unplugged: the next car is unknown again
    assert not p.known
    one = policy(wired=1)
    one.update(charger_sample(CpState.B))
    assert one.known  # a 1-phase wiring leaves nothing to learn
