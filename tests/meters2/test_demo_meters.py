"""The demo meters its garage with a virtual SDM630 and reads PV from a virtual SunSpec inverter,
through the real drivers, and control uses both."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import fuseguard.demo as demo
import fuseguard.demo.run as demo_run
from fuseguard.edge import Edge


async def test_the_demo_controls_with_the_garage_meter_and_the_pv_inverter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    edges: list[Edge] = []

    class RecordingEdge(Edge):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            edges.append(self)

    seen: dict[str, Any] = {}

    async def on_ready(info: dict[str, Any]) -> None:
        controller = edges[0].controller
        assert controller is not None
        await asyncio.sleep(4.0)  # a few meter periods of real time
        seen["status"] = controller.status()
        seen["garage"] = next(c for c in controller.config.circuits if c.id == demo.DEMO_GARAGE)

    monkeypatch.setattr(demo_run, "Edge", RecordingEdge)
    await demo.run_demo(
        data_dir=tmp_path,
        local_api_port=0,
        modbus_port=0,
        evse_api_port=0,
        headless=True,
        duration_s=1.0,
        on_ready=on_ready,
    )
    status = seen["status"]
    assert seen["garage"].meter is not None
    assert seen["garage"].meter.startswith("modbus:sdm630@127.0.0.1:")
    assert status.circuit_meter_fallback == ()  # the SDM630 answers and is fresh
    assert not status.meter_fallback
    # the workshop load (at least 2 A per phase) is measured, not the 0 A assumption
    assert status.non_ev_load_a[demo.DEMO_GARAGE].min >= 1.5
    assert status.limits_a[demo.DEMO_GARAGE].max == demo.DEMO_GARAGE_FUSE_A
    # the PV inverter is read (production is negative power, 0 at night)
    assert status.pv_power_w is not None
    assert status.pv_power_w <= 0.0
    bay3 = next(p for p in status.plugs if p.id == "bay-3")
    assert bay3.circuit == demo.DEMO_GARAGE
