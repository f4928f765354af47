"""The empty-site shortcut of the allocation session (``AllocationSession.idle_reuse``, issue 18
item 2, round 8) changes no decision: with it, every decision hands on the same setpoints and
reasons, the timeline (every tick's setpoints, currents and limits) and the report are the same
as with the allocator run on every decision. The scenario ramps its base load (so no input of
the allocator repeats and the site never jumps), has cars arrive and leave, and while the site
is empty moves every input the allocation reads: the flex limit, the EMS keep-alive (its
fallback), the meter (lost, then back), a charger (offline) and a load step; a car arrives
during the flex limit."""

from __future__ import annotations

from typing import Any

import pytest
from helpers_scenario import comparable, timeline_bytes

from fuseguard.allocation.session import AllocationSession
from fuseguard.control.controller import Controller
from fuseguard.scenario.config import Scenario, parse_scenario
from fuseguard.scenario.runner import simulate

DECIDE = Controller.decide
STEP = AllocationSession.step


def _scenario() -> Scenario:
    cars = [
        {"charger": "cp1", "arrive_s": 60, "depart_s": 300, "energy_wh": 50000, "max_a": 16},
        {"charger": "cp2", "arrive_s": 120, "depart_s": 280, "energy_wh": 800, "phases": 1},
        {"charger": "cp1", "arrive_s": 700, "depart_s": 860, "energy_wh": 50000, "max_a": 32},
    ]
    events = [
        {"at_s": 330, "flex": {"activation": True, "current_limit_a": 12, "fallback_a": 6}},
        {"at_s": 380, "keepalive": "stop"},
        {"at_s": 450, "fault": {"device": "meter", "kind": "offline", "duration_s": 40}},
        {"at_s": 520, "fault": {"device": "cp2", "kind": "offline", "duration_s": 60}},
        {"at_s": 600, "keepalive": "start"},
        {"at_s": 620, "base_step": {"delta_a": [14, 0, 0], "duration_s": 50}},
        {"at_s": 680, "flex": {"activation": True, "current_limit_a": 40, "fallback_a": 6}},
        {"at_s": 800, "flex": {"activation": False}},
    ]
    return parse_scenario(
        {
            "site": {"name": "idle_memo", "fuse_a": 32, "duration_s": 960},
            "base_load": {"points": [[0, [6, 5, 4]], [960, [18, 12, 9]]]},
            "chargers": [{"id": "cp1", "max_a": 32}, {"id": "cp2", "rotation": "L2L3L1"}],
            "cars": cars,
            "events": events,
        }
    )


def _run(monkeypatch: pytest.MonkeyPatch, reused: list[int]) -> tuple[Any, ...]:
    """The report, the timeline and every decision's setpoints and reasons."""
    decisions: list[tuple[tuple[str, int, str], ...]] = []

    def recording(self: Controller) -> None:
        DECIDE(self)
        w = self._writer
        decisions.append(tuple((pid, w[pid].setpoint_a, w[pid].reason) for pid in self._plugs))

    def counting(self: AllocationSession, *args: Any) -> Any:
        out = STEP(self, *args)
        reused.append(self.idle_reused)
        return out

    monkeypatch.setattr(Controller, "decide", recording)
    monkeypatch.setattr(AllocationSession, "step", counting)
    result = simulate(_scenario(), compute_optimum=False, keep_timeline=True)
    return comparable(result.report), timeline_bytes(result), decisions


def test_the_empty_site_shortcut_changes_no_decision(monkeypatch: pytest.MonkeyPatch) -> None:
    fast_reused: list[int] = []
    fast = _run(monkeypatch, fast_reused)
    monkeypatch.setattr(AllocationSession, "idle_reuse", False)
    ref_reused: list[int] = []
    reference = _run(monkeypatch, ref_reused)
    assert fast[0]["energy_delivered_wh"]["total"] > 0
    assert len(fast[2]) > 900  # about one decision per simulated second: nothing jumped
    assert fast[0] == reference[0]
    assert fast[1] == reference[1]
    assert fast[2] == reference[2]
    # the shortcut was taken on most empty decisions (else a path compared with itself)
    assert max(fast_reused) > 300
    assert max(ref_reused) == 0
