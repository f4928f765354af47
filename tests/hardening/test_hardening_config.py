"""Issue 17 item 6 (config part): NaN and infinity never pass config validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from fuseguard.config import ConfigError, load_config

MINIMAL = """
[site]
edge_id = "e1"
main_fuse_a = 35

[[chargers]]
id = "cp1"
evse_uuid = "25104c56d7f848af830af4300193efb3"
  [[chargers.plugs]]
  uuid = "6bbf9fd56dc24f9697b078d5d8ccda84"
  label = "Plug 1"
"""


def _load(tmp_path: Path, text: str) -> ConfigError:
    path = tmp_path / "site.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value


@pytest.mark.parametrize(
    "fuse", ["[25, nan, 25]", "nan", "inf", "[25, 25, -inf]", "[25, 25, +inf]"]
)
def test_non_finite_fuse_is_a_config_error(tmp_path: Path, fuse: str) -> None:
    err = _load(tmp_path, MINIMAL.replace("main_fuse_a = 35", f"main_fuse_a = {fuse}"))
    assert any(p.key == "site.main_fuse_a" for p in err.problems), err.problems


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("meter", "stale_after_s", "inf"),
        ("meter", "period_s", "nan"),
        ("control", "charger_timeout_s", "inf"),
        ("control", "min_run_s", "nan"),
        ("control", "ramp_up_a_per_s", "inf"),
        ("api.local", "default_fallback_a", "inf"),
        ("api.local", "default_fallback_a", "nan"),
        ("api.local", "keepalive_timeout_s", "inf"),
        ("site", "power_limit_w", "inf"),
        ("site", "voltage_v", "nan"),
        ("cloud", "status_interval_s", "inf"),
    ],
)
def test_non_finite_float_anywhere_is_a_config_error(
    tmp_path: Path, section: str, key: str, value: str
) -> None:
    if section == "site":
        text = MINIMAL.replace("main_fuse_a = 35", f"main_fuse_a = 35\n{key} = {value}")
    else:
        text = f"{MINIMAL}\n[{section}]\n{key} = {value}\n"
    err = _load(tmp_path, text)
    assert any(p.key == f"{section}.{key}" for p in err.problems), err.problems


def test_non_finite_environment_override_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FUSEGUARD_CONTROL__CHARGER_TIMEOUT_S", "inf")
    err = _load(tmp_path, MINIMAL)
    assert any("charger_timeout_s" in p.key for p in err.problems), err.problems


def test_huge_but_finite_timeouts_are_out_of_range(tmp_path: Path) -> None:
    err = _load(tmp_path, f"{MINIMAL}\n[control]\ncharger_timeout_s = 1e300\n")
    assert any(p.key == "control.charger_timeout_s" for p in err.problems)


def test_finite_config_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(MINIMAL.replace("main_fuse_a = 35", "main_fuse_a = [25, 32, 25]"))
    cfg = load_config(path)
    assert cfg.site.main_fuse_a == (25.0, 32.0, 25.0)
