"""``fuseguard simulate``: exit codes, report keys, plot and CSV."""

from __future__ import annotations

import json
from pathlib import Path

from helpers_scenario import simulate_app
from typer.testing import CliRunner

SCENARIO = """
# Two cars, a flex limit and a meter fault: every report section gets something.
[site]
name = "cli"
fuse_a = 32
duration_s = 1200
[base_load]
points = [[0, [5, 5, 5]], [1200, [10, 10, 10]]]
[[chargers]]
id = "cp1"
[[chargers]]
id = "cp2"
rotation = "L3L1L2"
[[cars]]
charger = "cp1"
arrive_s = 0
depart_s = 1100
energy_wh = 5000
[[cars]]
charger = "cp2"
arrive_s = 30
depart_s = 1200
energy_wh = 8000
phases = 1
[[events]]
at_s = 300
flex = { activation = true, current_limit_a = 20, fallback_a = 8 }
[[events]]
at_s = 600
fault = { device = "meter", kind = "offline", duration_s = 120 }
"""

REQUIRED = {
    "overload_as",
    "max_overshoot_a",
    "energy_delivered_wh",
    "unmet_wh",
    "offline_optimum_wh",
    "optimality",
    "jain_fairness",
    "pause_resume_cycles",
    "reaction_s",
    "fallback",
    "policy",
    "wall_s",
}


def test_simulate_writes_report_plot_and_csv(tmp_path: Path) -> None:
    sc = tmp_path / "s.toml"
    sc.write_text(SCENARIO, encoding="utf-8")
    out = tmp_path / "r.json"
    png = tmp_path / "t.png"
    csv = tmp_path / "t.csv"
    res = CliRunner().invoke(
        simulate_app(),
        [
            "simulate",
            str(sc),
            "--report",
            str(out),
            "--policy",
            "ten_second_equal",
            "--plot",
            str(png),
            "--csv",
            str(csv),
        ],
    )
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert report.keys() >= REQUIRED
    assert report["policy"] == "ten_second_equal"
    assert set(report["unmet_wh"]) == {"cp1@0", "cp2@30"}
    assert report["fallback"][0]["device"] == "meter"
    assert {"p50", "p99"} <= report["reaction_s"].keys()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = csv.read_text().splitlines()
    assert lines[0].startswith("t_s,grid_l1_a,grid_l2_a,grid_l3_a,limit_a")
    assert len(lines) == 1 + 1201
    assert "optimality" in res.output


def test_simulate_rejects_unknown_key_and_policy(tmp_path: Path) -> None:
    sc = tmp_path / "s.toml"
    sc.write_text(SCENARIO.replace("fuse_a = 32", "fuse_a = 32\nfusse = 1"), encoding="utf-8")
    res = CliRunner().invoke(
        simulate_app(), ["simulate", str(sc), "--report", str(tmp_path / "r.json")]
    )
    assert res.exit_code == 2
    assert "unknown key 'site.fusse'" in res.output
    sc.write_text(SCENARIO, encoding="utf-8")
    res = CliRunner().invoke(simulate_app(), ["simulate", str(sc), "--policy", "nope"])
    assert res.exit_code == 2
    assert "unknown policy" in res.output
