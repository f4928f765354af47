"""ChargeSession on its own: energy share and energy since plug-in, the end of a session."""

from __future__ import annotations

import math

from fuseguard.control.policies.session import ChargeSession
from fuseguard.control.types import ChargerSpec
from fuseguard.model.phases import Phases
from fuseguard.model.status import CpState

from .doubles import charger_sample, facts


def _at(now: float, amps: float, *, cp: CpState = CpState.C) -> object:
    sample = charger_sample(cp, Phases.uniform(amps), power_w=3 * 230.0 * amps)
    return facts(now=now, sample=sample)


def test_share_is_the_mean_per_phase_current_since_plug_in() -> None:
    s = ChargeSession(ChargerSpec(id="cp1"))
    assert s.share_a(0.0) is None and not s.active
    assert s.update(_at(100.0, 16.0)) is None  # type: ignore[arg-type]
    assert s.share_a(100.0) == 0.0  # just plugged in: nothing yet
    s.update(_at(1900.0, 0.0))  # type: ignore[arg-type]  # 16 A for 30 min, then paused
    s.update(_at(3700.0, 0.0))  # type: ignore[arg-type]  # paused for 30 min
    share = s.share_a(3700.0)
    assert share is not None and math.isclose(share, 8.0)
    assert math.isclose(s.delivered_wh, 3 * 230.0 * 16.0 * 0.5)
    assert s.plugged_s(3700.0) == 3600.0


def test_a_disconnected_car_ends_the_session_and_the_next_starts_from_zero() -> None:
    s = ChargeSession(ChargerSpec(id="cp1"))
    s.update(_at(100.0, 10.0))  # type: ignore[arg-type]
    s.update(_at(200.0, 10.0))  # type: ignore[arg-type]
    assert s.update(_at(300.0, 0.0, cp=CpState.A)) == 100.0  # type: ignore[arg-type]
    assert not s.active and s.delivered_wh == 0.0 and s.share_a(300.0) is None
    assert s.update(_at(400.0, 0.0, cp=CpState.A)) is None  # type: ignore[arg-type]
    s.update(_at(500.0, 6.0, cp=CpState.B))  # type: ignore[arg-type]
    assert s.active and s.share_a(500.0) == 0.0


def test_no_sample_keeps_the_session_and_negative_draws_count_as_zero() -> None:
    s = ChargeSession(ChargerSpec(id="cp1"))
    s.update(_at(0.0, -5.0))  # type: ignore[arg-type]
    assert s.update(facts(now=50.0, sample=None)) is None
    s.update(_at(100.0, 0.0))  # type: ignore[arg-type]
    assert s.active and s.share_a(100.0) == 0.0 and s.delivered_wh == 0.0
