"""``fuseguard demo --mqtt URL --metrics-port 0`` as a real process: state, discovery, metrics,
and the last will when the process is killed with SIGKILL (no chance to say goodbye)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from .conftest import Probe

EDGE = "demo-edge"


async def _wait_file(path: Path, proc: subprocess.Popen[bytes], timeout_s: float) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"demo exited early with {proc.returncode}")
        if path.exists():
            try:
                return json.loads(path.read_text())
            except ValueError:
                pass  # being written
        await asyncio.sleep(0.1)
    raise AssertionError(f"{path} did not appear")


def configs(probe: Probe, ha_prefix: str) -> set[str]:
    return {
        t for t, _, _ in probe.messages if t.startswith(ha_prefix + "/") and t.endswith("/config")
    }


async def test_demo_publishes_and_the_will_says_offline_after_kill_9(
    broker_url: str, prefixes: tuple[str, str], probe_factory: Any, tmp_path: Path
) -> None:
    topic_prefix, ha_prefix = prefixes
    base = f"{topic_prefix}/{EDGE}"
    probe: Probe = await probe_factory(f"{base}/#", f"{ha_prefix}/#")
    cmd = [
        sys.executable, "-c", "from fuseguard.cli import main; main()", "demo", "--headless",
        "--data-dir", str(tmp_path), "--local-api-port", "0", "--modbus-port", "0",
        "--evse-api-port", "0", "--metrics-port", "0", "--mqtt", broker_url,
        "--mqtt-prefix", topic_prefix, "--ha-prefix", ha_prefix,
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        info = await _wait_file(tmp_path / "demo.json", proc, 60)
        assert info["mqtt"]["base_topic"] == base
        await probe.wait_for(lambda: probe.last(f"{base}/status") == b"online", 20)
        await probe.wait_for(lambda: probe.last(f"{base}/plug/bay-3/reason") is not None, 20)
        # 14 edge entities, 14 per plug (3 plugs; the demo's plug settings are writable: mode,
        # priority and the departure's text, number, button and timestamp sensor)
        await probe.wait_for(lambda: len(configs(probe, ha_prefix)) == 14 + 3 * 14, 20)
        topics = {t for t, _, _ in probe.messages}
        for rel in ("site/grid_power_w", "site/limit_a/l1", "site/limit_source",
                    "plug/bay-1/status", "plug/bay-1/setpoint_a", "plug/bay-2/energy_kwh"):  # fmt: skip
            assert f"{base}/{rel}" in topics, rel
        # the demo's /metrics, from the real controller
        async with aiohttp.ClientSession() as session, session.get(info["metrics"]["url"]) as r:
            assert r.status == 200
            text = await r.text()
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        assert fams["fuseguard_phase_limit_amperes"].type == "gauge"
        plugs = {s.labels["plug"] for s in fams["fuseguard_plug_setpoint_amperes"].samples}
        assert plugs == {"bay-1", "bay-2", "bay-3"}
        assert fams["fuseguard_control_cycle_duration_seconds"].type == "histogram"
        count = next(
            s.value
            for s in fams["fuseguard_control_cycle_duration_seconds"].samples
            if s.name.endswith("_count")
        )
        assert count >= 1
        # SIGKILL: the broker must publish the last will
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        await probe.wait_for(lambda: probe.last(f"{base}/status") == b"offline", 30)
        fresh = Probe(broker_url, (f"{base}/status",))
        await fresh.start()
        await fresh.wait_for(lambda: fresh.last(f"{base}/status") is not None, 5)
        await fresh.stop()
        assert fresh.latest()[f"{base}/status"] == (b"offline", True), "the will is retained"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
