"""Scenarios with ``driver = "ocpp"`` chargers: config keys, the in-process OCPP adapter, and the
three OCPP library scenarios."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fuseguard.control.ports import DeviceResponseError
from fuseguard.model.clock import VirtualClock
from fuseguard.model.faults import DeviceFault
from fuseguard.scenario.adapters import ConnectorCharger
from fuseguard.scenario.config import Scenario, ScenarioError, load_scenario, loads_scenario
from fuseguard.scenario.ocpp_adapter import OcppConnectorCharger, charger_adapter
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
    assert (cp1.status_delay_s, cp1.triggers) == (2.0, True)  # the defaults
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
        ("status_delay_s = 1", "", "need driver = ocpp"),
        ("triggers = false", "", "need driver = ocpp"),
        ('driver = "ocpp"\nstatus_delay_s = -1', "", "status_delay_s"),
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


def _steps(cp: ChargePoint, adapter: OcppConnectorCharger, until_s: float, t0_s: float) -> None:
    """The site's ticks (every 0.5 s) from after ``t0_s`` to ``until_s``: the core moves on,
    the adapter looks at it after each (``SiteModel.on_tick``)."""
    t = t0_s
    while t < until_s - 1e-9:
        t += 0.5
        cp.advance(t)
        adapter.on_tick(t)


async def test_state_reported_late_readings_only_with_meter_values_limits_apply_late() -> None:
    cp = _charging()
    adapter = OcppConnectorCharger(
        cp, clock=VirtualClock(), meter_interval_s=10.0, profile_delay_s=2.0, triggers=False
    )
    await adapter.set_current_limit(16)
    _steps(cp, adapter, 1.0, 0.0)
    assert cp.offered_a == 0.0  # the profile is not in force yet
    _steps(cp, adapter, 3.5, 1.0)
    assert cp.draw_a == 16.0  # drawing since 2.0 s
    early = await adapter.read()
    assert (early.cp_state.charging, early.current_a.l1) == (False, 0.0)  # not notified yet
    _steps(cp, adapter, 4.0, 3.5)
    started = await adapter.read()  # StatusNotification 2 s after the start: no currents yet
    assert started.cp_state.charging
    assert (started.current_a.l1, started.measured_age_s) == (0.0, 4.0)
    _steps(cp, adapter, 10.0, 4.0)
    first = await adapter.read()  # MeterValues 10 s into the transaction
    assert (first.current_a.l1, first.measured_age_s) == (16.0, 0.0)
    await adapter.set_current_limit(8)
    _steps(cp, adapter, 15.0, 10.0)
    assert cp.draw_a == 8.0
    stale = await adapter.read()
    assert (stale.current_a.l1, stale.measured_age_s) == (16.0, 5.0)  # no MeterValues yet
    assert stale.limit_a == 8.0  # the accepted profile is known at once
    _steps(cp, adapter, 20.0, 15.0)
    fresh = await adapter.read()
    assert fresh.current_a.l1 == 8.0
    assert (adapter.trigger_rounds, adapter.meter_values) == (0, 2)


async def test_an_offer_to_a_paused_car_is_followed_by_the_drivers_triggers() -> None:
    """As ``devices/ocpp/triggers.py``: status and MeterValues 3 s and 8 s after the offer was
    accepted (the second skipped when metered charging within 2 s)."""
    cp = _charging()
    adapter = OcppConnectorCharger(cp, clock=VirtualClock(), meter_interval_s=60.0)
    await adapter.set_current_limit(16)
    _steps(cp, adapter, 2.5, 0.0)
    assert cp.draw_a == 16.0
    assert (await adapter.read()).current_a.l1 == 0.0
    _steps(cp, adapter, 3.0, 2.5)
    asked = await adapter.read()  # the first round: status and currents, before the 4 s status
    assert asked.cp_state.charging
    assert (asked.current_a.l1, asked.measured_age_s) == (16.0, 0.0)
    assert adapter.trigger_rounds == 1
    _steps(cp, adapter, 8.0, 3.0)
    assert adapter.trigger_rounds == 2  # metered 5 s before: asked again
    assert (await adapter.read()).measured_age_s == 0.0
    _steps(cp, adapter, 30.0, 8.0)
    assert adapter.trigger_rounds == 2  # the Charging status came while rounds waited: none


async def test_a_car_that_starts_on_its_own_is_metered_2_s_after_its_charging_status() -> None:
    cp = ChargePoint(name="cp", max_current_a=32.0, limit_a=0.0)
    adapter = OcppConnectorCharger(cp, clock=VirtualClock(), meter_interval_s=60.0)
    await adapter.set_current_limit(16)  # no car yet: nothing to ask
    _steps(cp, adapter, 1.0, 0.0)
    cp.plug_in(SimVehicle(max_current_a=32.0, response_delay_s=0.0, soc=0.2), 1.0)
    _steps(cp, adapter, 4.5, 1.0)
    noticed = await adapter.read()  # Charging notified at 3.5 s, no MeterValues yet
    assert noticed.cp_state.charging and noticed.current_a.l1 == 0.0
    _steps(cp, adapter, 5.5, 4.5)
    metered = await adapter.read()
    assert metered.current_a.l1 == 16.0 and adapter.trigger_rounds == 1


async def test_without_remote_trigger_and_while_offline_nothing_is_asked() -> None:
    cp = _charging()
    silent = OcppConnectorCharger(cp, clock=VirtualClock(), meter_interval_s=60.0, triggers=False)
    await silent.set_current_limit(16)
    _steps(cp, silent, 20.0, 0.0)
    assert silent.trigger_rounds == 0
    assert (await silent.read()).current_a.l1 == 0.0  # nothing metered since the start
    cp2 = _charging()
    away = OcppConnectorCharger(cp2, clock=VirtualClock(), meter_interval_s=60.0)
    await away.set_current_limit(16)
    away.set_fault(DeviceFault.OFFLINE)
    _steps(cp2, away, 20.0, 0.0)
    assert (away.trigger_rounds, away.status_notifications) == (0, 0)
    away.set_fault(None)  # back: it boots, its status and MeterValues triggered at once
    back = await away.read()
    assert back.cp_state.charging and back.current_a.l1 == 16.0


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


def _first_hour(name: str) -> Scenario:
    """The library scenario ``name`` for its first hour, which holds all it prescribes: the
    base load's step up (1 201 s) and down (3 001 s) in ``ocpp_meter_values_60s``, the profile
    rejection (900-2 700 s) and 15 min after it in ``ocpp_rejects_profiles`` (round 14: 2 and
    1.5 h until then, 19.5 s of CPU for both tests, the hour after the events quiet)."""
    sc = load_scenario(Path("scenarios") / f"{name}.toml")
    ends = [ev.at_s + (ev.fault.duration_s if ev.fault else 0.0) for ev in sc.events]
    steps = [t for t, _ in sc.base_load.points[1:-1]]
    assert max([*ends, *steps]) < 3600.0 - 9 * 60.0  # 9 OCPP meter periods after the last
    return sc.model_copy(update={"site": sc.site.model_copy(update={"duration_s": 3600.0})})


def test_meter_values_every_60_s_overload_only_until_a_step_can_take_effect() -> None:
    """Readings every 60 s, limits in force 5 s after the write: the only overload is right
    after the base-load step, for the meter period plus the profile delay (nothing can act
    faster); no flapping, no energy lost to stale readings."""
    sc = _first_hour("ocpp_meter_values_60s")
    result = simulate(sc, "fuseguard", compute_optimum=False)
    assert result.timeline is not None
    delay_s = max(ch.profile_delay_s for ch in sc.chargers)
    assert _overload_outside_steps(result.timeline, sc.site.meter_period_s + delay_s) == []
    report = result.report
    assert report["max_cycles_per_car_hour"] <= 1.0
    # one step of +11 A, lowered within the meter period plus the delay, on three phases
    assert report["overload_as"]["total"] <= 3 * 11 * (sc.site.meter_period_s + delay_s)


def test_a_charge_point_that_rejects_profiles_is_an_uncontrollable_load() -> None:
    sc = _first_hour("ocpp_rejects_profiles")
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
