"""The soak judge's split of the overload beyond the first meter period (round 18,
``bench/soak_judge.py``): what fuseguard could have prevented fails the verdict, what no decision
could change is reported apart (``uncontrollable_outside``, ``slow_actuator_outside``).

Small built timelines of a two-charger site under a 40 A limit: cp1 (rotation L1L2L3) and cp2
(L2L3L1), 20 A of building load per phase, a step at t=10 that leaves L1 2 A over until the end
(t=29). The first meter period holds t=10, 11; 18 ticks (12-29) are beyond it.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

from ..benchkit import load_bench

if TYPE_CHECKING:
    from fuseguard.scenario.config import Scenario
    from fuseguard.scenario.runner import Timeline

N = 30
STEP_T = 10
ROTATION = {"cp1": (0, 1, 2), "cp2": (1, 2, 0)}  # the grid phases of each charger's terminals


def _bench() -> ModuleType:
    return load_bench("soak")


def _scenario(events: list[dict[str, Any]], phases: dict[str, int], **site: float) -> Scenario:
    from fuseguard.scenario.config import parse_scenario

    cars = [
        {"charger": cid, "arrive_s": 0, "depart_s": 100, "energy_wh": 30000, "phases": k}
        for cid, k in phases.items()
    ]
    return parse_scenario({
        "site": {"fuse_a": 63.0, "duration_s": 100.0, "meter_period_s": 1.0, **site},
        "base_load": {"points": [[0, [20.0, 20.0, 20.0]]]},
        "chargers": [{"id": "cp1", "rotation": "L1L2L3"}, {"id": "cp2", "rotation": "L2L3L1"}],
        "cars": cars,
        "events": events,
    })  # fmt: skip


def _timeline(
    sc: Scenario, draws_a: dict[str, float], limit_a: tuple[float, float] = (40.0, 40.0)
) -> Timeline:
    """The chargers drawing ``draws_a`` on their cars' phases all along, the limit ``limit_a``
    before and from the step; building load at the step such that L1 is 2 A over from then on."""
    import numpy as np

    from fuseguard.scenario.runner import Timeline

    phases = {c.charger: c.phases for c in sc.cars}
    ids = ["cp1", "cp2"]
    charger = np.zeros((N, 2))
    ev = np.zeros((N, 3))
    for j, cid in enumerate(ids):
        charger[:, j] = draws_a.get(cid, 0.0)
        for p in ROTATION[cid][: phases.get(cid, 0)]:
            ev[:, p] += charger[:, j]
    limit = np.where(np.arange(N) < STEP_T, limit_a[0], limit_a[1])
    non_ev = np.full((N, 3), 20.0)
    non_ev[STEP_T:, 0] = limit_a[1] + 2.0 - ev[STEP_T:, 0]
    f32 = np.float32
    return Timeline(
        charger_ids=ids,
        t_s=np.arange(N, dtype=f32),
        grid_a=(non_ev + ev).astype(f32),
        limit_a=limit.astype(f32),
        ev_a=ev.astype(f32),
        charger_a=charger.astype(f32),
        setpoint_a=charger.astype(f32),
        n=N,
    )


def _fault(at_s: float, device: str, kind: str, duration_s: float) -> dict[str, Any]:
    return {"at_s": at_s, "fault": {"device": device, "kind": kind, "duration_s": duration_s}}


STEP = {"at_s": STEP_T - 0.5, "base_step": {"delta_a": [16.0, 0.0, 0.0], "duration_s": 60}}


def _judge(events: list[dict[str, Any]], phases: dict[str, int], draws_a: dict[str, float],
           **kw: Any) -> dict[str, Any]:  # fmt: skip
    sc = _scenario(events, phases)
    return dict(_bench().judge_overload(_timeline(sc, draws_a, **kw), sc))


# --- rule 1: uncontrollable draws ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["offline", "garbage", "stuck_contactor"])
def test_a_draw_no_write_reaches_is_reported_not_failed(kind: str) -> None:
    """cp1 (L1, 6 A at its fallback) not actable; cp2's car loads L2 only: nothing fuseguard
    acts on draws on L1, so the 2 A over L1 is not fuseguard's, and it is reported in full."""
    got = _judge([STEP, _fault(5, "cp1", kind, 60)], {"cp1": 1, "cp2": 1}, {"cp1": 6, "cp2": 10})
    assert got["overload_ticks_outside"] == 0, got
    unc = got["uncontrollable_outside"]
    assert (unc["ticks"], unc["max_a"], unc["a_s"]) == (18, 2.0, 36.0), unc
    assert unc["by_fault"] == {f"charger:{kind}": 18}
    assert unc["first_t_s"][:2] == [12.0, 13.0]


def test_without_such_spans_the_judge_is_as_before() -> None:
    """No not-actable charger: the same figures as the judge without the split, 18 ticks."""
    sc = _scenario([STEP], {"cp1": 1, "cp2": 1})
    tl = _timeline(sc, {"cp1": 6, "cp2": 10})
    bench = _bench()
    got = bench.judge_overload(tl, sc)
    plain = bench.overload_outside_steps(
        tl, 1.0, 1.0, bench.fault_windows(sc), bench.meter_lost(sc), None, sc.site.fuse_a
    )
    assert got["overload_ticks_outside"] == 18
    assert {k: v for k, v in got.items() if k in plain} == plain
    assert got["uncontrollable_outside"]["ticks"] == got["slow_actuator_outside"]["ticks"] == 0


def test_a_controllable_car_on_the_phase_keeps_the_excess_fuseguards() -> None:
    """cp2's car is 3-phase (it loads L1 too): what it draws there could have been taken off,
    up to its draw; only the rest is reported apart."""
    faults = [STEP, _fault(5, "cp1", "garbage", 60)]
    got = _judge(faults, {"cp1": 1, "cp2": 3}, {"cp1": 6, "cp2": 10})
    assert got["overload_ticks_outside"] == 18 and got["max_overload_a_outside"] == 2.0, got
    assert got["uncontrollable_outside"]["ticks"] == 0
    got = _judge(faults, {"cp1": 1, "cp2": 3}, {"cp1": 6, "cp2": 1})  # 1 A of the 2 A
    assert got["overload_ticks_outside"] == 18 and got["max_overload_a_outside"] == 1.0, got
    assert got["overload_as_outside"] == 18.0
    assert got["uncontrollable_outside"]["a_s_within_failing_ticks"] == 18.0, got


def test_a_draw_no_write_reaches_counts_only_on_the_phases_it_loads() -> None:
    """cp2 (garbage) loads L2 only (1-phase, rotation L2L3L1): the 2 A over L1, where cp1 is
    actable and draws 6 A, stay fuseguard's."""
    got = _judge(
        [STEP, _fault(5, "cp2", "garbage", 60)], {"cp1": 1, "cp2": 1}, {"cp1": 6, "cp2": 10}
    )
    assert got["overload_ticks_outside"] == 18 and got["max_overload_a_outside"] == 2.0, got
    assert got["uncontrollable_outside"]["ticks"] == 0, got


def test_the_span_ends_when_the_runner_ends_it() -> None:
    """A fault's end, or another fault's end after it replaced the first, makes the charger
    actable again (the runner: one fault per charger, any end clears it)."""
    got = _judge([STEP, _fault(5, "cp1", "garbage", 15)], {"cp1": 1}, {"cp1": 6})
    assert got["uncontrollable_outside"]["ticks"] == 8, got  # 12-19
    assert got["overload_ticks_outside"] == 10 and got["first_outside_t_s"][0] == 20.0, got
    # garbage for 60 s, replaced by a welded contactor at 15 that ends at 20: actable from 20
    faults = [STEP, _fault(5, "cp1", "garbage", 60), _fault(15, "cp1", "stuck_contactor", 5)]
    got = _judge(faults, {"cp1": 1}, {"cp1": 6})
    assert got["uncontrollable_outside"]["by_fault"] == {
        "charger:garbage": 3,  # 12-14
        "charger:stuck_contactor": 5,  # 15-19
    }, got
    assert got["overload_ticks_outside"] == 10, got


def test_fault_in_force_follows_the_runner() -> None:
    import numpy as np

    judge = load_bench("soak_judge")
    events = [
        _fault(2, "cp1", "garbage", 10),
        _fault(4, "cp1", "slow", 2),  # replaces the garbage, its end at 6 clears it
        _fault(8, "cp1", "offline", 10),  # cleared at 12 by the garbage's end
        _fault(3, "cp2", "stuck_contactor", 3),
    ]
    sc = _scenario(events, {})
    kinds = judge.fault_in_force(sc, ["cp1", "cp2"], np.arange(14.0))
    assert (
        list(kinds[:, 0])
        == [""] * 2 + ["garbage"] * 2 + ["slow"] * 2 + [""] * 2 + ["offline"] * 4 + [""] * 2
    )
    assert list(kinds[:, 1]) == [""] * 3 + ["stuck_contactor"] * 3 + [""] * 8


# --- rule 2: a slow actuator after an unannounced step ------------------------------------------

SLOW = _fault(0, "cp1", "slow", 1000)
#: the EMS's first settings: 55 A, its FallbackCurrentLimit 40 A
FLEX0 = {"at_s": 0, "flex": {"activation": True, "current_limit_a": 55.0, "fallback_a": 40.0}}
EMS_WRITE = {"at_s": STEP_T - 0.5, "flex": {"current_limit_a": 40.0}}


def test_an_unannounced_step_met_only_by_slow_chargers_is_reported_within_the_window() -> None:
    """cp1 (slow, 5 s per write) is the only EV on L1: a base step or an EMS write lowering the
    limit is met within period + 2 x 5 s = 11 s (t <= 21); the ticks after it fail."""
    for events, limits in (([STEP], (40.0, 40.0)), ([FLEX0, EMS_WRITE], (55.0, 40.0))):
        got = _judge([SLOW, *events], {"cp1": 1, "cp2": 1}, {"cp1": 10, "cp2": 10}, limit_a=limits)
        slow = got["slow_actuator_outside"]
        assert (slow["ticks"], slow["max_a"], slow["a_s"]) == (10, 2.0, 20.0), (events, got)
        assert slow["first_t_s"][0] == 12.0 and slow["first_t_s"][-1] == 21.0
        assert got["overload_ticks_outside"] == 8 and got["first_outside_t_s"][0] == 22.0, got


def test_not_a_slow_actuator_when_a_fast_charger_drew_on_the_phase() -> None:
    """cp2's 3-phase car draws 1 A on L1: a fast charger could have made that room."""
    got = _judge([SLOW, STEP], {"cp1": 1, "cp2": 3}, {"cp1": 10, "cp2": 1})
    assert got["slow_actuator_outside"]["ticks"] == 0, got
    assert got["overload_ticks_outside"] == 18, got


def test_not_a_slow_actuator_when_no_charger_was_slow() -> None:
    got = _judge([STEP], {"cp1": 1, "cp2": 1}, {"cp1": 10, "cp2": 10})
    assert got["slow_actuator_outside"]["ticks"] == 0 and got["overload_ticks_outside"] == 18


def test_not_a_slow_actuator_when_the_step_was_the_watchdogs_expiry() -> None:
    """The same limit drop, from the EMS falling silent (keep-alives stop, the watchdog expires
    at 9.5 s): fuseguard knew it in advance, every tick beyond the first period fails."""
    from fuseguard.scenario.schedule import Schedule

    events = [SLOW, FLEX0, {"at_s": 0.5, "keepalive": "stop"}]
    sc = _scenario(events, {"cp1": 1, "cp2": 1}, keepalive_period_s=1.0, flex_timeout_s=9.5)
    assert Schedule(sc).fallback_starts == [9.5]
    tl = _timeline(sc, {"cp1": 10, "cp2": 10}, limit_a=(55.0, 40.0))
    got = _bench().judge_overload(tl, sc)
    assert got["slow_actuator_outside"]["ticks"] == 0, got
    assert got["overload_ticks_outside"] == 18, got


def test_not_a_slow_actuator_when_the_expiry_comes_with_a_base_step() -> None:
    """A base step in the tick of the expiry: the limit's drop was known in advance, so the
    step is not unannounced (strict: an expiry within two ticks disqualifies the step)."""
    events = [SLOW, FLEX0, {"at_s": 0.5, "keepalive": "stop"}, STEP]
    sc = _scenario(events, {"cp1": 1, "cp2": 1}, keepalive_period_s=1.0, flex_timeout_s=9.5)
    tl = _timeline(sc, {"cp1": 10, "cp2": 10}, limit_a=(55.0, 40.0))
    got = _bench().judge_overload(tl, sc)
    assert got["slow_actuator_outside"]["ticks"] == 0, got
    assert got["overload_ticks_outside"] == 18, got


def test_not_a_slow_actuator_after_the_meters_return() -> None:
    """The step in force is the grid meter's return (a lost meter's hidden load shows), not an
    unannounced event: not the slow actuator's either."""
    events = [SLOW, STEP, _fault(12.5, "meter", "offline", 2.5)]  # back at 15
    got = _judge(events, {"cp1": 1, "cp2": 1}, {"cp1": 10, "cp2": 10})
    slow = got["slow_actuator_outside"]
    assert slow["first_t_s"] == [12.0, 13.0, 14.0], got  # the base step's, until the return
    assert got["overload_ticks_outside"] == 13 and got["first_outside_t_s"][0] == 17.0, got
