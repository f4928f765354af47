"""The charger-side watchdog in simulations (round 9): armed where the edge arms it.

The fuseguard policy starts the drivers before the controller runs, as the edge does; a charger
adapter's start programs the charger's own communication-loss fallback (the Bender driver's
registers 131/132; an OCPP charge point's safe profile and the lease of its live limit). While
the edge is alive the watchdog never fires, even with a timeout shorter than the rewrite
interval (the writer refreshes a Bender at a third of its timeout, the OCPP lease is renewed at a
third of it); when the edge can no longer reach a charger, that charger drops to its safe current
one timeout after the last write reached it, as a real one does.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers_scenario import tiny

from fuseguard.control.ports import (
    DeviceResponseError,
    SupportsLifecycle,
    SupportsWatchdog,
)
from fuseguard.model.clock import VirtualClock
from fuseguard.model.faults import DeviceFault
from fuseguard.scenario.adapters import ConnectorCharger
from fuseguard.scenario.config import Scenario, load_scenario
from fuseguard.scenario.jump import jump_timing
from fuseguard.scenario.ocpp_adapter import OcppConnectorCharger
from fuseguard.scenario.runner import SimulationResult, simulate
from fuseguard.scenario.site import scenario_controller_config
from fuseguard.sim.chargepoint import ChargePoint
from fuseguard.sim.vehicle import SimVehicle

ROOT = Path(__file__).resolve().parents[2]
SAFE_A = 6
CAR_A = 16
FAULT_AT_S = 400.0
FAULT_S = 120.0


def _one_charger(
    driver: str, timeout_s: int, kind: str = "offline", *, duration_s: float = 700.0
) -> Scenario:
    """One car at 16 A on a fuse with room for it; ``kind`` from 400 s for 120 s."""
    charger: dict[str, Any] = {"id": "cp1", "max_a": 32, "driver": driver}
    car = {"charger": "cp1", "arrive_s": 60, "depart_s": duration_s, "energy_wh": 100_000}
    return tiny(
        fuse_a=40,
        duration_s=duration_s,
        chargers=[charger],
        cars=[{**car, "max_a": CAR_A}],
        events=[
            {"at_s": FAULT_AT_S, "fault": {"device": "cp1", "kind": kind, "duration_s": FAULT_S}}
        ],
        site={"charger_safe_current_a": SAFE_A, "charger_safe_timeout_s": timeout_s},
    )


def _draw(result: SimulationResult, charger: str = "cp1") -> tuple[np.ndarray, np.ndarray]:
    tl = result.timeline
    assert tl is not None
    return tl.t_s[: tl.n], tl.charger_a[: tl.n][:, tl.charger_ids.index(charger)]


@pytest.mark.parametrize("driver", ["bender", "ocpp"])
@pytest.mark.parametrize("timeout_s", [9, 60])
def test_the_watchdog_fires_when_the_edge_stops_writing_and_never_while_it_is_alive(
    driver: str, timeout_s: int
) -> None:
    """9 s is below the 20 s rewrite interval: only the refresh (Bender) or the lease renewal
    (OCPP) at a third of the timeout keeps the charger on its limit while the edge is alive."""
    result = simulate(_one_charger(driver, timeout_s), compute_optimum=False)
    t, draw = _draw(result)
    alive = (t >= 100.0) & (t < FAULT_AT_S)  # ramped up to the car's 16 A by 100 s
    assert draw[alive].min() == CAR_A  # never on the safe current while the edge writes
    silent = (t > FAULT_AT_S + timeout_s + 1.0) & (t < FAULT_AT_S + FAULT_S)
    assert silent.any()
    assert np.all(draw[silent] == SAFE_A)  # fell back, and stayed there while unreachable
    # one timeout after the last write, which was at most one refresh before the fault
    refresh_s = timeout_s / 3
    early = (t >= FAULT_AT_S) & (t < FAULT_AT_S + timeout_s - refresh_s)
    assert np.all(draw[early] == CAR_A)
    (fault,) = result.report["fallback"]
    assert timeout_s - refresh_s <= fault["fallback_s"] <= timeout_s + 1.0
    back = (t >= FAULT_AT_S + FAULT_S + 20.0) & (t < 690.0)  # the car leaves at 700 s
    assert np.all(draw[back] == CAR_A)  # reachable again: written again, back on its limit
    assert result.report["overload_as"]["total"] == 0.0


def test_a_charge_point_that_refuses_the_lease_renewal_falls_back_to_its_safe_profile() -> None:
    """OCPP ``rejects_profiles``: the renewals are refused, the lease runs out after 9 s."""
    result = simulate(_one_charger("ocpp", 9, "rejects_profiles"), compute_optimum=False)
    t, draw = _draw(result)
    refused = (t > FAULT_AT_S + 10.0) & (t < FAULT_AT_S + FAULT_S)
    assert np.all(draw[refused] == SAFE_A)
    assert draw[(t >= 100.0) & (t < FAULT_AT_S)].min() == CAR_A
    assert result.report["overload_as"]["total"] == 0.0


def test_the_library_charger_offline_falls_back_one_timeout_after_the_last_write() -> None:
    """``scenarios/charger_offline.toml``: cp1, offline at 600 s while it charges at full
    power, is on its 6 A safe current 60 s after the last write reached it, which was at most
    one rewrite interval (20 s) before (it kept drawing its last limit before round 9)."""
    sc = load_scenario(ROOT / "scenarios" / "charger_offline.toml")
    sc = sc.model_copy(update={"site": sc.site.model_copy(update={"duration_s": 1300.0})})
    result = simulate(sc, compute_optimum=False)
    t, draw = _draw(result)
    assert draw[(t > 500.0) & (t < 600.0)].min() > sc.site.charger_safe_current_a
    offline = (t > 662.0) & (t < 1200.0)
    assert np.all(draw[offline] <= sc.site.charger_safe_current_a)
    (fault,) = [f for f in result.report["fallback"] if f["device"] == "cp1"]
    assert 40.0 <= fault["fallback_s"] <= 61.0
    assert result.report["overload_as"]["total"] == 0.0


def test_only_the_fuseguard_policy_arms_the_watchdog() -> None:
    """A baseline (another energy manager) does not program the fallback: its chargers keep
    their limit through a silence of any length."""
    result = simulate(
        _one_charger("bender", 9), "ten_second_equal", compute_optimum=False, keep_timeline=True
    )
    t, draw = _draw(result)
    assert np.all(draw[(t > FAULT_AT_S + 20.0) & (t < FAULT_AT_S + FAULT_S)] > SAFE_A)


async def test_the_adapters_arm_at_start_and_declare_their_refresh() -> None:
    clock = VirtualClock()
    cp = ChargePoint(name="cp1", max_current_a=32, limit_a=0.0)
    bender = ConnectorCharger(cp, clock=clock, safe_current_a=8, safe_timeout_s=9)
    assert isinstance(bender, SupportsLifecycle)
    assert isinstance(bender, SupportsWatchdog)
    assert bender.watchdog_refresh_s == 3.0  # a third of the timeout, as the Bender driver
    assert (cp.safe_current_a, cp.safe_timeout_s, bender.armed) == (0.0, 0.0, False)
    await bender.start()
    assert (cp.safe_current_a, cp.safe_timeout_s, bender.armed) == (8.0, 9.0, True)
    ocpp_cp = ChargePoint(name="cp2", max_current_a=32, limit_a=0.0)
    ocpp = OcppConnectorCharger(ocpp_cp, clock=clock, safe_timeout_s=60)
    assert ocpp.watchdog_refresh_s == math.inf  # the station renews the lease, not the writer
    assert ocpp.watchdog_cadence_s == 20.0
    ocpp.set_fault(DeviceFault.REJECTS_PROFILES)
    with pytest.raises(DeviceResponseError, match="Rejected"):
        await ocpp.start()  # the safe profile is refused too: not armed
    assert not ocpp.armed
    ocpp.set_fault(None)
    await ocpp.start()
    assert (ocpp_cp.safe_current_a, ocpp_cp.safe_timeout_s, ocpp.armed) == (6.0, 60.0, True)


async def test_the_lease_renewal_keeps_an_unchanged_limit_in_force() -> None:
    clock = VirtualClock()
    cp = ChargePoint(name="cp1", max_current_a=32, limit_a=0.0)
    cp.plug_in(SimVehicle.wanting(90_000, phases=3, max_current_a=16, name="car"), 0.0)
    ocpp = OcppConnectorCharger(cp, clock=clock, safe_timeout_s=9)
    await ocpp.start()
    await ocpp.set_current_limit(16)
    for t in range(1, 31):
        await clock.run_until(float(t))
        cp.advance(float(t))
        assert cp.offered_a == 16.0, t  # renewed every 3 s, never written again
    assert ocpp.renewals >= 9
    ocpp.set_fault(DeviceFault.OFFLINE)
    for t in range(31, 45):
        await clock.run_until(float(t))
        cp.advance(float(t))
    assert cp.watchdog_expired
    assert cp.offered_a == 6.0
    await ocpp.close()


def test_the_watchdog_cadences_are_cadences_of_the_orbit() -> None:
    sc = tiny(duration_s=600, site={"charger_safe_timeout_s": 21})
    timing = jump_timing(sc, scenario_controller_config(sc), 1.0, [0.0], [7.0, math.inf])
    assert timing is not None
    assert timing.period_s == 420.0  # lcm(60, 20, 7, ...)
    assert jump_timing(sc, scenario_controller_config(sc), 1.0, [0.0], [10.0 / 3]) is None
