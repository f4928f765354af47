"""Smoke test of the OCPP benchmark harness (``bench/ocpp.py``) at a tiny size.

Runs the real harness: a virtual CEMM and 10 virtual OCPP charge points in this process, the edge
as a ``fuseguard run`` subprocess, 2 meter steps, a short footprint window and the reconnect
storm. No timing assertions: it proves that every step's new limit reached every charge point as
an Accepted lease profile, that the storm re-booted and re-profiled every one, and that the result
files have the documented shape.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ..benchkit import BENCH_DIR, load_bench

BENCH = BENCH_DIR / "ocpp.py"
CHARGE_POINTS = 10
#: ``bench/ocpp.py --quick`` (its ``main``: options, run, result files) with two paces that only
#: serve a measurement this test does not judge made shorter: the CPU/RSS window (10 s in a quick
#: run; 2 s still gives a CPU share and an RSS) and the gap before each meter step (the load
#: changes 2-4 s after the last telegram, at a random phase of the meter's 1 s period, and the
#: next regular telegram carries it; 1-2 s is as random a phase).
#: Every step, profile and storm check is the harness's own. (The edge keeps its 5 s raise hold,
#: unlike ``smoke_edge``'s: it learns a car's current from MeterValues every 10 s only. Since
#: round 9 it runs with the default ``min_pause_s`` (900 s): a start-up pause of the cars, the
#: OCPP start-up race, would fail the harness's settling within 120 s; round 12 closed the last
#: form of it, cars starting under the charge point's own limit before the first write is in
#: force, and with it the one retry this test had.)
SMOKE_DRIVER = """
import importlib.util, sys
path = sys.argv.pop(1)
spec = importlib.util.spec_from_file_location("fuseguard_bench_ocpp_smoke", path)
bench = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
measure, one_step = bench.measure, bench.one_step

async def short_window(chargers, steps, window_s, **kwargs):
    return await measure(chargers, steps, 2.0, **kwargs)

async def short_gap(bench_, proc, expected, gap_s):
    return await one_step(bench_, proc, expected, gap_s / 2.0)

bench.measure, bench.one_step = short_window, short_gap
bench.main()
"""


def test_edge_config_has_one_ocpp_charger_per_charge_point() -> None:
    bench = load_bench("ocpp")

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


def _run_quick(tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    """One ``bench/ocpp.py --quick`` run. (Round 15 ran it once more on the start-up pause,
    all ten cars paused by the edge's first decision with their chargers readable; round 16
    fixed its cause, a meter sample's split kept from before the chargers were measured:
    ``tests/control/test_startup_split.py``, docs/safety.md "One meter sample, one split".)"""
    logs, out = tmp_path / "logs", tmp_path / "out"
    cmd = [sys.executable, "-c", SMOKE_DRIVER, str(BENCH), "--quick",
           "--out", str(out), "--keep-logs", str(logs)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=160, check=False)
    return done, out, logs


@pytest.mark.timeout(240)  # a slow edge start on a loaded machine
def test_ocpp_bench_quick(tmp_path: Path) -> None:
    """``bench/ocpp.py --quick`` in its own process (in this one, state left behind by the edge
    benchmark's smoke test made the virtual CEMM's telegrams look stale to the edge), paced as
    :data:`SMOKE_DRIVER` says."""
    done, out, logs = _run_quick(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    row = json.loads((out / "ocpp.json").read_text())
    assert row["chargers"] == CHARGE_POINTS
    assert [s["expected_a"] for s in row["steps"]] == [15, 14, 13]
    for step in row["steps"]:
        assert step["affected"] == CHARGE_POINTS, step
        assert step["at_expected"] == CHARGE_POINTS, step
    assert row["profiles_expected"] == row["profiles_accepted"] == 3 * CHARGE_POINTS
    assert row["profile_p50_s"] > 0
    storm = row["storm"]
    assert storm["dropped"] == storm["booted"] == storm["reprofiled"] == CHARGE_POINTS
    assert storm["all_s"] > 0
    assert row["rss_mb"] > 0
    assert row["cpu_pct"] >= 0
    assert row["footprint_window_s"] == 2.0  # the driver's window is the one measured
    assert set(row["met"]) == {"profile_p99", "cpu", "rss", "storm"}
    # the default meter keeps its period through the steps (the count itself is scheduling:
    # a bench process stalled for two periods would freeze it, so it is reported, not judged)
    assert row["meter"] == "regular"
    assert isinstance(row["meter_unavailable_after_settle"], int)
    assert "CP010" in (logs / f"edge-ocpp-{CHARGE_POINTS}.log").read_text()
    markdown = (out / "ocpp.md").read_text()
    assert f"{CHARGE_POINTS} virtual charge points" in markdown
    assert "Load average" in markdown
    assert "`meter_unavailable` in the edge log after start-up | regular;" in markdown
