"""``GET /metrics`` and ``GET /fleet`` of the cloud: real broker, real edge agents, SQLite."""

from __future__ import annotations

import base64
from typing import Any

import httpx2
import pytest
from cloudkit import VirtualEdge, api_client, cloud_settings, make_edge, wait_for
from prometheus_client.parser import text_string_to_metric_families

from fuseguard.cloud.app import CloudService
from fuseguard.cloud.config import CloudSettings, MetricsSection, WebSection
from fuseguard.model.status import PlugStatus

pytestmark = pytest.mark.mqtt


def _settings(mqtt_url: str, prefix: str, db_url: str, **extra: Any) -> CloudSettings:
    base = cloud_settings(mqtt_url, prefix, db_url, ack_timeout_s=2.0)
    return base.model_copy(update=extra)


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def _known(service: CloudService, edge: VirtualEdge) -> None:
    async def ok() -> bool:
        await service.backend.flush()
        return all(
            [await service.backend.evse(edge.edge_device_id, e.evse_uuid) for e in edge.evses]
        )

    await wait_for(ok)


def _families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def _value(fam: Any, suffix: str = "", **labels: str) -> float:
    for s in fam.samples:
        if s.name == fam.name + suffix and all(s.labels.get(k) == v for k, v in labels.items()):
            return float(s.value)
    msg = f"no sample {fam.name}{suffix} {labels}"
    raise AssertionError(msg)


async def _scrape(http: httpx2.AsyncClient, service: CloudService) -> dict[str, Any]:
    service.fleet_collector._refreshed = None  # no rate limit between the test's scrapes
    r = await http.get("/metrics", headers=_basic("prom", "s3cret"))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return _families(r.text)


def _check_fleet(fams: dict[str, Any], a: VirtualEdge, b: VirtualEdge) -> None:
    """Both edges online, a with 2 EVSEs and one plug charging, b with 1 EVSE."""
    assert fams["fuseguard_cloud_mqtt_link_up"].type == "gauge"
    assert _value(fams["fuseguard_cloud_mqtt_link_up"]) == 1.0
    assert _value(fams["fuseguard_cloud_edges_known"]) == 2.0
    assert _value(fams["fuseguard_cloud_edges_online"]) == 2.0
    for name in (
        "fuseguard_cloud_edge_online",
        "fuseguard_cloud_edge_evses",
        "fuseguard_cloud_edge_evses_online",
        "fuseguard_cloud_edge_plugs_charging",
        "fuseguard_cloud_edge_last_status_timestamp_seconds",
    ):
        assert fams[name].type == "gauge", name
        assert {s.labels["edge"] for s in fams[name].samples} == {
            a.edge_device_id,
            b.edge_device_id,
        }
    ea, eb = a.edge_device_id, b.edge_device_id
    assert _value(fams["fuseguard_cloud_edge_evses"], edge=ea) == 2.0
    assert _value(fams["fuseguard_cloud_edge_evses_online"], edge=ea) == 2.0
    assert _value(fams["fuseguard_cloud_edge_evses"], edge=eb) == 1.0
    assert _value(fams["fuseguard_cloud_edge_plugs_charging"], edge=ea) == 1.0
    assert _value(fams["fuseguard_cloud_edge_plugs_charging"], edge=eb) == 0.0
    seen = _value(fams["fuseguard_cloud_edge_last_status_timestamp_seconds"], edge=ea)
    assert abs(seen - a.clock.now().timestamp()) < 60


async def test_metrics_fleet_gauges_and_command_counters(
    mqtt_url: str, prefix: str, sqlite_url: str
) -> None:
    settings = _settings(
        mqtt_url,
        prefix,
        sqlite_url,
        metrics=MetricsSection(enabled=True, user="prom", password="s3cret"),  # type: ignore[arg-type]
    )
    a = make_edge(mqtt_url, prefix, evse_count=2)
    b = make_edge(mqtt_url, prefix, evse_count=1)
    a.plug_status[a.evses[0].plugs[0][0]] = PlugStatus.CHARGING
    async with CloudService(settings) as service:
        await a.start()
        await b.start()
        try:
            await _known(service, a)
            await _known(service, b)
            async with api_client(service) as http:
                r = await http.get("/metrics")
                assert r.status_code == 401
                assert r.headers["www-authenticate"].startswith("Basic")
                r = await http.get("/metrics", headers=_basic("prom", "wrong"))
                assert r.status_code == 401

                _check_fleet(await _scrape(http, service), a, b)
                ea, eb = a.edge_device_id, b.edge_device_id

                # one set and one clear, both acknowledged
                evse = a.evses[0]
                token = await service.tokens.create(ea, evse.evse_uuid)
                r = await http.post(
                    f"/edgedevices/{ea}/evses/{evse.evse_uuid}/currentsettings",
                    json={"current": 10, "duration": 600},
                    headers={"evsetoken": token},
                )
                assert r.status_code == 201
                assert r.json()["state"] == "received"
                r = await http.delete(
                    f"/edgedevices/{ea}/evses/{evse.evse_uuid}/currentsettings",
                    headers={"evsetoken": token},
                )
                assert r.status_code == 200

                # edge b goes offline: a command to it is rejected without being sent
                await b.stop()
                fams = await _after_offline(http, service, b)
                assert _value(fams["fuseguard_cloud_edges_online"]) == 1.0
                assert _value(fams["fuseguard_cloud_edge_online"], edge=eb) == 0.0
                assert _value(fams["fuseguard_cloud_edge_evses_online"], edge=eb) == 0.0
                tb = await service.tokens.create(eb, b.evses[0].evse_uuid)
                r = await http.post(
                    f"/edgedevices/{eb}/evses/{b.evses[0].evse_uuid}/currentsettings",
                    json={"current": 10, "duration": 600},
                    headers={"evsetoken": tb},
                )
                assert r.json()["state"] == "rejected"

                fams = await _scrape(http, service)
                sent = fams["fuseguard_cloud_commands_sent"]
                assert sent.type == "counter"
                assert _value(sent, "_total", op="set") == 1.0
                assert _value(sent, "_total", op="clear") == 1.0
                acked = fams["fuseguard_cloud_commands_acked"]
                assert _value(acked, "_total", op="set") == 1.0
                rejected = fams["fuseguard_cloud_commands_rejected"]
                assert rejected.type == "counter"
                assert _value(rejected, "_total", op="set", reason="edge_offline") == 1.0
                assert fams["fuseguard_cloud_commands_timed_out"].type == "counter"
                hist = fams["fuseguard_cloud_currentsettings_post_duration_seconds"]
                assert hist.type == "histogram"
                assert _value(hist, "_count") == 2.0
                assert _value(hist, "_bucket", le="+Inf") == 2.0
        finally:
            await a.stop()
            await b.stop()


async def _after_offline(
    http: httpx2.AsyncClient, service: CloudService, edge: VirtualEdge
) -> dict[str, Any]:
    async def offline() -> bool:
        return await service.store.edge_online(edge.edge_device_id) is False

    await wait_for(offline, timeout_s=10.0)
    return await _scrape(http, service)


async def test_metrics_off_by_default(mqtt_url: str, prefix: str, sqlite_url: str) -> None:
    settings = _settings(mqtt_url, prefix, sqlite_url)
    async with CloudService(settings) as service, api_client(service) as http:
        assert (await http.get("/metrics")).status_code == 404
        assert (await http.get("/fleet")).status_code == 404


async def test_fleet_page(mqtt_url: str, prefix: str, sqlite_url: str) -> None:
    settings = _settings(
        mqtt_url,
        prefix,
        sqlite_url,
        web=WebSection(admin_user="admin", admin_password="pw"),  # type: ignore[arg-type]
    )
    a = make_edge(mqtt_url, prefix, evse_count=1, edge_device_id=f"edge-<b>{prefix}")
    a.plug_status[a.evses[0].plugs[1][0]] = PlugStatus.RECENTLY_STARTED_CHARGING
    async with CloudService(settings) as service:
        await a.start()
        try:
            await _known(service, a)
            async with api_client(service) as http:
                assert (await http.get("/fleet")).status_code == 401
                r = await http.get("/fleet", headers=_basic("admin", "nope"))
                assert r.status_code == 401
                r = await http.get("/fleet", headers=_basic("admin", "pw"))
                assert r.status_code == 200
                assert r.headers["content-type"].startswith("text/html")
                assert "<script" not in r.text
                assert f"edge-&lt;b&gt;{prefix}" in r.text  # escaped, never raw markup
                assert f"edge-<b>{prefix}" not in r.text
                assert '<span class="conn ok">online</span>' in r.text
                assert "<td>1 / 2</td>" in r.text  # plugs charging / plugs
                assert "<td>1 / 1</td>" in r.text  # EVSEs online / known
                assert "1 edges, 1 online, 1 plugs charging" in r.text
                css = await http.get("/fleet/app.css", headers=_basic("admin", "pw"))
                assert css.status_code == 200
                assert css.headers["content-type"].startswith("text/css")
                assert ".card" in css.text
        finally:
            await a.stop()
