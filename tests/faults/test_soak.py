"""The soak of ``bench/soak.py`` for 0.075 simulated days, 1.8 h (the benchmark runs 7 days).

Random faults (meter and chargers offline / garbage / slow / frozen / stuck contactor), the EMS
silent and back, EMS limit changes and base-load steps, in virtual time through the scenario
runner with the real controller. Judged like the benchmark: no EV-attributable overload beyond
the first meter period after a step, none at all on the sub-circuit, no crashed task or error
event, RSS growth < 5 % from 0.45 h to the end (sampled inside the run at every car arrival).
Beside it the edge's cloud agent runs on a flapping link and is fed poisoned commands
(``bench/soak_cloud.py``): none accepted, no bad target stored.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

import pytest

from ..benchkit import load_bench

if TYPE_CHECKING:
    from fuseguard.scenario.runner import Timeline

DAYS = 0.075
#: the day's events start within its first 80 min and every charger's first car arrives within
#: the first hour (``bench/soak.py``'s ``events_within_s``, ``first_car_within_s``; the bench
#: spreads them over 23 h and 4 h): the 1.8 h run holds a whole day's events
WITHIN = {"events_within_s": 4800.0, "first_car_within_s": 3600.0}
#: a seed whose 1.8 h hold all eight fault kinds (10 faults), 6 base-load steps, 3 silent-EMS
#: stretches (its 40 A fallback), 6 memory samples (car arrivals) after the first quarter, 3
#: cloud link drops and 12 poisoned commands. Round 14 ran 3.6 h of seed 1142 (six kinds, the
#: day's faults spread over 23 h), before it 7.2 h of seed 5 (five kinds), at 2x and 4x the CPU.
SEED = 3844
KINDS = {
    "charger:offline", "charger:garbage", "charger:slow", "charger:stuck_contactor",
    "meter:offline", "meter:garbage", "meter:slow", "meter:frozen",
}  # fmt: skip


def _timeline(n: int, limit_a: float) -> Timeline:
    """``n`` one-second ticks of one charger: 20 A on the grid, 10 A of it the EVs', every
    phase, under ``limit_a``."""
    import numpy as np

    from fuseguard.scenario.runner import Timeline

    return Timeline(
        charger_ids=["cp1"],
        t_s=np.arange(n, dtype=np.float32),
        grid_a=np.full((n, 3), 20.0, dtype=np.float32),
        limit_a=np.full(n, limit_a, dtype=np.float32),
        ev_a=np.full((n, 3), 10.0, dtype=np.float32),
        charger_a=np.zeros((n, 1), dtype=np.float32),
        setpoint_a=np.zeros((n, 1), dtype=np.float32),
        n=n,
    )


def _load_bench() -> ModuleType:
    return load_bench("soak")


@pytest.mark.timeout(400)  # ~4-10 s of CPU; the machine is shared
def test_hours_of_random_faults() -> None:
    soak = _load_bench()
    r = soak.run_soak(DAYS, SEED, memory_from_s=DAYS * soak.DAY_S / 4, **WITHIN)
    assert set(r["faults"]) == KINDS, r["faults"]  # the faults did happen, each kind of them
    assert r["overload_main"]["ticks"] >= DAYS * soak.DAY_S
    assert r["overload_main"]["steps"] >= 3, r["overload_main"]
    assert r["energy_delivered_kwh"] > 0
    assert r["memory"]["samples"] >= 5, r["memory"]
    cloud = r["cloud"]  # the cloud link flapped and was fed poison all along
    assert cloud["drops"] >= 2 and cloud["poisoned_commands"]["sent"] >= 10, cloud
    assert cloud["poisoned_commands"].get("received", 0) == 0, cloud
    assert not cloud["bad_targets_stored"], cloud
    verdict = soak.verdict(r)
    assert all(verdict.values()), (verdict, r)


def test_the_cloud_judge_sees_an_accepted_bad_target(monkeypatch: pytest.MonkeyPatch) -> None:
    """An agent that checked nothing would be caught: its poisoned commands are acknowledged
    ``received`` and the backend notes the out-of-range targets it stored."""
    import asyncio

    from fuseguard.cloud.edge_agent import EdgeCloudAgent
    from fuseguard.control.targets import EvseTargets
    from fuseguard.model.clock import VirtualClock
    from fuseguard.scenario.runner import RunContext

    soak = _load_bench()
    cloud = soak.soak_cloud
    monkeypatch.setattr(EdgeCloudAgent, "check_set", lambda self, info, current, duration: None)
    sc = soak.build_scenario(0.1, SEED)
    stats = cloud.CloudStats()

    async def run() -> None:
        clock = VirtualClock()
        ctx = RunContext(clock, sc, EvseTargets(clock))
        task = asyncio.create_task(cloud.cloud_companion(ctx, stats, 3))
        await clock.run_until(6 * 3600.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    got = stats.as_dict()
    assert got["poisoned_commands"]["sent"] >= 10
    assert got["poisoned_commands"].get("received", 0) > 0
    assert got["bad_targets_stored"]
    assert not cloud.cloud_verdict(got)["no_poisoned_command_accepted"]


def test_the_judge_sees_overload_outside_the_first_period() -> None:
    """The overload judge is not blind: a timeline with a late overload is flagged."""
    tl = _timeline(10, 30.0)  # 20 A on the grid, 10 A of it EVs, on every phase
    tl.grid_a[3:] += 15.0  # base step at t=3: non-EV 10 -> 25, grid 35 > 30, EV share 5 A
    tl.grid_a[5:] -= 5.0  # the controller needed 2 periods: t=4 is late
    got = _load_bench().overload_outside_steps(tl, meter_period_s=1.0, tick_s=1.0)
    assert got["steps"] == 1
    assert got["overload_ticks_first_period"] == 2  # t=3, t=4 (<= 1 s after the step)
    assert got["overload_ticks_outside"] == 0
    tl.grid_a[5] += 5.0  # still over at t=5
    got = _load_bench().overload_outside_steps(tl, meter_period_s=1.0, tick_s=1.0)
    assert got["overload_ticks_outside"] == 1
    assert got["first_outside_t_s"] == [5.0]


def test_the_judge_allows_only_the_load_a_lost_meter_hid() -> None:
    """While the grid meter is lost, an overload is hidden (allowed) only as far as the building
    load exceeds everything the meter showed before (docs/safety.md, "What a lost meter cannot
    show"); EVs above the limit minus that are a failure; the meter's return is a step."""
    tl = _timeline(20, 40.0)  # 20 A on the grid, 10 A of it EVs, on every phase
    tl.grid_a[2:4, 0] += 6.0  # the meter showed 16 A of building load on L1 (t=2, 3)
    tl.ev_a[6:15, 0] += 14.0  # meter lost 5-15: EVs 24 A on L1 = 40 - 16, the fallback's due
    tl.grid_a[6:15, 0] += 14.0
    tl.grid_a[8:15, 0] += 9.0  # an oven at t=8, unseen: building 19 A, 3 A over the 40 A
    bench = _load_bench()
    lost = [(5.0, 13.5)]  # back at 13.5: its first period holds t=14, the cars follow at t=15
    got = bench.overload_outside_steps(tl, 1.0, 1.0, meter_lost=lost, fallback_a=40.0)
    # t=8, 9: the step's first period; t=10-13: hidden; t=14: the first period after the return
    assert (got["overload_ticks_first_period"], got["overload_ticks_hidden"]) == (3, 4), got
    assert got["overload_ticks_outside"] == 0, got
    assert got["max_overload_a_hidden"] == 3.0
    assert bench.overload_outside_steps(tl, 1.0, 1.0)["overload_ticks_outside"] == 5
    tl.ev_a[6:15, 0] += 1.0  # one amp more than the highest load shown leaves room for
    tl.grid_a[6:15, 0] += 1.0
    got = bench.overload_outside_steps(tl, 1.0, 1.0, meter_lost=lost, fallback_a=40.0)
    assert got["overload_ticks_outside"] == 4, got
    assert got["overload_ticks_hidden"] == 0
    tl.ev_a[6:15, 0] -= 1.0
    tl.grid_a[6:15, 0] -= 1.0
    tl.ev_a[15, 0], tl.grid_a[15, 0] = 24.0, 43.0  # the cars not down 1.5 s after the return
    got = bench.overload_outside_steps(tl, 1.0, 1.0, meter_lost=lost, fallback_a=40.0)
    assert got["overload_ticks_outside"] == 1 and got["first_outside_t_s"] == [15.0], got
    # the EMS's FallbackCurrentLimit is part of the promise: 20 A means at least 20 A assumed
    got = bench.overload_outside_steps(tl, 1.0, 1.0, meter_lost=lost, fallback_a=20.0)
    assert got["overload_ticks_hidden"] == 0 and got["overload_ticks_outside"] == 5, got
    # judged against the fuse (round 17): a 63 A fuse with a 40 A fallback allows for 23 A of
    # building load under any limit, so the 19 A here was no surprise: nothing hidden
    got = bench.overload_outside_steps(tl, 1.0, 1.0, meter_lost=lost, fallback_a=40.0, fuse_a=63.0)
    assert got["overload_ticks_hidden"] == 0 and got["overload_ticks_outside"] == 5, got
    got = bench.overload_outside_steps(
        tl, 1.0, 1.0, meter_lost=lost, fallback_a=40.0, fuse_a=56.0
    )  # a 56 A fuse allows for 16 A, what the meter showed: the 3 A above it stay hidden
    assert got["overload_ticks_hidden"] == 4 and got["overload_ticks_outside"] == 1, got


def test_meter_loss_stretches_follow_the_runner() -> None:
    """Overlapping meter faults: the runner's first end clears both (``scenario/runner.py``)."""
    from types import SimpleNamespace as NS

    bench = _load_bench()

    def fault(at: float, d: float, device: str = "meter") -> NS:
        return NS(at_s=at, fault=NS(device=device, duration_s=d), flex=None)

    sc = NS(events=[fault(10, 100), fault(50, 200), fault(60, 30, "cp1"), fault(400, 20)])
    assert bench.meter_lost(sc) == [(10, 110), (400, 420)]


def test_a_slow_meter_is_back_when_its_late_read_is_answered_or_abandoned() -> None:
    """Round 17 (the soak's seed 84): the read under way when a ``slow`` meter fault ends was
    asked of the slow meter; the controller has no answer until it is abandoned at its
    ``meter_timeout_s`` (2 s). The loss, and the step of its return, end then; other faults
    end when they end."""
    from types import SimpleNamespace as NS

    bench = _load_bench()

    def fault(at: float, d: float, kind: str) -> NS:
        return NS(at_s=at, fault=NS(device="meter", duration_s=d, kind=kind), flex=None)

    sc = NS(events=[fault(10, 100, "offline"), fault(200, 50, "slow"), fault(251, 10, "frozen")])
    assert bench.SLOW_METER_TAIL_S == 2.0
    assert bench.meter_lost(sc) == [(10, 110), (200, 261)]  # 250 + 2 reaches into 251: one
    sc = NS(events=[fault(10, 100, "garbage"), fault(20, 10, "slow"), fault(300, 5, "slow")])
    assert bench.meter_lost(sc) == [(10, 32), (300, 307)]
