"""The replica's event loop and HTTP parser options (``server.loop``, ``server.http``).

``auto`` takes uvloop / httptools when installed and falls back to asyncio / h11 when not; an
explicit choice that is not installed fails at start. The guards of each parser are proven in
``test_cloud_server_limits.py`` (every test runs with both).
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fuseguard import serving
from fuseguard.cli import app
from fuseguard.cloud import app as cloud_app
from fuseguard.cloud.config import CloudSettings, ServerSection, load_cloud_settings
from fuseguard.serving import choice
from fuseguard.serving.httptools_guard import GuardedHttpToolsProtocol

uvloop = pytest.importorskip("uvloop")
pytest.importorskip("httptools")


def _not_installed(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    real = choice._has
    monkeypatch.setattr(choice, "_has", lambda m: m not in modules and real(m))


def test_auto_takes_uvloop_and_httptools_when_installed() -> None:
    assert serving.loop_factory("auto") is uvloop.new_event_loop
    assert serving.loop_factory("uvloop") is uvloop.new_event_loop
    assert serving.loop_factory("asyncio") is None
    assert serving.http_protocol("auto") is GuardedHttpToolsProtocol
    assert serving.http_protocol("h11") is serving.GuardedH11Protocol
    assert serving.http_protocol() is serving.GuardedH11Protocol  # the edge's servers: h11


def test_auto_falls_back_when_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    _not_installed(monkeypatch, "uvloop", "httptools")
    assert serving.loop_factory("auto") is None
    assert serving.http_protocol("auto") is serving.GuardedH11Protocol


def test_the_settings_take_the_options_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert ServerSection().loop == "auto"
    assert ServerSection().http == "auto"
    monkeypatch.setenv("FUSEGUARD_CLOUD_SERVER__LOOP", "asyncio")
    monkeypatch.setenv("FUSEGUARD_CLOUD_SERVER__HTTP", "h11")
    monkeypatch.setenv("FUSEGUARD_CLOUD_SERVER__MAX_CONNECTIONS", "1000")
    server = load_cloud_settings().server
    assert (server.loop, server.http, server.max_connections) == ("asyncio", "h11", 1000)
    monkeypatch.setenv("FUSEGUARD_CLOUD_SERVER__LOOP", "trio")
    with pytest.raises(ValueError, match="loop"):
        load_cloud_settings()


@pytest.mark.parametrize(("choice", "kind"), [("uvloop", "uvloop"), ("asyncio", "asyncio")])
def test_run_cloud_serves_in_the_chosen_loop(
    monkeypatch: pytest.MonkeyPatch, choice: str, kind: str
) -> None:
    seen: list[str] = []

    async def fake_serve(settings: CloudSettings, *, embedded_broker: bool = False) -> None:
        seen.append(type(asyncio.get_running_loop()).__module__.split(".")[0])

    monkeypatch.setattr(cloud_app, "serve_cloud", fake_serve)
    settings = CloudSettings(server=ServerSection(loop=choice))  # type: ignore[arg-type]
    cloud_app.run_cloud(settings)
    assert seen == [kind]


def test_the_cli_options_override_the_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cfg = tmp_path / "cloud.toml"
    cfg.write_text('[server]\nloop = "uvloop"\nhttp = "httptools"\nmax_connections = 100\n')
    runs: list[ServerSection] = []
    monkeypatch.setattr(
        cloud_app, "run_cloud", lambda settings, embedded_broker: runs.append(settings.server)
    )
    runner = CliRunner()
    assert runner.invoke(app, ["cloud", "-c", str(cfg)]).exit_code == 0
    result = runner.invoke(app, ["cloud", "-c", str(cfg), "--loop", "asyncio", "--http", "h11"])
    assert result.exit_code == 0, result.output
    assert [(s.loop, s.http, s.max_connections) for s in runs] == [
        ("uvloop", "httptools", 100),
        ("asyncio", "h11", 100),
    ]
    bad = runner.invoke(app, ["cloud", "-c", str(cfg), "--loop", "trio"])
    assert bad.exit_code == 2
    assert "loop" in bad.output


def test_the_http_layer_bench_runs_each_choice() -> None:
    """``bench/cloud_http.py`` at a tiny size: the server answers every pair (its client asserts
    201 and 200) and the row has the documented shape. No timing assertion."""
    bench_dir = Path(__file__).resolve().parents[2] / "bench"
    if str(bench_dir) not in sys.path:
        sys.path.insert(0, str(bench_dir))  # cloud_http imports its sibling cloud_agents
    spec = importlib.util.spec_from_file_location(
        "fuseguard_bench_cloud_http", bench_dir / "cloud_http.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    row = module.measure("uvloop", "httptools", 40, 2, warmup=4)
    assert (row["loop"], row["http"]) == ("uvloop", "httptools")
    assert float(row["cpu_us_per_pair"]) >= 0
    assert float(row["pairs_per_s"]) > 0
