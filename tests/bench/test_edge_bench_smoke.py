"""Smoke test of the edge benchmark harness (``bench/edge.py``) at a tiny size.

Runs the real harness: virtual CEMM + 2 virtual Benders in this process, the edge as a
``fuseguard run`` subprocess (raise hold 1 s: ``smoke_edge``), 3 meter steps. No timing assertions: it proves that every step
reached every charger and that the result files have the documented shape.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from ..benchkit import load_bench
from .smoke_edge import edge_command


def _load_bench() -> ModuleType:
    return load_bench("edge")


def test_base_loads_change_every_setpoint() -> None:
    bench = _load_bench()
    for chargers in (2, 10, 100):
        fuse_a = bench.main_fuse_a(chargers)
        for setpoint in range(bench.BOTTOM_SETPOINT_A, bench.TOP_SETPOINT_A + 1):
            # worst-case phase assumption: 3 x base per phase is non-EV load
            base_a = bench.base_load_a(chargers, setpoint)
            assert (fuse_a - 3 * base_a) // chargers == setpoint
    assert bench.CAR_A < bench.BOTTOM_SETPOINT_A


async def test_edge_bench_tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bench = _load_bench()
    monkeypatch.setattr(bench, "_fuseguard_command", edge_command)  # settles sooner
    result = await bench.measure_size(2, 3, keep_dir=tmp_path / "logs")

    assert len(result.steps) == 3
    assert [s.direction for s in result.steps] == ["down", "down", "down"]
    assert [s.expected_a for s in result.steps] == [15, 14, 13]
    for step in result.steps:
        assert step.chargers_written == 2, step
        assert step.reaction_ms is not None and step.reaction_ms > 0
        assert step.controller_ms is not None and step.controller_ms >= 0
        assert step.poll_wait_ms is not None and step.poll_wait_ms >= 0
    # every virtual charger got the new setpoint after every step (from the edge log too)
    log = (tmp_path / "logs" / "edge-2.log").read_text()
    assert log.count('"event": "setpoint"') >= 2 * 3
    assert result.rss_mb > 0
    assert result.cpu_pct >= 0

    rows = bench.write_results([result], tmp_path, quick=True)
    on_disk = json.loads((tmp_path / "edge.json").read_text())
    assert on_disk == rows
    assert len(rows) == 1
    assert set(rows[0]) == set(bench.ROW_KEYS)
    assert rows[0]["chargers"] == 2
    for key in bench.ROW_KEYS[1:]:
        assert isinstance(rows[0][key], float), key
    markdown = (tmp_path / "edge.md").read_text()
    assert "| 2 | 3/3 |" in markdown
    assert "RSS <= 120 MB" in markdown
