"""Cheaper decisions change no decision (issue 18, round p6): with the per-plug reuse of policy
verdicts (``PlugControl.reuse``) every decision hands on the same setpoints and reasons, the
timeline (every tick's setpoints and currents) and the report are the same as with every policy
run on every decision. Scenarios with faults (offline and garbage chargers, a welded contactor,
a lost meter), load steps, phase learning, idle cars and departures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers_scenario import comparable, timeline_bytes, tiny

from fuseguard.control.controller import Controller
from fuseguard.control.plug import PlugControl
from fuseguard.scenario.config import Scenario, load_scenario
from fuseguard.scenario.runner import simulate

ROOT = Path(__file__).resolve().parents[2]
DECIDE = Controller.decide


def _library(name: str, duration_s: float) -> Scenario:
    sc = load_scenario(ROOT / "scenarios" / f"{name}.toml")
    return sc.model_copy(update={"site": sc.site.model_copy(update={"duration_s": duration_s})})


def _busy() -> Scenario:
    """Two cars and a full one on a small fuse: a load step, a lost meter, a welded contactor,
    a charger that goes offline and one that answers garbage."""
    chargers = [
        {"id": "cp1", "max_a": 32},
        {"id": "cp2", "max_a": 16, "rotation": "L3L1L2"},
        {"id": "cp3", "max_a": 16, "rotation": "L2L3L1"},
    ]
    cars = [
        {"charger": "cp1", "arrive_s": 100, "depart_s": 1500, "energy_wh": 2500, "max_a": 16},
        {"charger": "cp2", "arrive_s": 150, "depart_s": 1700, "energy_wh": 50000, "phases": 1},
        {"charger": "cp3", "arrive_s": 200, "depart_s": 1200, "energy_wh": 50, "max_a": 16},
    ]
    events = [
        {"at_s": 500, "base_step": {"delta_a": [9, 0, 0], "duration_s": 90}},
        {"at_s": 700, "fault": {"device": "meter", "kind": "offline", "duration_s": 40}},
        {"at_s": 800, "fault": {"device": "cp2", "kind": "stuck_contactor", "duration_s": 60}},
        {"at_s": 1000, "fault": {"device": "cp1", "kind": "offline", "duration_s": 60}},
        {"at_s": 1300, "fault": {"device": "cp2", "kind": "garbage", "duration_s": 30}},
    ]
    return tiny(fuse_a=25, duration_s=1800, cars=cars, chargers=chargers, events=events)


SCENARIOS = {
    "busy": _busy,
    "charger_offline": lambda: _library("charger_offline", 1500),
    "stuck_contactor": lambda: _library("stuck_contactor", 1300),
    "mixed_phases_rotation": lambda: _library("mixed_phases_rotation", 1800),
    "ocpp_meter_values_60s": lambda: _library("ocpp_meter_values_60s", 1500),
    "departures_announced": lambda: _library("departures_announced", 1800),
}


def _run(sc: Scenario, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, ...]:
    """The report, the timeline and every decision's setpoints and reasons."""
    decisions: list[tuple[tuple[str, int, str], ...]] = []

    def recording(self: Controller) -> None:
        DECIDE(self)
        w = self._writer
        decisions.append(tuple((pid, w[pid].setpoint_a, w[pid].reason) for pid in self._plugs))

    monkeypatch.setattr(Controller, "decide", recording)
    result = simulate(sc, compute_optimum=False, keep_timeline=True)
    return comparable(result.report), timeline_bytes(result), decisions


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_reused_verdicts_change_no_decision(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    sc = SCENARIOS[name]()
    judged = {"n": 0}
    judge = PlugControl._judge

    def counting(self: PlugControl, *args: Any) -> Any:
        judged["n"] += 1
        return judge(self, *args)

    monkeypatch.setattr(PlugControl, "_judge", counting)
    fast = _run(sc, monkeypatch)
    fast_judged = judged["n"]
    monkeypatch.setattr(PlugControl, "reuse", False)
    judged["n"] = 0
    reference = _run(sc, monkeypatch)
    assert fast[0]["energy_delivered_wh"]["total"] > 0
    assert len(fast[2]) > 100
    assert fast[0] == reference[0]
    assert fast[1] == reference[1]
    assert fast[2] == reference[2]
    assert fast_judged < judged["n"]  # the reuse was taken (else a path compared with itself)
