"""``simulate(progress=...)`` and ``fuseguard simulate --progress``: how far a run has got,
told outside the simulated system (the report is the same with and without a listener)."""

from __future__ import annotations

import io
import json
import tomllib
from pathlib import Path

import pytest
from helpers_scenario import simulate_app
from typer.testing import CliRunner

from fuseguard.cli.simulate import progress_printer, virtual_time
from fuseguard.scenario.config import parse_scenario
from fuseguard.scenario.jump import SimProgress
from fuseguard.scenario.runner import simulate

SCENARIO = """
[site]
name = "progress"
fuse_a = 32
duration_s = 1800
[base_load]
points = [[0, [5, 5, 5]], [1800, [9, 9, 9]]]
[[chargers]]
id = "cp1"
[[chargers]]
id = "cp2"
rotation = "L2L3L1"
[[cars]]
charger = "cp1"
arrive_s = 60
depart_s = 1500
energy_wh = 4000
[[cars]]
charger = "cp2"
arrive_s = 90
depart_s = 1700
energy_wh = 6000
phases = 1
"""


def _without_wall(report: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in report.items() if k not in ("wall_s", "sim_wall_s")}


@pytest.mark.parametrize("policy", ["fuseguard", "static"])
def test_the_listener_sees_the_run_to_its_end_and_changes_nothing(policy: str) -> None:
    sc = parse_scenario(tomllib.loads(SCENARIO))
    told: list[SimProgress] = []
    with_listener = simulate(
        sc, policy, compute_optimum=False, keep_timeline=True, progress=told.append
    )
    without = simulate(sc, policy, compute_optimum=False, keep_timeline=True)
    assert _without_wall(with_listener.report) == _without_wall(without.report)
    assert with_listener.timeline is not None and without.timeline is not None
    n = without.timeline.n
    assert with_listener.timeline.n == n
    assert list(with_listener.timeline.setpoint_a[:n].ravel()) == list(
        without.timeline.setpoint_a[:n].ravel()
    )
    worlds = [p.world_s for p in told]
    assert len(worlds) >= 3  # every jump period (fuseguard) or progress step (baselines)
    assert worlds == sorted(worlds)
    assert worlds[-1] == 1800.0
    assert all(p.end_s == 1800.0 for p in told)


def test_the_printer_rewrites_one_line_on_a_terminal_and_writes_lines_elsewhere() -> None:
    now = [0.0]

    def clock() -> float:
        return now[0]

    out = io.StringIO()
    tell = progress_printer(out, tty=True, clock=clock)
    tell(SimProgress(3600.0, 30 * 86_400.0))  # not a second yet: nothing
    now[0] = 1.5
    tell(SimProgress(3 * 86_400.0 + 9 * 3600 + 17 * 60, 30 * 86_400.0, 9e5, 26))
    now[0] = 2.0
    tell(SimProgress(30 * 86_400.0, 30 * 86_400.0, 9e5, 26))  # the end is always told
    text = out.getvalue()
    assert text.count("\r") == 2
    assert "simulated 3 d 09:17 of 30 d 00:00 (11 %), 26 days jumped, 2 s" in text
    assert "simulated 30 d 00:00 of 30 d 00:00 (100 %), 26 days jumped, 2 s" in text
    assert text.endswith("\n")

    log = io.StringIO()
    tell = progress_printer(log, tty=False, clock=clock)
    for t in (5.0, 9.0, 12.5):
        now[0] = 2.0 + t
        tell(SimProgress(600.0 * t, 86_400.0, 1200.0))
    lines = log.getvalue().splitlines()
    assert lines == ["simulated 0 d 02:05 of 1 d 00:00 (9 %), 0 d 00:20 jumped, 12 s"]
    assert "\r" not in log.getvalue()


def test_virtual_time() -> None:
    assert virtual_time(0) == "0 d 00:00"
    assert virtual_time(86_399.9) == "0 d 23:59"
    assert virtual_time(30 * 86_400 + 61) == "30 d 00:01"
    assert virtual_time(-5) == "0 d 00:00"


def test_the_cli_tells_progress_on_request_and_not_by_default(tmp_path: Path) -> None:
    sc = tmp_path / "s.toml"
    sc.write_text(SCENARIO, encoding="utf-8")
    args = ["simulate", str(sc), "--no-optimum", "--report", str(tmp_path / "r.json")]
    shown = CliRunner().invoke(simulate_app(), [*args, "--progress"])
    assert shown.exit_code == 0, shown.output
    assert "simulated 0 d 00:30 of 0 d 00:30 (100 %)" in shown.stderr
    quiet = CliRunner().invoke(simulate_app(), args)  # stderr is no terminal here
    assert quiet.exit_code == 0, quiet.output
    assert "simulated" not in quiet.stderr
    assert json.loads((tmp_path / "r.json").read_text())["policy"] == "fuseguard"
