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
