"""A charger whose reads take seconds (the soak's ``charger:slow``): its sample is as old as the
read (docs/safety.md, "A slow read")."""

from __future__ import annotations

import pytest

from fuseguard.control.controller import ChargerSpec
from fuseguard.control.reading import ChargerReading
from fuseguard.model.phases import Phases
from fuseguard.model.status import CpState

from .doubles import charger_sample, config, plug

pytestmark = pytest.mark.usefixtures("errors_only_logs")


def test_a_slow_read_stands_for_its_start() -> None:
    spec = ChargerSpec(id="cp1")
    reading = ChargerReading(spec, config([spec]))
    reading.update(charger_sample(CpState.C, Phases.uniform(16.0)), 105.0, 5.0)
    assert reading.measured_age_s == 5.0
    assert reading.age_s(105.0) == 5.0 and reading.age_s(106.0) == 6.0
    reading.update(charger_sample(CpState.C, Phases.uniform(16.0)), 106.0, 0.2)
    assert reading.age_s(106.0) == 0.0  # a quick read stands for its arrival
    late = charger_sample(CpState.C, Phases.uniform(16.0), measured_age_s=8.0)
    reading.update(late, 107.0, 5.0)
    assert reading.measured_age_s == 8.0  # a charger's own older age stands


def test_a_raise_landing_during_a_slow_read_is_still_pending() -> None:
    """The soak's seed 3: a 5 s read begun before a raise to 32 A landed showed the car at
    16 A; dated at its arrival, the raise looked in force and not taken, so the car's climb on
    the meter was building load and the raise was cut back, then granted again (16 -> 32 -> 16
    A every ~26 s; a raise meeting a base step then overloaded for 5 s). Dated at its start,
    the car is expected at the raise until a read shows otherwise."""
    p = plug()
    sp = p.setpoint
    sp.written_a, sp.changed_at, sp.written_at = 32, 103.0, 103.0  # the raise landed at 103
    sp.changes.extend([(50.0, 16), (103.0, 32)])
    sp.setpoint_a = 32
    p.reading.update(charger_sample(CpState.C, Phases.uniform(16.0)), 105.0, 5.0)  # asked at 100
    f = p.facts(105.0)
    assert f.age_s == 5.0
    assert f.expected_a == Phases.uniform(32.0)  # taking its offer: the raise is pending
    assert f.unconfirmed_a == Phases.uniform(16.0)
