from pathlib import Path

import pytest
from typer.testing import CliRunner

from fuseguard.cli import app
from fuseguard.config import ConfigError, load_config, locate_keys
from fuseguard.model.phases import Phases, Rotation

EXAMPLE = Path(__file__).parents[2] / "examples" / "site.toml"
runner = CliRunner()

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


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "site.toml"
    p.write_text(text)
    return p


def test_example_passes_check() -> None:
    result = runner.invoke(app, ["config", "check", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "OK"
    cfg = load_config(EXAMPLE)
    assert cfg.site.main_fuse == Phases(63, 63, 63)
    assert [c.id for c in cfg.chargers] == ["bay-1", "bay-2", "visitor"]
    assert cfg.chargers[1].rotation is Rotation.L2L3L1


def test_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg.api.local.port == 7000
    assert cfg.api.modbus.port == 5020
    assert cfg.api.evse.port == 3032
    assert cfg.api.local.keepalive_timeout_s == 120
    assert cfg.storage_url.startswith("sqlite+aiosqlite:///")


def test_wrong_type_names_key_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("main_fuse_a = 35", 'main_fuse_a = "big"'))
    result = runner.invoke(app, ["config", "check", str(path)])
    assert result.exit_code == 2
    assert f"{path}:4: site.main_fuse_a:" in result.output


def test_unknown_key(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace('label = "Plug 1"', 'label = "Plug 1"\n  colour = 3'))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    (problem,) = err.value.problems
    assert problem.key == "chargers[0].plugs[0].colour"
    assert problem.message == "unknown key"
    assert problem.line == 12


def test_duplicate_uuid(tmp_path: Path) -> None:
    text = MINIMAL.replace("6bbf9fd56dc24f9697b078d5d8ccda84", "25104c56d7f848af830af4300193efb3")
    result = runner.invoke(app, ["config", "check", str(write(tmp_path, text))])
    assert result.exit_code == 2
    assert "chargers[0].plugs[0].uuid" in result.output
    assert "duplicate uuid 25104c56d7f848af830af4300193efb3" in result.output


def test_bad_uuid_and_unknown_circuit(tmp_path: Path) -> None:
    text = MINIMAL.replace('id = "cp1"', 'id = "cp1"\ncircuit = "attic"').replace(
        "6bbf9fd56dc24f9697b078d5d8ccda84", "6BBF-not-hex"
    )
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert any("32 lowercase hex" in p.message for p in err.value.problems)


def test_not_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, "[site\nedge_id = 1"))
    assert "not valid TOML" in err.value.problems[0].message
    assert err.value.problems[0].line == 1


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read file"):
        load_config(tmp_path / "nope.toml")


def test_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUSEGUARD_API__LOCAL__PASSWORD", "s3cret-from-env")
    monkeypatch.setenv("FUSEGUARD_SITE__MAIN_FUSE_A", "[50, 50, 40]")
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg.api.local.password.get_secret_value() == "s3cret-from-env"
    assert cfg.site.main_fuse == Phases(50, 50, 40)


def test_circuit_tree_errors(tmp_path: Path) -> None:
    text = MINIMAL + '\n[[site.circuits]]\nid = "a"\nparent = "b"\nfuse_a = 20\n'
    text = text.replace(
        "[[chargers]]", '[[site.circuits]]\nid = "b"\nparent = "a"\nfuse_a = 20\n\n[[chargers]]', 1
    )
    # site.circuits must come inside [site]: move them up
    text = text.replace("main_fuse_a = 35\n", "main_fuse_a = 35\n", 1)
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert any("cycle" in p.message for p in err.value.problems)


def test_locate_keys_nested_arrays() -> None:
    lines = locate_keys(MINIMAL + MINIMAL.split("\n", 5)[5])
    assert lines["site.main_fuse_a"] == 4
    assert lines["chargers[0].plugs[0].uuid"] == 10
    assert "chargers[1].plugs[0].uuid" in lines


def test_version() -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0
    assert result.output.strip() == "0.1.0"


def test_run_refuses_the_example_password_before_touching_any_device(tmp_path: Path) -> None:
    # examples/site.toml points at 192.168.1.x devices: refusing must happen first
    result = runner.invoke(app, ["run", "--config", str(EXAMPLE)])
    assert result.exit_code == 2
    assert "example value" in result.output


def test_run_refuses_an_empty_password(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "--config", str(write(tmp_path, MINIMAL))])
    assert result.exit_code == 2
    assert "password is empty" in result.output


def test_run_reports_a_broken_config(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("main_fuse_a = 35", "main_fuse_a = -1"))
    result = runner.invoke(app, ["run", "--config", str(path)])
    assert result.exit_code == 2
    assert "site.main_fuse_a" in result.output


def test_underuse_after_reaches_the_controller_and_is_bounded(tmp_path: Path) -> None:
    """``[control] underuse_after_s`` (the demand cap's patience) goes through the one config ->
    controller translation; the default is the controller's; out of range names key and line."""
    import dataclasses

    from fuseguard.config.controller import controller_config_of
    from fuseguard.control.types import ControllerConfig

    default = controller_config_of(load_config(write(tmp_path, MINIMAL)))
    field = {f.name: f for f in dataclasses.fields(ControllerConfig)}["underuse_after_s"]
    assert default.underuse_after_s == field.default == 30.0
    set_ = load_config(write(tmp_path, MINIMAL + "\n[control]\nunderuse_after_s = 3600\n"))
    assert controller_config_of(set_).underuse_after_s == 3600.0
    head = MINIMAL + "\n[control]\n"
    path = write(tmp_path, head + "underuse_after_s = 0\n")
    result = runner.invoke(app, ["config", "check", str(path)])
    assert result.exit_code == 2
    line = head.count("\n") + 1
    assert f"{path}:{line}: control.underuse_after_s:" in result.output
