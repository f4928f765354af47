"""``--loop uvloop`` where uvloop is not installed (Windows): a clear error, exit 2, no traceback.

Round 14 left this as an ImportError traceback from deep inside ``asyncio.Runner``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fuseguard.cli import app
from fuseguard.serving import LoopUnavailableError, loop_factory


@pytest.fixture
def no_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    """``import uvloop`` fails as it does where uvloop has no build."""
    monkeypatch.setitem(sys.modules, "uvloop", None)


@pytest.mark.usefixtures("no_uvloop")
def test_the_factory_names_the_missing_loop_and_the_choices() -> None:
    with pytest.raises(LoopUnavailableError, match=r"not installed.*auto or asyncio"):
        loop_factory("uvloop")
    assert loop_factory("asyncio") is None


@pytest.mark.usefixtures("no_uvloop")
def test_run_refuses_a_missing_uvloop_before_anything_starts(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["run", "--config", str(tmp_path / "absent.toml"), "--loop", "uvloop"]
    )
    assert result.exit_code == 2
    assert "fuseguard run: --loop uvloop: the uvloop event loop is not installed" in result.output
    assert not isinstance(result.exception, ImportError)


@pytest.mark.usefixtures("no_uvloop")
def test_cloud_refuses_a_missing_uvloop_with_the_setting(tmp_path: Path) -> None:
    cfg = tmp_path / "cloud.toml"
    cfg.write_text('[server]\nloop = "uvloop"\n')
    result = CliRunner().invoke(app, ["cloud", "-c", str(cfg)])
    assert result.exit_code == 2
    assert "server.loop = 'uvloop'" in result.output
    assert "not installed" in result.output
