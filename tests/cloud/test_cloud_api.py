"""The EVSE API through the cloud: real broker, real edge agents with virtual EVSEs."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

import pytest
from cloudkit import VirtualEdge, api_client, cloud_settings, crash_connection, make_edge, wait_for

from fuseguard.api.evse_models import parse_iso_datetime
from fuseguard.cloud.app import CloudService
from fuseguard.model.clock import VirtualClock
from fuseguard.model.status import PlugStatus

pytestmark = pytest.mark.mqtt


def _path(edge: VirtualEdge, evse_uuid: str, leaf: str = "currentsettings") -> str:
    return f"/edgedevices/{edge.edge_device_id}/evses/{evse_uuid}/{leaf}"


async def _known(service: CloudService, edge: VirtualEdge) -> None:
    async def ok() -> bool:
        await service.backend.flush()
        return all(
            [await service.backend.evse(edge.edge_device_id, e.evse_uuid) for e in edge.evses]
        )

    await wait_for(ok)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'cloud.db'}"


async def test_set_get_status_delete_through_the_cloud(
    mqtt_url: str, prefix: str, sqlite_url: str
) -> None:
    edge = make_edge(mqtt_url, prefix)
    evse = edge.evses[0]
    edge.plug_status[evse.plugs[0][0]] = PlugStatus.CHARGING
    async with CloudService(cloud_settings(mqtt_url, prefix, sqlite_url)) as service:
        await edge.start()
        try:
            await _known(service, edge)
            token = await service.tokens.create(edge.edge_device_id, evse.evse_uuid)
            headers = {"evsetoken": token}
            async with api_client(service) as http:
                r = await http.get(_path(edge, evse.evse_uuid), headers=headers)
                assert r.status_code == 200
                assert r.json() == {"current": None, "valid_until": None}

                r = await http.post(
                    _path(edge, evse.evse_uuid),
                    json={"current": 10, "duration": 3600},
                    headers=headers,
                )
                assert r.status_code == 201
                assert r.json() == {"state": "received", "current": 10, "duration": 3600}
                assert edge.targets.cap_a(evse.evse_uuid) == 10  # applied on the edge

                r = await http.get(_path(edge, evse.evse_uuid), headers=headers)
                body = r.json()
                assert body["current"] == 10
                valid_until = parse_iso_datetime(body["valid_until"])
                assert body["valid_until"].endswith("+00:00")
                assert (
                    timedelta(seconds=3590)
                    < valid_until - edge.clock.now()
                    <= timedelta(seconds=3600)
                )

                async def limited() -> bool:
                    await service.backend.flush()
                    rs = await http.get(_path(edge, evse.evse_uuid, "status"), headers=headers)
                    return all(p["dyn_current_limit"] == 10 for p in rs.json())

                await wait_for(limited)
                rs = (await http.get(_path(edge, evse.evse_uuid, "status"), headers=headers)).json()
                assert [p["plug_uuid"] for p in rs] == [p for p, _ in evse.plugs]
                assert rs[0]["status"] == "charging"
                assert rs[0]["current_l1"] == 10
                assert rs[1]["status"] == "idle"
                assert rs[0]["time"].endswith("Z")
                assert all(p["evse_uuid"] == evse.evse_uuid for p in rs)

                r = await http.delete(_path(edge, evse.evse_uuid), headers=headers)
                assert r.status_code == 200
                assert r.json()["current"] == 10
                assert edge.targets.cap_a(evse.evse_uuid) is None
                r = await http.get(_path(edge, evse.evse_uuid), headers=headers)
                assert r.json() == {"current": None, "valid_until": None}
                r = await http.delete(_path(edge, evse.evse_uuid), headers=headers)
                assert r.json() == {"current": None, "valid_until": None}
        finally:
            await edge.stop()


async def test_token_misuse_and_unknown_ids(mqtt_url: str, prefix: str, sqlite_url: str) -> None:
    edge = make_edge(mqtt_url, prefix, evse_count=2)
    a, b = edge.evses
    async with CloudService(cloud_settings(mqtt_url, prefix, sqlite_url)) as service:
        await edge.start()
        try:
            await _known(service, edge)
            token_a = await service.tokens.create(edge.edge_device_id, a.evse_uuid)
            async with api_client(service) as http:
                body = {"current": 10, "duration": 60}
                r = await http.post(_path(edge, a.evse_uuid), json=body)
                assert r.status_code == 401
                r = await http.post(
                    _path(edge, a.evse_uuid), json=body, headers={"evsetoken": "nope"}
                )
                assert r.status_code == 401
                r = await http.post(
                    _path(edge, b.evse_uuid), json=body, headers={"evsetoken": token_a}
                )
                assert r.status_code in (401, 403)
                assert edge.targets.cap_a(b.evse_uuid) is None
                r = await http.get(
                    f"/edgedevices/nosuchedge/evses/{a.evse_uuid}/currentsettings",
                    headers={"evsetoken": token_a},
                )
                assert r.status_code == 403  # token before lookup: no enumeration (issue 17)
                r = await http.get(_path(edge, "0" * 32, "status"), headers={"evsetoken": token_a})
                assert r.status_code == 403
                # validation against the limits the edge reported
                r = await http.post(
                    _path(edge, a.evse_uuid),
                    json={"current": 40, "duration": 60},
                    headers={"evsetoken": token_a},
                )
                assert r.status_code in (400, 422)
                assert r.json()["field"] == "current"
                assert edge.targets.cap_a(a.evse_uuid) is None
        finally:
            await edge.stop()


async def test_edge_goes_offline_mid_request(mqtt_url: str, prefix: str, sqlite_url: str) -> None:
    edge = make_edge(mqtt_url, prefix)
    evse = edge.evses[0]
    entered = asyncio.Event()
    original = edge.backend.set_target

    async def hang(*args: object, **kwargs: object) -> str:
        entered.set()
        await asyncio.Event().wait()
        return "received"

    edge.backend.set_target = hang  # type: ignore[method-assign,assignment]
    settings = cloud_settings(mqtt_url, prefix, sqlite_url, ack_timeout_s=8.0)
    async with CloudService(settings) as service:
        await edge.start()
        try:
            await _known(service, edge)
            token = await service.tokens.create(edge.edge_device_id, evse.evse_uuid)
            headers = {"evsetoken": token}
            async with api_client(service) as http:
                started = time.monotonic()
                post = asyncio.create_task(
                    http.post(
                        _path(edge, evse.evse_uuid),
                        json={"current": 16, "duration": 600},
                        headers=headers,
                    )
                )
                await asyncio.wait_for(entered.wait(), 5)
                crash_connection(
                    edge.agent.link
                )  # the edge's connection dies: the broker sends its will
                r = await post
                assert r.status_code == 201
                assert r.json()["state"] == "rejected"
                assert time.monotonic() - started < 6.0  # well before the 8 s ack timeout

                rs = await http.get(_path(edge, evse.evse_uuid, "status"), headers=headers)
                assert {p["status"] for p in rs.json()} == {"cloud_offline"}

                # The agent reconnects by itself; the edge is back online, commands work again.
                edge.backend.set_target = original  # type: ignore[method-assign]

                async def online() -> bool:
                    return bool(await service.store.edge_online(edge.edge_device_id))

                await wait_for(online, 10)
                r = await http.post(
                    _path(edge, evse.evse_uuid),
                    json={"current": 16, "duration": 600},
                    headers=headers,
                )
                assert r.json()["state"] == "received"
                assert edge.targets.cap_a(evse.evse_uuid) == 16
        finally:
            await edge.stop()


async def test_offline_edge_and_missing_ack_are_rejected(
    mqtt_url: str, prefix: str, sqlite_url: str
) -> None:
    edge = make_edge(mqtt_url, prefix)
    evse = edge.evses[0]
    settings = cloud_settings(mqtt_url, prefix, sqlite_url, ack_timeout_s=0.5)
    async with CloudService(settings) as service:
        await edge.start()
        try:
            await _known(service, edge)
            token = await service.tokens.create(edge.edge_device_id, evse.evse_uuid)
            headers = {"evsetoken": token}
            async with api_client(service) as http:
                # no ack in time: the edge swallows the command
                async def swallow(*args: object, **kwargs: object) -> str:
                    await asyncio.sleep(5)
                    return "received"

                original = edge.backend.set_target
                edge.backend.set_target = swallow  # type: ignore[method-assign,assignment]
                r = await http.post(
                    _path(edge, evse.evse_uuid), json={"current": 8, "duration": 60},
                    headers=headers,
                )  # fmt: skip
                assert r.json()["state"] == "rejected"
                edge.backend.set_target = original  # type: ignore[method-assign]

                # clean shutdown of the edge: it says offline itself
                await edge.stop()

                async def offline() -> bool:
                    return await service.store.edge_online(edge.edge_device_id) is False

                await wait_for(offline)
                started = time.monotonic()
                r = await http.post(
                    _path(edge, evse.evse_uuid), json={"current": 8, "duration": 60},
                    headers=headers,
                )  # fmt: skip
                assert r.status_code == 201
                assert r.json()["state"] == "rejected"
                assert time.monotonic() - started < 0.5  # no waiting for an ack
                r = await http.delete(_path(edge, evse.evse_uuid), headers=headers)
                assert r.status_code == 503
                rs = (await http.get(_path(edge, evse.evse_uuid, "status"), headers=headers)).json()
                assert len(rs) == 2
                assert {p["status"] for p in rs} == {"cloud_offline"}
        finally:
            await edge.stop()


async def test_expiry_in_virtual_time(mqtt_url: str, prefix: str, sqlite_url: str) -> None:
    clock = VirtualClock()
    edge = make_edge(mqtt_url, prefix, clock=clock)
    evse = edge.evses[0]
    async with CloudService(cloud_settings(mqtt_url, prefix, sqlite_url), clock=clock) as service:
        await edge.start()
        try:
            await _known(service, edge)
            token = await service.tokens.create(edge.edge_device_id, evse.evse_uuid)
            headers = {"evsetoken": token}
            async with api_client(service) as http:
                r = await http.post(
                    _path(edge, evse.evse_uuid), json={"current": 12, "duration": 60},
                    headers=headers,
                )  # fmt: skip
                assert r.json()["state"] == "received"
                r = await http.get(_path(edge, evse.evse_uuid), headers=headers)
                assert parse_iso_datetime(r.json()["valid_until"]) == clock.now() + timedelta(
                    seconds=60
                )
                await clock.advance(59)
                r = await http.get(_path(edge, evse.evse_uuid), headers=headers)
                assert r.json()["current"] == 12
                await clock.advance(2)
                r = await http.get(_path(edge, evse.evse_uuid), headers=headers)
                assert r.json() == {"current": None, "valid_until": None}
                assert edge.targets.cap_a(evse.evse_uuid) is None  # expired on the edge too
        finally:
            await edge.stop()


async def test_cloud_restart_keeps_state(mqtt_url: str, prefix: str, sqlite_url: str) -> None:
    edge = make_edge(mqtt_url, prefix)
    evse = edge.evses[0]
    settings = cloud_settings(mqtt_url, prefix, sqlite_url)
    async with CloudService(settings) as service:
        await edge.start()
        await _known(service, edge)
        token = await service.tokens.create(edge.edge_device_id, evse.evse_uuid)
        headers = {"evsetoken": token}
        async with api_client(service) as http:
            r = await http.post(
                _path(edge, evse.evse_uuid), json={"current": 20, "duration": 900},
                headers=headers,
            )  # fmt: skip
            assert r.json()["state"] == "received"
            before = (await http.get(_path(edge, evse.evse_uuid), headers=headers)).json()
    try:
        async with CloudService(settings) as again, api_client(again) as http:
            after = (await http.get(_path(edge, evse.evse_uuid), headers=headers)).json()
            assert after == before
            assert after["current"] == 20
            rs = (await http.get(_path(edge, evse.evse_uuid, "status"), headers=headers)).json()
            assert {p["status"] for p in rs} == {"idle"}
    finally:
        await edge.stop()
