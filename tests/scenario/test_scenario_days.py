"""``fuseguard simulate --days N``: a one-day scenario repeated day after day."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from helpers_scenario import tiny
from typer.testing import CliRunner

from fuseguard.cli.simulate import register
from fuseguard.scenario import output, runner
from fuseguard.scenario.config import Scenario, ScenarioError, load_scenario, parse_scenario
from fuseguard.scenario.days import DAY_S, repeat_days
from fuseguard.scenario.runner import SimulationResult

ROOT = Path(__file__).resolve().parents[2]


def _overnight() -> dict[str, object]:
    return {
        "site": {"name": "night", "fuse_a": 25, "duration_s": DAY_S},
        "base_load": {"points": [[0, [4, 4, 4]], [43200, [9, 8, 7]], [80000, [5, 5, 5]]]},
        "chargers": [{"id": "cp1"}, {"id": "cp2"}],
        "cars": [
            {"charger": "cp1", "arrive_s": 64800, "depart_s": 108000, "energy_wh": 9000},
            {"id": "vw", "charger": "cp2", "arrive_s": 3600, "depart_s": 7200, "energy_wh": 500},
        ],
        "events": [
            {"at_s": 70000, "fault": {"device": "cp2", "kind": "offline", "duration_s": 60}}
        ],
        "pv": {
            "peak_w": 3000,
            "sunrise_s": 21600,
            "sunset_s": 64800,
            "clouds": [[30000, 31000, 0.2]],
        },
    }


def test_every_day_repeats_cars_events_load_and_clouds() -> None:
    sc = parse_scenario(_overnight())
    three = repeat_days(sc, 3)
    assert three.site.duration_s == 3 * DAY_S
    assert [(c.name, c.arrive_s, c.depart_s) for c in three.cars if c.charger == "cp1"] == [
        ("cp1@64800", 64800, 108000),
        ("cp1@151200", 151200, 194400),
        ("cp1@237600", 237600, 280800),  # leaves after the last day: counted at the end
    ]
    assert [c.name for c in three.cars if c.charger == "cp2"] == ["vw", "vw@d1", "vw@d2"]
    assert [e.at_s for e in three.events] == [70000, 70000 + DAY_S, 70000 + 2 * DAY_S]
    assert three.pv is not None
    assert [w[0] for w in three.pv.clouds] == [30000, 30000 + DAY_S, 30000 + 2 * DAY_S]
    # day 2 sees day 0's load at the same time of day; after the last day: the value at 24 h
    points = dict(three.base_load.points)
    assert points[43200 + 2 * DAY_S] == (9, 8, 7)
    assert points[3 * DAY_S] == (5, 5, 5)
    assert repeat_days(sc, 1).cars == sc.cars


def test_days_are_refused_when_they_cannot_repeat() -> None:
    with pytest.raises(ScenarioError, match="at least 1"):
        repeat_days(tiny(), 0)
    with pytest.raises(ScenarioError, match="at most one day"):
        repeat_days(tiny(duration_s=2 * DAY_S), 2)
    data = _overnight()
    data["cars"] = [{"charger": "cp1", "arrive_s": 0, "depart_s": DAY_S + 60, "energy_wh": 9}]
    with pytest.raises(ScenarioError, match="overlap"):
        repeat_days(parse_scenario(data), 2)


def test_cli_days_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The option hands the repeated scenario to the runner (a stand-in: a real month takes
    minutes, ``bench/simspeed.py`` runs one)."""
    ran: list[Scenario] = []

    def fake_simulate(sc: Scenario, policy: str, **_: object) -> SimulationResult:
        ran.append(sc)
        report = {"policy": policy, "energy_delivered_wh": {"total": 0.0, "per_car": {}}}
        return SimulationResult(report=report)

    monkeypatch.setattr(runner, "simulate", fake_simulate)
    monkeypatch.setattr(output, "summary_rows", lambda _report: [])
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        """Test root."""

    scenario = tmp_path / "s.toml"
    scenario.write_text(
        '# t\n[site]\nfuse_a = 25\nduration_s = 600\n[[chargers]]\nid = "cp1"\n'
        '[[cars]]\ncharger = "cp1"\narrive_s = 60\ndepart_s = 300\nenergy_wh = 500\n',
        encoding="utf-8",
    )
    out = tmp_path / "r.json"
    args = ["simulate", str(scenario), "--days", "2", "--no-optimum", "--report", str(out)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["policy"] == "fuseguard"
    assert [c.name for c in ran[0].cars] == ["cp1@60", "cp1@86460"]
    assert ran[0].site.duration_s == 2 * DAY_S
    res = CliRunner().invoke(app, [*args[:3], "0", *args[4:]])
    assert res.exit_code == 2


def test_the_apartment_garage_repeats_over_a_month() -> None:
    sc = load_scenario(ROOT / "scenarios" / "apartment_garage.toml")
    month = repeat_days(sc, 30)
    assert month.site.duration_s == 30 * DAY_S
    assert len(month.cars) == 30 * len(sc.cars)
