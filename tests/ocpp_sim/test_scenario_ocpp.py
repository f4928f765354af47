"""Scenarios with ``driver = "ocpp"`` chargers: config keys, the in-process OCPP adapter, and the
three OCPP library scenarios."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fuseguard.control.ports import DeviceResponseError
from fuseguard.model.clock import VirtualClock
from fuseguard.model.faults import DeviceFault
from fuseguard.scenario.adapters import ConnectorCharger, OcppConnectorCharger, charger_adapter
from fuseguard.scenario.config import ScenarioError, load_scenario, loads_scenario
from fuseguard.scenario.recorder import Timeline
from fuseguard.scenario.runner import simulate
from fuseguard.sim.chargepoint import ChargePoint
from fuseguard.sim.vehicle import SimVehicle

BASE = """
[site]
name = "t"
fuse_a = 40
duration_s = 600
[[chargers]]
id = "cp1"
{extra}
[[chargers]]
id = "cp2"
"""


def test_ocpp_keys_parse_and_pick_the_ocpp_adapter() -> None:
    sc = loads_scenario(
        BASE.format(extra='driver = "ocpp"\nmeter_interval_s = 60\nprofile_delay_s = 5')
    )
    cp1, cp2 = sc.chargers
    assert (cp1.driver, cp1.meter_interval_s, cp1.profile_delay_s) == ("ocpp", 60, 5)
    assert cp2.driver == "bender"
    clock = VirtualClock()
    a1 = charger_adapter(ChargePoint(name="cp1"), cp1, sc.site, clock)
    a2 = charger_adapter(ChargePoint(name="cp2"), cp2, sc.site, clock)
    assert isinstance(a1, OcppConnectorCharger)
    assert a1.charge_point.limit_delay_s == 5
    assert type(a2) is ConnectorCharger


@pytest.mark.parametrize(
    ("extra", "events", "match"),
    [
        ("meter_interval_s = 60", "", "need driver = ocpp"),
        ('driver = "modbus"', "", "driver"),
        (
            "",
            '[[events]]\nat_s = 10\nfault = { device = "cp2", kind = "rejects_profiles", '
            "duration_s = 10 }",
            "not simulated on 'cp2'",
        ),
    ],
)
def test_ocpp_key_problems(extra: str, events: str, match: str) -> None:
    with pytest.raises(ScenarioError, match=match):
        loads_scenario(BASE.format(extra=extra) + events)


def _charging() -> ChargePoint:
    cp = ChargePoint(name="cp", max_current_a=32.0, limit_a=0.0)
    cp.plug_in(SimVehicle(max_current_a=32.0, response_delay_s=0.0, soc=0.2), 0.0)
    return cp


async def test_readings_refresh_only_every_meter_interval_and_limits_apply_late() -> None:
    cp = _charging()
    adapter = OcppConnectorCharger(
        cp, clock=VirtualClock(), meter_interval_s=10.0, profile_delay_s=2.0
    )
    await adapter.set_current_limit(16)
    cp.advance(1.0)
    assert cp.offered_a == 0.0  # the profile is not in force yet
    cp.advance(2.0)
    cp.advance(2.5)
    assert cp.draw_a == 16.0
    first = await adapter.read()
    assert first.current_a.l1 == 16.0
    await adapter.set_current_limit(8)
    cp.advance(5.0)
    cp.advance(5.5)
    assert cp.draw_a == 8.0
    stale = await adapter.read()
    assert stale.current_a.l1 == 16.0  # no MeterValues yet
    assert stale.limit_a == 8.0  # the state itself is live
    cp.advance(12.6)
    fresh = await adapter.read()
    assert fresh.current_a.l1 == 8.0


async def test_rejects_profiles_refuses_every_limit() -> None:
    cp = _charging()
    adapter = OcppConnectorCharger(cp, clock=VirtualClock())
    adapter.set_fault(DeviceFault.REJECTS_PROFILES)
    with pytest.raises(DeviceResponseError, match="Rejected"):
        await adapter.set_current_limit(10)
    assert adapter.rejected == 1
    adapter.set_fault(None)
    await adapter.set_current_limit(10)
    assert cp.limit_a == 10.0


@pytest.mark.parametrize(
    "name", ["ocpp_garage_mixed", "ocpp_meter_values_60s", "ocpp_rejects_profiles"]
)
def test_library_ocpp_scenarios_load(name: str) -> None:
    sc = load_scenario(Path("scenarios") / f"{name}.toml")
    assert any(ch.driver == "ocpp" for ch in sc.chargers)


def _overload_outside_steps(timeline: Timeline, window_s: float) -> list[float]:
    """Ticks with EV-attributable overload more than ``window_s`` after the last step (a tick
    where the limit drops or the non-EV load jumps by more than 0.5 A)."""
    grid = timeline.grid_a[: timeline.n]
    ev = timeline.ev_a[: timeline.n]
    limit = timeline.limit_a[: timeline.n]
    non_ev = grid - ev
    last_step = -1e9
    outside: list[float] = []
    for i in range(1, timeline.n):
        if limit[i] < limit[i - 1] or (non_ev[i] - non_ev[i - 1]).max() > 0.5:
            last_step = float(timeline.t_s[i])
        over = max(0.0, float((grid[i] - np.maximum(limit[i], non_ev[i])).max()))
        if over > 0.05 and timeline.t_s[i] - last_step > window_s:
            outside.append(float(timeline.t_s[i]))
    return outside


def test_meter_values_every_60_s_overload_only_until_a_step_can_take_effect() -> None:
    """Readings every 60 s, limits in force 5 s after the write: the only overload is right
    after the base-load step, for the meter period plus the profile delay (nothing can act
    faster); no flapping, no energy lost to stale readings."""
    sc = load_scenario(Path("scenarios") / "ocpp_meter_values_60s.toml")
    result = simulate(sc, "fuseguard", compute_optimum=False)
    assert result.timeline is not None
    delay_s = max(ch.profile_delay_s for ch in sc.chargers)
    assert _overload_outside_steps(result.timeline, sc.site.meter_period_s + delay_s) == []
    report = result.report
    assert report["max_cycles_per_car_hour"] <= 1.0
    # one step of +11 A, lowered within the meter period plus the delay, on three phases
    assert report["overload_as"]["total"] <= 3 * 11 * (sc.site.meter_period_s + delay_s)


def test_a_charge_point_that_rejects_profiles_is_an_uncontrollable_load() -> None:
    sc = load_scenario(Path("scenarios") / "ocpp_rejects_profiles.toml")
    result = simulate(sc, "fuseguard", compute_optimum=False)
    assert result.report["overload_as"]["total"] == 0.0
    timeline = result.timeline
    assert timeline is not None
    ids = timeline.charger_ids
    t = timeline.t_s[: timeline.n]
    during = (t > 960) & (t < 2700)  # the fault runs 900-2700 s
    # cp1 (a 32 A charger) is reserved at its max: the 40 A fuse leaves the others nothing
    others = timeline.setpoint_a[: timeline.n][during][:, [ids.index("cp2"), ids.index("bender-1")]]
    assert others.max() == 0.0
    after = t > 2760
    assert timeline.setpoint_a[: timeline.n][after][:, ids.index("cp2")].max() > 0.0


async def test_a_charge_point_that_ignores_its_limit_reports_itself_uncontrollable() -> None:
    cp = _charging()
    adapter = OcppConnectorCharger(cp, clock=VirtualClock(), meter_interval_s=10.0)
    await adapter.set_current_limit(16)
    cp.advance(1.0)
    adapter.set_fault(DeviceFault.IGNORES_LIMIT)
    await adapter.set_current_limit(8)
    seen = []
    for t in range(2, 70, 5):
        cp.advance(float(t))
        seen.append((await adapter.read()).uncontrollable)
    assert seen[0] is None  # within two meter intervals + 5 s of the write: not judged
    assert seen[-1] is not None and "ignores" in seen[-1]
    adapter.set_fault(None)
    await adapter.set_current_limit(8)
    for t in range(70, 120, 5):
        cp.advance(float(t))
        last = await adapter.read()
    assert last.uncontrollable is None
