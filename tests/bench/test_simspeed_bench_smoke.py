"""Smoke test of the simulator-speed benchmark (``bench/simspeed.py``) at a tiny size.

Runs the harness's own run function on a short piece of a library scenario, in this process, and
renders its table: no timing assertion, only that a run yields the compared report fields and
that the before/after table says whether two reports were identical.
"""

from __future__ import annotations

from types import ModuleType

import pytest

from ..benchkit import load_bench


def _load_bench() -> ModuleType:
    return load_bench("simspeed")


def test_a_run_and_its_table() -> None:
    bench = _load_bench()
    sc = bench._load("single_car", 120.0)
    assert sc.site.duration_s == 120.0
    row = bench._run("single_car", duration_s=120.0)
    assert set(row["report"]) == set(bench.COMPARED)
    assert row["cpu_s"] >= 0
    other = {**row, "report": {**row["report"], "overload_as": -1}}
    rows = [
        {**row, "before_cpu_s": 2.0, "before_load_avg": [1.0, 1.0], "speedup": 2.0},
        {**other, "identical": False},
    ]
    rows[0]["identical"] = True
    table = bench.markdown(
        {"meta": {"measured": "now", "machine": "x", "python": "3"}, "runs": rows}
    )
    assert "| single_car | – | 2.0 |" in table
    assert "| yes |" in table
    assert "| NO |" in table


def test_decision_stats_count_and_restore(capsys: pytest.CaptureFixture[str]) -> None:
    from fuseguard.control.controller import Controller

    bench = _load_bench()
    decide = Controller.decide
    bench._decision_stats("single_car", 60.0)
    assert Controller.decide is decide  # the counting wrapper is gone again
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("single_car: ")
    decisions = int(line.split()[1])
    assert 50 <= decisions <= 70  # one per meter period (1 s) over 60 s
    assert "unchanged" in line
    assert "no car plugged in" in line


def _timeline(days: int, per_day: int) -> object:
    from fuseguard.scenario.recorder import new_timeline

    tl = new_timeline(["cp1"], days * per_day)
    step = 86_400.0 / per_day
    for i in range(days * per_day):
        tl.t_s[i] = i * step
        tl.grid_a[i] = (i % per_day, 1.0, 2.0)
        tl.setpoint_a[i] = [float(i % per_day)]
    tl.n = days * per_day
    return tl


def test_day_repeats_compares_each_day_with_the_day_before() -> None:
    bench = _load_bench()
    tl = _timeline(3, 8)
    assert bench.day_repeats(tl, 3) == [True, True]
    tl.charger_a[3] = 6.0  # day 0 differs from day 1 at one tick
    assert bench.day_repeats(tl, 3) == [False, True]
    tl.setpoint_a[20] = 7.0  # and day 2 from day 1
    assert bench.day_repeats(tl, 3) == [False, False]
    short = _timeline(3, 8)
    short.n -= 1  # a day with a row fewer is not the day before
    assert bench.day_repeats(short, 3) == [True, False]


def test_car_day_reads_both_names() -> None:
    bench = _load_bench()
    assert bench._car_day("cp1@64800") == 0
    assert bench._car_day("cp1@151200") == 1
    assert bench._car_day("g01@d3") == 3
    assert bench._car_day("g01") == 0


def test_breakdown_by_part() -> None:
    bench = _load_bench()
    stats = {
        ("/x/fuseguard/control/controller.py", 1, "decide"): (1, 1, 0.1, 6.0, {}),
        ("/x/fuseguard/control/allocator.py", 1, "step"): (1, 1, 0.1, 2.0, {}),
        ("/x/fuseguard/control/polling.py", 1, "run"): (1, 1, 0.1, 1.0, {}),
        ("/x/fuseguard/sim/site.py", 1, "tick"): (1, 1, 0.1, 1.0, {}),
        ("/x/fuseguard/sim/site.py", 1, "other"): (1, 1, 0.1, 5.0, {}),
    }
    parts = dict(bench.breakdown(stats, 10.0))
    assert parts["decision"] == pytest.approx(0.6)
    assert parts["- allocation"] == pytest.approx(0.2)
    assert parts["poller (meter and charger reads)"] == pytest.approx(0.1)
    assert parts["event loop, clock and the rest"] == pytest.approx(0.2)


def test_profile_of_a_window_restores_the_runner(capsys: pytest.CaptureFixture[str]) -> None:
    from fuseguard.scenario import runner

    bench = _load_bench()
    init = runner._Run.__init__
    bench._profile("single_car", 20.0, 20.0, None)
    assert runner._Run.__init__ is init
    out = capsys.readouterr().out
    assert "single_car: window 20-40 s" in out
    assert "decision" in out


def test_the_yardstick_is_fixed_and_its_ratio_is_in_the_table() -> None:
    bench = _load_bench()
    # a fixed workload: the same checksum every time (it is compared across machines)
    assert bench.yardstick(2_000) == bench.yardstick(2_000)
    assert bench._yardstick_cpu_s() > 0.0
    row = {
        "scenario": "single_car",
        "days": None,
        "cpu_s": 4.0,
        "load_avg": [1.0, 1.0],
        "jumped_s": 0.0,
        "duration_s": 60.0,
        "cpu_per_yardstick": 2.5,
    }
    meta = {"measured": "now", "machine": "x", "python": "3", "yardstick_cpu_s": 1.6}
    table = bench.markdown({"meta": meta, "runs": [row]})
    assert table.splitlines()[-3].endswith("| 2.5 |")
    assert "1.6 s CPU" in table
