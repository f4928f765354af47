"""DemandCap on its own: a car drawing clearly less than offered is capped, then probed."""

from __future__ import annotations

from fuseguard.control.policies.demand import DemandCap, max_current_a
from fuseguard.control.types import ChargerSpec
from fuseguard.model.phases import Phases
from fuseguard.model.status import CpState

from .doubles import charger_sample, facts

SPEC = ChargerSpec(id="cp1", max_a=32)


def policy() -> DemandCap:
    return DemandCap(SPEC, margin_a=2.0, after_s=30.0, probe_s=300.0)


def drawing(amps: float, now: float, written_a: int = 32, cp: CpState = CpState.C):
    sample = charger_sample(cp, current_a=Phases(amps, amps, 0.0))
    return facts(now=now, sample=sample, written_a=written_a)


def test_capped_at_the_draw_plus_margin_after_underuse_after_s() -> None:
    p = policy()
    assert p.update(drawing(10.4, 100.0)) is None  # the clock starts
    assert p.update(drawing(10.4, 129.0)) is None
    assert p.update(drawing(10.4, 130.0)) == 13.0  # ceil(10.4 + 2)
    assert p.cap_a == 13.0


def test_the_cap_only_moves_down_and_never_below_the_minimum() -> None:
    p = policy()
    p.update(drawing(10.4, 100.0))
    p.update(drawing(10.4, 130.0))
    assert p.update(drawing(11.5, 131.0, written_a=13)) == 13.0  # not quite all of it: kept
    p.update(drawing(2.0, 140.0, written_a=13))
    assert p.update(drawing(2.0, 170.0, written_a=13)) == 6.0  # max(min_a, ceil(2 + 2))
    assert p.update(drawing(1.0, 200.0, written_a=13)) == 6.0


def test_lifted_when_the_car_takes_what_it_gets() -> None:
    p = policy()
    p.update(drawing(10.4, 100.0))
    p.update(drawing(10.4, 130.0))
    # written at the cap (13 A) and drawing 12 A >= 13 - 1: it wants more, lift the cap
    assert p.update(drawing(12.0, 131.0, written_a=14)) is None


def test_lifted_after_the_probe_time() -> None:
    p = policy()
    p.update(drawing(10.4, 100.0))
    p.update(drawing(10.4, 130.0))
    assert p.update(drawing(10.4, 429.0, written_a=13)) == 13.0
    assert p.update(drawing(10.4, 430.0, written_a=13)) is None  # probe again


def test_lifted_when_unplugged_kept_when_not_charging() -> None:
    p = policy()
    p.update(drawing(10.4, 100.0))
    p.update(drawing(10.4, 130.0))
    assert p.update(drawing(0.0, 140.0, cp=CpState.B)) == 13.0  # paused, still plugged in
    assert p.update(facts(now=141.0, sample=charger_sample(CpState.A))) is None


def test_no_cap_while_nothing_is_offered_or_the_clock_restarts() -> None:
    p = policy()
    assert p.update(drawing(0.0, 100.0, written_a=0)) is None
    p.update(drawing(10.0, 110.0))
    p.update(drawing(31.0, 120.0))  # draws what it gets: the underuse clock restarts
    assert p.update(drawing(10.0, 145.0)) is None
    assert p.update(drawing(10.0, 175.0)) == 12.0


def test_max_current_combines_spec_charger_cable_and_cap() -> None:
    spec = ChargerSpec(id="cp1", max_a=32, min_a=6)
    assert max_current_a(spec, None, None) == 32
    s = charger_sample(max_current_a=20.0, cable_rating_a=25.0)
    assert max_current_a(spec, s, None) == 20
    assert max_current_a(spec, s, 13.0) == 13
    # a reported limit below the minimum is not a limit (unknown/garbage): ignored
    assert max_current_a(spec, charger_sample(max_current_a=0.0), None) == 32
    assert max_current_a(ChargerSpec(id="x", max_a=32, min_a=8), None, 6.0) == 8
