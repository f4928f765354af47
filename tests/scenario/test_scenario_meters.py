"""Scenario meters beyond the grid meter: a sub-circuit's meter and the PV meter (the plumbing).

The library scenarios that use them run in ``test_scenario_meter_library.py``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fuseguard.control.types import MeterTiming
from fuseguard.model.clock import VirtualClock
from fuseguard.model.faults import DeviceFault
from fuseguard.model.phases import Phases
from fuseguard.scenario.config import ScenarioError, parse_scenario
from fuseguard.scenario.fuseguard_policy import FuseguardPolicy
from fuseguard.scenario.meters import ScenarioMeters, circuit_loads
from fuseguard.scenario.runner import _Run, simulate
from fuseguard.scenario.schedule import Schedule
from fuseguard.scenario.site import pv_config, scenario_controller_config
from fuseguard.sim.site import PvPlant, SiteModel

GARAGE_METER = {"period_s": 2, "stale_after_s": 8}


def _garage(**extra: Any) -> dict[str, Any]:
    return {"id": "garage", "fuse_a": 25, **extra}


def _metered(
    *,
    meter: dict[str, Any] | None = None,
    estimate_a: float | None = None,
    garage_load: list[Any] | None = None,
    events: list[dict[str, Any]] | None = None,
    pv: dict[str, Any] | None = None,
    duration_s: float = 900,
) -> dict[str, Any]:
    """A 63 A main with a 25 A garage (two chargers) and the given garage meter and load."""
    garage = _garage()
    if meter is not None:
        garage["meter"] = meter
    if estimate_a is not None:
        garage["non_ev_load_a"] = estimate_a
    data: dict[str, Any] = {
        "site": {"name": "metered", "fuse_a": 63, "duration_s": duration_s},
        "base_load": {"points": [[0, [10, 10, 10]]]},
        "circuits": [garage],
        "circuit_loads": [{"circuit": "garage", "points": garage_load or [[0, [5, 5, 5]]]}],
        "chargers": [{"id": "g1", "circuit": "garage"}, {"id": "g2", "circuit": "garage"}],
        "cars": [
            {"charger": c, "arrive_s": 0, "depart_s": duration_s, "energy_wh": 1e6}
            for c in ("g1", "g2")
        ],
        "events": events or [],
    }
    if pv is not None:
        data["pv"] = pv
    return data


# --- config -----------------------------------------------------------------------------------


def test_scenario_meters_are_virtual_named_and_timed_through_the_translation() -> None:
    pv = {"peak_w": 5000, "sunrise_s": 0, "sunset_s": 3600, "meter": {"period_s": 3}}
    sc = parse_scenario(_metered(meter=GARAGE_METER, pv=pv))
    meter = sc.circuits[0].meter
    assert meter is not None
    assert (meter.driver, meter.alias, meter.period_s) == ("virtual", "garage", 2)
    pv_meter = pv_config(sc)
    assert pv_meter is not None
    assert (pv_meter.driver, pv_meter.alias, pv_meter.period_s) == ("virtual", "pv", 3)
    config = scenario_controller_config(sc)
    assert [(c.id, c.meter) for c in config.circuits] == [
        ("main", None),
        ("garage", "virtual:garage"),
    ]
    assert config.circuit_meter_timing == {"garage": MeterTiming(period_s=2, stale_after_s=8)}
    assert config.pv_meter_timing == MeterTiming(period_s=3, stale_after_s=10)
    assert sc.meter_devices == ("meter", "meter:garage", "pv:meter")


def test_an_unmetered_circuit_carries_its_assumed_load() -> None:
    sc = parse_scenario(_metered(estimate_a=12))
    garage = scenario_controller_config(sc).circuits[1]
    assert (garage.meter, garage.non_ev_load_a) == (None, Phases.uniform(12))


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"estimate_a": -1}, "assumed non-EV load must be >= 0"),
        ({"meter": {"driver": "modbus", "model": "sdm630"}}, "driver must be 'virtual'"),
        (
            {
                "events": [
                    {
                        "at_s": 1,
                        "fault": {"device": "meter:garage", "kind": "offline", "duration_s": 5},
                    }
                ]
            },
            "unknown fault device 'meter:garage'",
        ),
        (
            {
                "meter": GARAGE_METER,
                "events": [
                    {
                        "at_s": 1,
                        "fault": {
                            "device": "meter:garage",
                            "kind": "stuck_contactor",
                            "duration_s": 5,
                        },
                    }
                ],
            },
            "no contactor",
        ),
        (
            {
                "events": [
                    {"at_s": 1, "fault": {"device": "pv:meter", "kind": "offline", "duration_s": 5}}
                ]
            },
            "unknown fault device 'pv:meter'",
        ),
        (
            {
                "events": [
                    {
                        "at_s": 1,
                        "base_step": {"circuit": "attic", "delta_a": [1, 1, 1], "duration_s": 5},
                    }
                ]
            },
            "unknown circuit 'attic'",
        ),
        (
            {"pv": {"peak_w": 1, "sunrise_s": 0, "sunset_s": 9, "meter": {"driver": "sunspec"}}},
            "pv.meter is simulated in process",
        ),
    ],
)
def test_scenario_meter_mistakes_are_refused(change: dict[str, Any], needle: str) -> None:
    with pytest.raises(ScenarioError, match=needle):
        parse_scenario(_metered(**change))


@pytest.mark.parametrize("circuit", ["main", "attic"])
def test_circuit_loads_need_a_sub_circuit(circuit: str) -> None:
    data = _metered()
    data["circuit_loads"][0]["circuit"] = circuit
    with pytest.raises(ScenarioError, match="is not a sub-circuit"):
        parse_scenario(data)


# --- the site: loads, meters, schedule --------------------------------------------------------


def test_sub_circuit_loads_and_steps_count_on_their_whole_path() -> None:
    step = {"at_s": 100, "base_step": {"circuit": "garage", "delta_a": [4, 0, 0], "duration_s": 50}}
    sc = parse_scenario(_metered(garage_load=[[0, [2, 3, 4]], [200, [6, 3, 4]]], events=[step]))
    schedule = Schedule(sc)
    assert schedule.base_a(0, "garage") == Phases(2, 3, 4)
    assert schedule.base_a(120, "garage") == Phases(2 + 2.4 + 4, 3, 4)
    assert schedule.base_a(120) == Phases(10 + 8.4, 13, 14)  # main: the building + the garage
    assert schedule.base_a(200) == Phases(16, 13, 14)
    site = SiteModel(VirtualClock())
    site.add_circuit("garage")
    loads = circuit_loads(sc, site)
    assert list(loads) == ["garage"]
    site.tick()
    assert site.current_a("garage") == Phases(2, 3, 4)


def test_a_sub_meter_refreshes_at_its_own_period_and_the_pv_meter_reads_the_inverter() -> None:
    pv = {"peak_w": 6900, "sunrise_s": 0, "sunset_s": 7200, "meter": {"period_s": 3}}
    sc = parse_scenario(
        _metered(meter=GARAGE_METER, garage_load=[[0, [0, 0, 0]], [10, [10, 10, 10]]], pv=pv)
    )
    clock = VirtualClock()
    site = SiteModel(clock)
    site.add_circuit("garage")
    circuit_loads(sc, site)
    plant = PvPlant(peak_w=6900, sunrise_s=0, sunset_s=7200)
    site.add(plant)
    meters = ScenarioMeters.build(sc, site, plant, clock)
    assert meters.device("meter") is meters.grid
    assert meters.device("meter:garage") is meters.circuits["garage"]
    assert meters.device("pv:meter") is meters.pv
    assert meters.device("g1") is None
    garage = meters.circuits["garage"]
    pv_meter = meters.pv
    assert pv_meter is not None

    async def reads() -> list[tuple[float, float, float]]:
        out = []
        for _ in range(4):
            site.tick()
            g = await garage.read()
            p = await pv_meter.read()
            assert g.current_a is not None
            out.append((site.t_s, g.current_a.l1, p.power_w))
            await clock.run_until(clock.monotonic() + 1.0)
        return out

    rows = asyncio.run(reads())
    # the garage meter shows 0 A at t=0 and t=1, the load at t=2 (its period), held at t=3
    assert [round(r[1], 6) for r in rows] == [0.0, 0.0, 2.0, 2.0]
    # production is negative power, refreshed every 3 s
    assert rows[0][2] == pytest.approx(0.0, abs=1e-9)
    assert rows[2][2] == rows[0][2]
    assert rows[3][2] == pytest.approx(-plant.power_w)
    assert rows[3][2] < 0
    garage.set_fault(DeviceFault.OFFLINE)
    assert garage.fault is DeviceFault.OFFLINE


# --- the controller uses them ---------------------------------------------------------------


def _garage_energy_wh(report: dict[str, Any]) -> float:
    per_car = report["energy_delivered_wh"]["per_car"]
    return float(sum(v for k, v in per_car.items() if k.startswith("g")))


def test_measured_garage_load_lets_cars_use_more_than_the_estimate() -> None:
    metered = simulate(
        parse_scenario(_metered(meter=GARAGE_METER, estimate_a=12)),
        compute_optimum=False,
        keep_timeline=False,
    ).report
    estimated = simulate(
        parse_scenario(_metered(estimate_a=12)), compute_optimum=False, keep_timeline=False
    ).report
    unguarded = simulate(
        parse_scenario(_metered()), compute_optimum=False, keep_timeline=False
    ).report
    # 25 A garage, 5 A measured: 20 A for the two cars; assumed 12 A: 13 A for them
    assert _garage_energy_wh(metered) > 1.3 * _garage_energy_wh(estimated)
    assert metered["overload_as"]["per_circuit"]["garage"] == {"L1": 0.0, "L2": 0.0, "L3": 0.0}
    assert estimated["overload_as"]["total"] == 0.0
    # no meter and no assumption: the garage's own load is not seen and its fuse is overloaded
    assert unguarded["overload_as"]["per_circuit"]["garage"]["L1"] > 1000


def test_a_lost_sub_meter_holds_that_circuits_cars_at_the_fallback() -> None:
    fault = {"at_s": 300, "fault": {"device": "meter:garage", "kind": "offline", "duration_s": 300}}
    step = {
        "at_s": 400,
        "base_step": {"circuit": "garage", "delta_a": [6, 0, 0], "duration_s": 100},
    }
    data = _metered(meter=GARAGE_METER, events=[fault, step])
    data["site"]["meter_fallback_a"] = 10
    result = simulate(parse_scenario(data), compute_optimum=False)
    rep = result.report
    (fb,) = rep["fallback"]
    assert fb["device"] == "meter:garage"
    assert fb["fallback_s"] is not None
    assert fb["fallback_s"] <= GARAGE_METER["stale_after_s"] + 3
    # the 6 A step in the blind phase: the cars held at 10 A together, no overload
    assert rep["overload_as"]["total"] == 0.0
    tl = result.timeline
    assert tl is not None
    held = [
        float(tl.charger_a[i].sum())
        for i in range(tl.n)
        if 300 + fb["fallback_s"] <= tl.t_s[i] < 600
    ]
    before = [float(tl.charger_a[i].sum()) for i in range(tl.n) if 200 <= tl.t_s[i] < 300]
    assert held
    assert max(held) <= 10 + 0.05
    assert min(before) > 15  # normal: 25 A fuse - 5 A measured


def test_the_pv_meter_is_read_by_the_controller() -> None:
    data = {
        "site": {"fuse_a": 35, "duration_s": 600},
        "base_load": {"points": [[0, [2, 2, 2]]]},
        "pv": {"peak_w": 9000, "sunrise_s": 0, "sunset_s": 1200, "meter": {"period_s": 2}},
        "chargers": [{"id": "cp1", "mode": "pv"}],
        "cars": [{"charger": "cp1", "arrive_s": 0, "depart_s": 600, "energy_wh": 1e5}],
    }
    run = _Run(parse_scenario(data), "fuseguard", keep_timeline=False)
    policy = run.policy
    assert isinstance(policy, FuseguardPolicy)
    seen: list[float | None] = []
    policy.controller.subscribe(lambda status: seen.append(status.pv_power_w))
    asyncio.run(run.run())
    produced = [w for w in seen if w is not None]
    assert produced
    assert min(produced) < -8000  # production is negative power; near the 9 kW peak at 600 s


def test_fault_devices_never_clash_with_a_circuit_named_meter() -> None:
    data = _metered(meter=GARAGE_METER, duration_s=300)
    data["circuits"][0]["id"] = "meter"
    data["circuit_loads"][0]["circuit"] = "meter"
    for charger in data["chargers"]:
        charger["circuit"] = "meter"
    data["site"]["meter_fallback_a"] = 10
    data["events"] = [
        {"at_s": 60, "fault": {"device": "meter", "kind": "offline", "duration_s": 60}},
        {"at_s": 180, "fault": {"device": "meter:meter", "kind": "offline", "duration_s": 60}},
    ]
    sc = parse_scenario(data)
    assert sc.meter_devices == ("meter", "meter:meter")
    rep = simulate(sc, compute_optimum=False).report
    grid, sub = rep["fallback"]
    assert (grid["device"], sub["device"]) == ("meter", "meter:meter")
    assert grid["fallback_s"] is not None
    assert sub["fallback_s"] is not None
    assert rep["overload_as"]["total"] == 0.0
