"""``GET /metrics``: served over HTTP, parsed with prometheus_client's own parser."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from fuseguard.api.metrics import build_registry, create_metrics_app
from fuseguard.control.flex import FlexManagement
from fuseguard.control.types import ControllerStatus
from fuseguard.model.clock import VirtualClock
from fuseguard.serving import serve_app

from .statuskit import EVSE_A, site_config, status

Families = dict[str, tuple[str, list[Sample]]]


class Feed:
    """The status the collector sees (what ``Controller.status`` would return)."""

    def __init__(self) -> None:
        self.now: ControllerStatus = status()

    def __call__(self) -> ControllerStatus:
        return self.now


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, Feed, object, FlexManagement]]:
    feed = Feed()
    clock = VirtualClock()
    flex = FlexManagement(clock, fuse_a=32.0, timeout_s=60)
    cfg = site_config(tmp_path)
    registry, counters = build_registry(feed, cfg.site.circuit_tree(), flex)
    app = create_metrics_app(registry, user="prom", password="s3cret-metrics")
    handle = await serve_app(app, "127.0.0.1", 0)
    try:
        yield handle.url, feed, counters, flex
    finally:
        await handle.close()


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": aiohttp.encode_basic_auth(user, password)}


async def scrape(url: str, headers: dict[str, str] | None) -> tuple[int, str, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(url + "/metrics", headers=headers) as resp,
    ):
        return resp.status, resp.headers.get("content-type", ""), await resp.text()


def families(text: str) -> Families:
    return {f.name: (f.type, list(f.samples)) for f in text_string_to_metric_families(text)}


def value(fams: Families, name: str, sample: str | None = None, **labels: str) -> float:
    _, samples = fams[name]
    hits = [
        s.value
        for s in samples
        if (sample is None or s.name == sample)
        and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(hits) == 1, (name, labels, hits)
    return hits[0]


AUTH = basic("prom", "s3cret-metrics")


async def test_names_types_and_labels(served) -> None:  # type: ignore[no-untyped-def]
    url, feed, counters, _flex = served
    for _ in range(3):
        counters.observe(feed.now)
    code, ctype, text = await scrape(url, AUTH)
    assert code == 200
    assert ctype.startswith("text/plain") and "version=" in ctype
    fams = families(text)
    expected_types = {
        "fuseguard_phase_current_amperes": "gauge",
        "fuseguard_phase_limit_amperes": "gauge",
        "fuseguard_non_ev_current_amperes": "gauge",
        "fuseguard_grid_power_watts": "gauge",
        "fuseguard_device_online": "gauge",
        "fuseguard_fallback_active": "gauge",
        "fuseguard_limit_source": "gauge",
        "fuseguard_plug_current_amperes": "gauge",
        "fuseguard_plug_setpoint_amperes": "gauge",
        "fuseguard_plug_power_watts": "gauge",
        "fuseguard_plug_status": "gauge",
        "fuseguard_plug_energy_watt_hours": "counter",
        "fuseguard_device_read_errors": "counter",
        "fuseguard_fallbacks": "counter",
        "fuseguard_control_cycles": "counter",
        "fuseguard_control_cycle_duration_seconds": "histogram",
    }
    for name, kind in expected_types.items():
        assert name in fams, name
        assert fams[name][0] == kind, (name, fams[name][0])
    # counters are exposed with the _total suffix
    for name in ("fuseguard_plug_energy_watt_hours", "fuseguard_device_read_errors"):
        assert {s.name for s in fams[name][1]} >= {name + "_total"}
    # label sets
    for name in ("fuseguard_phase_current_amperes", "fuseguard_phase_limit_amperes",
                 "fuseguard_non_ev_current_amperes"):  # fmt: skip
        for s in fams[name][1]:
            assert set(s.labels) == {"circuit", "phase"}, (name, s.labels)
            assert s.labels["phase"] in {"L1", "L2", "L3"}
    assert {s.labels["circuit"] for s in fams["fuseguard_phase_current_amperes"][1]} == {
        "main",
        "garage",
    }
    for s in fams["fuseguard_plug_current_amperes"][1]:
        assert set(s.labels) == {"plug", "evse", "phase"}
    # values
    assert value(fams, "fuseguard_phase_current_amperes", circuit="main", phase="L3") == 22.0
    # garage: its non-EV load plus wb1's measured draw
    assert value(fams, "fuseguard_phase_current_amperes", circuit="garage", phase="L1") == (
        pytest.approx(1.0 + 15.9)
    )
    assert value(fams, "fuseguard_phase_limit_amperes", circuit="garage", phase="L2") == 25.0
    assert value(fams, "fuseguard_non_ev_current_amperes", circuit="main", phase="L1") == 4.1
    assert value(fams, "fuseguard_plug_setpoint_amperes", plug="wb1", evse=EVSE_A) == 16
    assert value(
        fams, "fuseguard_plug_energy_watt_hours", "fuseguard_plug_energy_watt_hours_total",
        plug="wb1",
    ) == 4321.0  # fmt: skip
    assert value(fams, "fuseguard_plug_status", plug="wb1", status="charging") == 1.0
    assert value(fams, "fuseguard_plug_status", plug="wb1", status="idle") == 0.0
    assert value(fams, "fuseguard_device_online", device="meter") == 1.0
    assert value(fams, "fuseguard_device_online", device="wb2/2") == 0.0
    assert value(fams, "fuseguard_limit_source", source="fuse") == 1.0
    assert (
        value(
            fams,
            "fuseguard_device_read_errors",
            "fuseguard_device_read_errors_total",
            device="wb2/2",
        )
        == 3.0
    )
    assert (
        value(
            fams, "fuseguard_device_read_errors", "fuseguard_device_read_errors_total", device="wb1"
        )
        == 0.0
    )
    assert value(
        fams, "fuseguard_control_cycle_duration_seconds",
        "fuseguard_control_cycle_duration_seconds_count",
    ) == 3.0  # fmt: skip
    assert value(
        fams, "fuseguard_control_cycle_duration_seconds",
        "fuseguard_control_cycle_duration_seconds_bucket", le="0.005",
    ) == 3.0  # fmt: skip


async def test_fallbacks_count_entries_and_limit_source_follows_flex(served) -> None:  # type: ignore[no-untyped-def]
    url, feed, counters, flex = served
    counters.observe(feed.now)
    for _ in range(4):  # one entry into the meter fallback, lasting four cycles
        counters.observe(status(meter_ok=False, meter_fallback=True))
    counters.observe(feed.now)
    counters.observe(status(meter_fallback=True))  # a second entry
    flex.update(activation=True, current_limit_a=20.0)
    fams = families((await scrape(url, AUTH))[2])
    total = "fuseguard_fallbacks_total"
    assert value(fams, "fuseguard_fallbacks", total, kind="meter") == 2.0
    assert value(fams, "fuseguard_fallbacks", total, kind="ems") == 0.0
    errors = "fuseguard_device_read_errors_total"
    assert value(fams, "fuseguard_device_read_errors", errors, device="meter") == 4.0
    assert value(fams, "fuseguard_limit_source", source="ems") == 1.0
    assert value(fams, "fuseguard_limit_source", source="fuse") == 0.0


async def test_basic_auth_is_enforced(served) -> None:  # type: ignore[no-untyped-def]
    url = served[0]
    code, _, _ = await scrape(url, None)
    assert code == 401
    code, _, _ = await scrape(url, basic("prom", "wrong"))
    assert code == 401
    code, _, _ = await scrape(url, basic("other", "s3cret-metrics"))
    assert code == 401


async def test_without_password_no_auth_is_asked(tmp_path: Path) -> None:
    feed = Feed()
    registry, _ = build_registry(feed, site_config(tmp_path).site.circuit_tree())
    handle = await serve_app(create_metrics_app(registry), "127.0.0.1", 0)
    try:
        code, _, text = await scrape(handle.url, None)
    finally:
        await handle.close()
    assert code == 200
    assert "fuseguard_grid_power_watts 14500.0" in text
