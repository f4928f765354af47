"""``[control] planner`` and ``planner_*``: validated in the site config and carried by the one
config -> controller translation (config/controller.py) into the controller, which builds the
planner only for ``"horizon"``."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from fuseguard.config import ControlConfig
from fuseguard.control.controller import Controller
from fuseguard.control.types import PlannerSettings
from fuseguard.model.clock import VirtualClock
from fuseguard.scenario.config import loads_scenario
from fuseguard.scenario.site import scenario_controller_config

SCENARIOS = Path(__file__).parents[2] / "scenarios"


def test_defaults_and_bounds() -> None:
    c = ControlConfig()
    assert c.planner == "least_laxity"
    assert (c.planner_interval_s, c.planner_step_s, c.planner_horizon_s) == (300, 300, 43200)
    assert (c.planner_time_limit_s, c.planner_default_stay_s) == (1.0, 0.0)
    assert (c.planner_load_window_s, c.planner_finish_early_s) == (0.0, 0.0)
    bad: list[dict[str, object]] = [
        {"planner": "lp"},
        {"planner_interval_s": 5},
        {"planner_step_s": 30},
        {"planner_horizon_s": 300},
        {"planner_time_limit_s": 0},
        {"planner_time_limit_s": float("nan")},
        {"planner_default_stay_s": -1},
        {"planner_load_window_s": -1},
        {"planner_load_window_s": 200_000},
        {"planner_finish_early_s": -1},
    ]
    for kw in bad:
        with pytest.raises(ValidationError):
            ControlConfig.model_validate(kw)


def test_the_translation_carries_the_planner_keys() -> None:
    text = (SCENARIOS / "departures_announced.toml").read_text()
    plain = scenario_controller_config(loads_scenario(text))
    assert plain.planner == "least_laxity"
    assert plain.planner_settings == PlannerSettings()
    sc = loads_scenario(
        text + '\n[control]\nplanner = "horizon"\nplanner_interval_s = 120\n'
        "planner_default_stay_s = 28800\nplanner_time_limit_s = 0.5\n"
        "planner_load_window_s = 21600\nplanner_finish_early_s = 1800\n"
    )
    cfg = scenario_controller_config(sc)
    assert cfg.planner == "horizon"
    assert cfg.planner_settings.interval_s == 120.0
    assert cfg.planner_settings.default_stay_s == 28800.0
    assert cfg.planner_settings.time_limit_s == 0.5
    assert cfg.planner_settings.load_window_s == 21600.0
    assert cfg.planner_settings.finish_early_s == 1800.0
    assert cfg.urgent_laxity_s == 3600.0  # least laxity stays under the plan's caps
    off = scenario_controller_config(loads_scenario(text + '\n[control]\nplanner = "off"\n'))
    assert off.urgent_laxity_s == 0.0


def test_the_controller_builds_the_planner_only_for_horizon() -> None:
    text = (SCENARIOS / "departures_announced.toml").read_text()
    clock = VirtualClock()
    for name, built in (("least_laxity", False), ("off", False), ("horizon", True)):
        cfg = scenario_controller_config(
            loads_scenario(text + f'\n[control]\nplanner = "{name}"\n')
        )
        ctl = Controller(
            clock=clock,
            config=cfg,
            meter=None,  # type: ignore[arg-type]  # never polled here
            chargers={s.id: None for s in cfg.chargers},  # type: ignore[misc]
        )
        assert (ctl.planner is not None) is built
