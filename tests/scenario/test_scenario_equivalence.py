"""The simulator's shortcuts change no result (issue 18 item 2): every scenario gives the same
report with them as with the reference path, which allocates on every decision.

The shortcuts: the allocation session reuses its last answer for an equal input
(``AllocationSession.reuse``), an unchanged plug demand keeps its allocator form, and a plug whose
hysteresis state already holds is not copied. The first can be switched off, so the two runs
below differ exactly by it; the others are exact by construction (``tests/allocation/
test_session_memo.py``) and ``bench/simspeed.py --baseline-src`` compares whole builds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers_scenario import tiny
from test_scenario_repeatable import comparable

from fuseguard.allocation.session import AllocationSession
from fuseguard.scenario.config import Scenario, load_scenario
from fuseguard.scenario.runner import simulate

ROOT = Path(__file__).resolve().parents[2]


def _library(name: str, duration_s: float) -> Scenario:
    sc = load_scenario(ROOT / "scenarios" / f"{name}.toml")
    return sc.model_copy(update={"site": sc.site.model_copy(update={"duration_s": duration_s})})


def _quiet_then_busy() -> Scenario:
    """Flat load, nobody home for a while (the shortcut's case), then cars, a fault, a step."""
    chargers = [{"id": "cp1", "max_a": 32}, {"id": "cp2", "max_a": 16, "rotation": "L3L1L2"}]
    cars = [
        {"charger": "cp1", "arrive_s": 400, "depart_s": 1000, "energy_wh": 900, "max_a": 16},
        {"charger": "cp2", "arrive_s": 450, "depart_s": 1400, "energy_wh": 50000, "phases": 1},
    ]
    events = [
        {"at_s": 700, "base_step": {"delta_a": [9, 0, 0], "duration_s": 90}},
        {"at_s": 900, "fault": {"device": "meter", "kind": "offline", "duration_s": 40}},
        {"at_s": 1100, "fault": {"device": "cp2", "kind": "stuck_contactor", "duration_s": 60}},
    ]
    return tiny(fuse_a=25, duration_s=1500, cars=cars, chargers=chargers, events=events)


SCENARIOS = {
    "quiet_then_busy": _quiet_then_busy,
    "charger_offline": lambda: _library("charger_offline", 900),
    "stuck_contactor": lambda: _library("stuck_contactor", 1300),
}


def _report(sc: Scenario) -> dict[str, Any]:
    return comparable(simulate(sc, compute_optimum=False, keep_timeline=False).report)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_shortcuts_change_no_report_number(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    sc = SCENARIOS[name]()
    fast = _report(sc)
    monkeypatch.setattr(AllocationSession, "reuse", False)
    reference = _report(sc)
    assert fast["energy_delivered_wh"]["total"] > 0
    assert fast == reference


def test_the_shortcut_is_taken_when_nothing_moves(monkeypatch: pytest.MonkeyPatch) -> None:
    """In the quiet part the allocator is not called every decision (else the test above would
    compare a path with itself)."""
    from fuseguard.allocation import session

    calls: list[int] = []
    real = session.allocate

    def counting(snapshot: Any) -> Any:
        calls.append(1)
        return real(snapshot)

    monkeypatch.setattr(session, "allocate", counting)
    sc = tiny(fuse_a=25, duration_s=300, cars=[])
    simulate(sc, compute_optimum=False, keep_timeline=False)
    assert 0 < len(calls) < 30  # about 300 decisions, most of them with nothing moved
