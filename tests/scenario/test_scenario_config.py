"""Scenario file parsing: the portable keys, defaults, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from fuseguard.model.phases import Phases, Rotation
from fuseguard.scenario.config import ScenarioError, load_scenario, loads_scenario

ISSUE_EXAMPLE = """
[site]
voltage_v = 230
fuse_a = 35
duration_s = 86400
meter = "phases"
meter_period_s = 1

[[circuits]]
id = "garage"
parent = "main"
fuse_a = 32

[base_load]
points = [[0, [8, 4, 6]], [28800, [30, 20, 25]], [64800, [12, 6, 9]]]

[pv]
peak_w = 10000
sunrise_s = 25200
sunset_s = 72000

[[chargers]]
id = "cp1"
circuit = "garage"
max_a = 32
rotation = "L1L2L3"
mode = "fast"
priority = 0

[[cars]]
charger = "cp1"
arrive_s = 3600
depart_s = 32400
energy_wh = 30000
phases = 3
max_a = 16

[[events]]
at_s = 7200
flex = { activation = true, current_limit_a = 25, fallback_a = 10 }
[[events]]
at_s = 9000
keepalive = "stop"
[[events]]
at_s = 10000
target = { charger = "cp1", current_a = 10, duration_s = 1800 }
[[events]]
at_s = 20000
fault = { device = "meter", kind = "offline", duration_s = 300 }
"""


def test_issue_example_parses() -> None:
    sc = loads_scenario(ISSUE_EXAMPLE)
    assert sc.site.fuse_a == 35
    assert sc.circuit_fuses == {"main": Phases.uniform(35), "garage": Phases.uniform(32)}
    assert sc.path_to_main("garage") == ["garage", "main"]
    assert sc.chargers[0].rotation is Rotation.L1L2L3
    assert len(sc.chargers[0].evse_uuid) == 32
    assert [e.at_s for e in sc.events] == [7200, 9000, 10000, 20000]
    assert sc.cars[0].name == "cp1@3600"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (ISSUE_EXAMPLE.replace("fuse_a = 35", "fuse_a = 35\nfuse = 3"), "unknown key 'site.fuse'"),
        (
            ISSUE_EXAMPLE.replace('mode = "fast"', 'mode = "fast"\nspeed = 1'),
            "unknown key 'chargers.0.speed'",
        ),
        (ISSUE_EXAMPLE.replace("[pv]", "[pv]\ncolour = 1"), "unknown key 'pv.colour'"),
        (ISSUE_EXAMPLE + "\n[weather]\nsun = 1\n", "unknown key 'weather'"),
        (
            ISSUE_EXAMPLE.replace('kind = "offline"', 'kind = "offline", why = 1'),
            "unknown key 'events.3.fault.why'",
        ),
    ],
)
def test_unknown_keys_are_errors_naming_the_key(text: str, needle: str) -> None:
    with pytest.raises(ScenarioError) as err:
        loads_scenario(text, "x.toml")
    assert needle in str(err.value)
    assert "x.toml" in str(err.value)


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ('circuit = "garage"', 'circuit = "attic"', "unknown circuit 'attic'"),
        ('charger = "cp1"\narrive', 'charger = "cp9"\narrive', "unknown charger 'cp9'"),
        ("depart_s = 32400", "depart_s = 100", "depart_s must be after"),
        ('device = "meter"', 'device = "fridge"', "unknown fault device"),
        ('kind = "offline"', 'kind = "stuck_contactor"', "no contactor"),
        ('kind = "offline"', 'kind = "rcd_trip"', "does not apply to a meter"),
        ('kind = "offline"', 'kind = "melted"', "events.3.fault.kind"),
        (
            'device = "meter", kind = "offline"',
            'device = "cp1", kind = "rejects_profiles"',
            "charger fault 'rejects_profiles' is not simulated",
        ),
        ('keepalive = "stop"', 'keepalive = "pause"', "events.1.keepalive"),
        ("phases = 3", "phases = 4", "cars.0.phases"),
    ],
)
def test_invalid_values_are_reported(old: str, new: str, needle: str) -> None:
    assert old in ISSUE_EXAMPLE
    with pytest.raises(ScenarioError, match=needle):
        loads_scenario(ISSUE_EXAMPLE.replace(old, new, 1))


def test_event_needs_exactly_one_action() -> None:
    text = (
        ISSUE_EXAMPLE + '\n[[events]]\nat_s = 1\nkeepalive = "stop"\nflex = {activation = true}\n'
    )
    with pytest.raises(ScenarioError, match="exactly one action"):
        loads_scenario(text)


def test_bad_toml_is_a_scenario_error() -> None:
    with pytest.raises(ScenarioError, match="not valid TOML"):
        loads_scenario("[site\n")


def test_library_has_at_least_12_documented_scenarios() -> None:
    files = sorted(Path("scenarios").glob("*.toml"))
    assert len(files) >= 12
    for f in files:
        text = f.read_text(encoding="utf-8")
        assert text.startswith("#"), f"{f} must say in a comment what it tests"
        assert "Tests:" in text, f
        load_scenario(f)
