"""Smoke test of the OCPP benchmark harness (``bench/ocpp.py``) at a tiny size.

Runs the real harness: a virtual CEMM and 10 virtual OCPP charge points in this process, the edge
as a ``fuseguard run`` subprocess, 2 meter steps, a short footprint window and the reconnect
storm. No timing assertions: it proves that every step's new limit reached every charge point as
an Accepted lease profile, that the storm re-booted and re-profiled every one, and that the result
files have the documented shape.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "ocpp.py"
CHARGE_POINTS = 10


def _load_bench() -> ModuleType:
    name = "fuseguard_bench_ocpp"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_edge_config_has_one_ocpp_charger_per_charge_point() -> None:
    bench = _load_bench()

    class _Handle:
        port = 1502

    class _Station:
        def __init__(self, i: int) -> None:
            self.identity = f"CP{i + 1:03d}"

    fake = type(
        "B", (), {"cemm": _Handle(), "port": 9000, "stations": [_Station(i) for i in range(3)]}
    )
    text = bench.edge_toml(fake, Path("/tmp/data"))
    assert text.count('driver = "ocpp"') == 3
    assert 'ocpp_id = "CP003"' in text
    assert f'ocpp_password = "{bench.password(2)}"' in text
    assert "port = 9000" in text
    assert f"meter_interval_s = {bench.METER_INTERVAL_S}" in text


@pytest.mark.timeout(180)  # a slow edge start under a loaded machine (see the lead's report)
async def test_ocpp_bench_tiny(tmp_path: Path) -> None:
    bench = _load_bench()
    # a settle failure raises (with a count) well inside the test timeout
    result = await bench.measure(
        CHARGE_POINTS, 2, 3.0, keep_dir=tmp_path / "logs", settle_timeout_s=75.0
    )

    assert [s.expected_a for s in result.steps] == [15, 14]
    for step in result.steps:
        assert step.affected == CHARGE_POINTS, step
        assert step.at_expected == CHARGE_POINTS, step
        assert all(x > 0 for x in step.latencies_s)
    assert result.storm.dropped == CHARGE_POINTS
    assert result.storm.booted == CHARGE_POINTS
    assert result.storm.reprofiled == CHARGE_POINTS
    assert result.storm.all_s is not None and result.storm.all_s > 0
    assert result.rss_mb > 0
    assert result.cpu_pct >= 0
    log = (tmp_path / "logs" / f"edge-ocpp-{CHARGE_POINTS}.log").read_text()
    assert "CP010" in log

    row = bench.write_results(result, tmp_path, quick=True)
    assert json.loads((tmp_path / "ocpp.json").read_text()) == row
    assert row["profiles_expected"] == row["profiles_accepted"] == 2 * CHARGE_POINTS
    assert set(row["met"]) == {"profile_p99", "cpu", "rss", "storm"}
    markdown = (tmp_path / "ocpp.md").read_text()
    assert f"{CHARGE_POINTS} virtual charge points" in markdown
    assert "Load average" in markdown
