"""The simulated vehicle: response delay, phases, taper, full."""

from __future__ import annotations

import pytest

from fuseguard.model.phases import Phases
from fuseguard.sim.vehicle import SimVehicle


def test_response_delay_and_minimum_current() -> None:
    v = SimVehicle(phases=3, max_current_a=16, response_delay_s=2.0)
    v.signal(10, at_s=0.0)
    v.advance(1.9)
    assert v.current_a == 0
    v.advance(2.0)
    assert v.current_a == 10
    assert v.terminal_current_a() == Phases.uniform(10.0)
    v.signal(5, at_s=3.0)  # below 6 A: no charging
    v.advance(5.0)
    assert not v.requesting
    v.signal(32, at_s=6.0)
    v.advance(8.0)
    assert v.current_a == 16  # the car's own maximum


@pytest.mark.parametrize(("phases", "expected"), [(1, (8, 0, 0)), (2, (8, 8, 0)), (3, (8, 8, 8))])
def test_phases(phases: int, expected: tuple[float, float, float]) -> None:
    v = SimVehicle(phases=phases, response_delay_s=0)
    v.signal(8, 0)
    v.advance(0)
    assert v.terminal_current_a() == Phases.of(expected)


def test_taper_and_full() -> None:
    v = SimVehicle(max_current_a=16, taper_soc=0.8, soc=0.5, response_delay_s=0)
    v.signal(16, 0)
    v.advance(0)
    assert v.current_a == 16
    v.set_soc(0.9)
    v.advance(1)
    assert v.current_a == pytest.approx(8.0)
    v.set_soc(0.99)
    v.advance(2)
    assert v.full
    assert v.current_a == 0
    v.charge(10_000_000)
    assert v.soc == 1.0


def test_invalid_vehicle() -> None:
    with pytest.raises(ValueError, match="phases"):
        SimVehicle(phases=4)
    with pytest.raises(ValueError, match="soc"):
        SimVehicle(soc=1.5)
