"""The library's meter scenarios under the real controller: a sub-distribution meter and a
separate PV inverter meter (``scenarios/subdistribution_meter.toml``,
``scenarios/pv_separate_inverter.toml``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fuseguard.scenario.config import Scenario, load_scenario, loads_scenario
from fuseguard.scenario.metrics import OVERLOAD_TOL_A
from fuseguard.scenario.recorder import Timeline
from fuseguard.scenario.runner import simulate
from fuseguard.scenario.schedule import Schedule

SCENARIOS = Path(__file__).parents[2] / "scenarios"
SUBDISTRIBUTION = SCENARIOS / "subdistribution_meter.toml"
PV_INVERTER = SCENARIOS / "pv_separate_inverter.toml"
GARAGE = ("g1", "g2", "g3")


def _draw(tl: Timeline, chargers: tuple[str, ...], i: int) -> float:
    """Per-phase current of 3-phase cars at ``chargers`` in tick ``i``."""
    return float(sum(tl.charger_a[i][tl.charger_ids.index(c)] for c in chargers))


def _ticks(tl: Timeline, start_s: float, end_s: float) -> list[int]:
    return [i for i in range(tl.n) if start_s <= tl.t_s[i] < end_s]


def _fault_windows(sc: Scenario, device: str) -> list[tuple[float, float]]:
    return [
        (ev.at_s, ev.at_s + ev.fault.duration_s)
        for ev in sc.events
        if ev.fault is not None and ev.fault.device == device
    ]


def _shortened(path: Path, duration_s: float) -> Scenario:
    """The library scenario up to ``duration_s`` (past its faults), to keep the suite fast."""
    sc = load_scenario(path)
    assert all(ev.at_s + (ev.fault.duration_s if ev.fault else 0) < duration_s for ev in sc.events)
    return sc.model_copy(update={"site": sc.site.model_copy(update={"duration_s": duration_s})})


def test_subdistribution_meter_falls_back_on_the_garage_alone_without_overload() -> None:
    sc = _shortened(SUBDISTRIBUTION, 4560)
    result = simulate(sc, compute_optimum=False)
    rep, tl = result.report, result.timeline
    assert tl is not None
    # no overload beyond the rounding of a load that rises between two sub-meter readings
    assert rep["max_overshoot_a"] <= OVERLOAD_TOL_A
    assert rep["overload_as"]["total"] < 0.05
    garage = sc.circuit_tree["garage"]
    meter = next(c.meter for c in sc.circuits if c.id == "garage")
    assert meter is not None
    fallback_a = sc.site.meter_fallback_a
    assert fallback_a is not None
    windows = _fault_windows(sc, "meter:garage")
    assert (
        [f["device"] for f in rep["fallback"]]
        == ["meter:garage"] * len(windows)
        == ["meter:garage"] * 2
    )
    schedule = Schedule(sc)
    for (start, end), fault in zip(windows, rep["fallback"], strict=True):
        assert fault["fallback_s"] is not None
        assert fault["fallback_s"] <= meter.stale_after_s + 3
        held = _ticks(tl, start + fault["fallback_s"], end)
        assert held
        for i in held:
            t = float(tl.t_s[i])
            ev_a = _draw(tl, GARAGE, i)
            # the garage's cars together at FallbackCurrentLimit, whatever its load does
            assert ev_a <= fallback_a + OVERLOAD_TOL_A, t
            assert (schedule.base_a(t, "garage") + ev_a).all_le(garage.fuse), t
            # main is not on a fallback: the yard car charges on
            assert _draw(tl, ("yard",), i) > fallback_a - 1, t
    # with its meter the garage's cars share more than a 16 A assumption would leave them (24 A)
    before = _ticks(tl, 1800, 2700)
    assert min(_draw(tl, GARAGE, i) for i in before) > 30


def _garage_energy_wh(report: dict[str, Any]) -> float:
    per_car = report["energy_delivered_wh"]["per_car"]
    return float(sum(v for k, v in per_car.items() if k.split("@")[0] in GARAGE))


def test_subdistribution_meter_measured_load_beats_the_assumed_one() -> None:
    # the first half hour (before the faults), with its meter and with the 16 A assumption alone
    text = SUBDISTRIBUTION.read_text(encoding="utf-8").replace(
        "duration_s = 7200", "duration_s = 1800"
    )
    text = text[: text.index("[[events]]")]
    meter_line = "meter = { period_s = 2, stale_after_s = 10 }\n"
    assert meter_line in text
    metered = simulate(loads_scenario(text), compute_optimum=False, keep_timeline=False).report
    assumed = simulate(
        loads_scenario(text.replace(meter_line, "")), compute_optimum=False, keep_timeline=False
    ).report
    assert _garage_energy_wh(metered) > 1.2 * _garage_energy_wh(assumed)
    assert assumed["overload_as"]["total"] == 0.0


def test_pv_separate_inverter_keeps_pv_charging_through_a_pv_meter_outage() -> None:
    sc = _shortened(PV_INVERTER, 7200)
    result = simulate(sc, compute_optimum=False)
    rep, tl = result.report, result.timeline
    assert tl is not None
    assert rep["overload_as"]["total"] == 0.0
    assert rep["max_overshoot_a"] == 0.0
    faults = {f["device"]: f for f in rep["fallback"]}
    assert set(faults) == {"pv:meter", "meter"}
    # PV meter lost: the PV modes go on with the grid meter alone (the site stays compliant)
    assert faults["pv:meter"]["fallback_s"] == 0.0
    ((start, end),) = _fault_windows(sc, "pv:meter")
    pv_draw = [_draw(tl, ("pv1", "pv2"), i) for i in _ticks(tl, start, end)]
    assert sum(a > 0 for a in pv_draw) > 0.9 * len(pv_draw)
    # grid meter lost while the PV meter is healthy: the meter-loss fallback all the same
    assert faults["meter"]["fallback_s"] is not None
    ((start, end),) = _fault_windows(sc, "meter")
    budget = Schedule(sc).meter_fallback_a(start)
    for i in _ticks(tl, start + faults["meter"]["fallback_s"], end):
        assert float(tl.ev_a[i].max()) <= budget + OVERLOAD_TOL_A
    # the PV cars charged from the sun
    energy = rep["energy_delivered_wh"]["per_car"]
    assert energy["pv1@900"] > 1000
    assert energy["pv2@1800"] > 1000
