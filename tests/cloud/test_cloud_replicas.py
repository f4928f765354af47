"""Scale-out: replicas share nothing but the database and the broker; PostgreSQL storage."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest
from cloudkit import api_client, cloud_settings, make_edge, wait_for
from tests.ports import free_port

from fuseguard.cloud.app import CloudService

pytestmark = pytest.mark.mqtt


async def _two_replicas_agree(mqtt_url: str, prefix: str, db_url: str) -> None:
    edge = make_edge(mqtt_url, prefix)
    evse = edge.evses[0]
    path = f"/edgedevices/{edge.edge_device_id}/evses/{evse.evse_uuid}/currentsettings"
    async with (
        CloudService(cloud_settings(mqtt_url, prefix, db_url, replica_id="a")) as a,
        CloudService(cloud_settings(mqtt_url, prefix, db_url, replica_id="b")) as b,
    ):
        await edge.start()
        try:

            async def known() -> bool:
                await a.backend.flush()
                await b.backend.flush()
                return await b.backend.evse(edge.edge_device_id, evse.evse_uuid) is not None

            await wait_for(known)
            token = await a.tokens.create(edge.edge_device_id, evse.evse_uuid)
            headers = {"evsetoken": token}
            async with api_client(a) as http_a, api_client(b) as http_b:
                r = await http_a.post(path, json={"current": 14, "duration": 600}, headers=headers)
                assert r.json()["state"] == "received"
                got_a = (await http_a.get(path, headers=headers)).json()
                got_b = (await http_b.get(path, headers=headers)).json()
                assert got_a == got_b
                assert got_b["current"] == 14
                # concurrent POSTs through both replicas: both acked, one final value everywhere
                ra, rb = await asyncio.gather(
                    http_a.post(path, json={"current": 8, "duration": 600}, headers=headers),
                    http_b.post(path, json={"current": 9, "duration": 600}, headers=headers),
                )
                assert {ra.json()["state"], rb.json()["state"]} == {"received"}
                await a.backend.flush()
                await b.backend.flush()
                final_edge = edge.targets.cap_a(evse.evse_uuid)
                assert final_edge in (8, 9)

                async def converged() -> bool:
                    await a.backend.flush()
                    await b.backend.flush()
                    va = (await http_a.get(path, headers=headers)).json()["current"]
                    vb = (await http_b.get(path, headers=headers)).json()["current"]
                    return va == vb == final_edge

                await wait_for(converged)
                r = await http_b.delete(path, headers=headers)
                assert r.json()["current"] == final_edge
                assert (await http_a.get(path, headers=headers)).json()["current"] is None
        finally:
            await edge.stop()


async def test_two_replicas_on_sqlite(mqtt_url: str, prefix: str, tmp_path: Path) -> None:
    await _two_replicas_agree(mqtt_url, prefix, f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")


@pytest.mark.postgres
async def test_two_replicas_on_postgresql(mqtt_url: str, prefix: str, pg_url: str) -> None:
    await _two_replicas_agree(mqtt_url, prefix, pg_url)


_SERVER = """
import asyncio, sys
from fuseguard.cloud.app import serve_cloud
from fuseguard.cloud.config import load_cloud_settings
asyncio.run(serve_cloud(load_cloud_settings()))
"""


async def test_two_cloud_processes(mqtt_url: str, prefix: str, tmp_path: Path) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"
    ports = [free_port(), free_port()]
    procs = []
    for i, port in enumerate(ports):
        env = dict(os.environ)
        env.update(
            {
                "FUSEGUARD_CLOUD_DATABASE__URL": db_url,
                "FUSEGUARD_CLOUD_BROKER__URL": mqtt_url,
                "FUSEGUARD_CLOUD_BROKER__TOPIC_PREFIX": prefix,
                "FUSEGUARD_CLOUD_SERVER__PORT": str(port),
                "FUSEGUARD_CLOUD_REPLICA_ID": f"proc{i}",
            }
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", _SERVER],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    edge = make_edge(mqtt_url, prefix)
    evse = edge.evses[0]
    path = f"/edgedevices/{edge.edge_device_id}/evses/{evse.evse_uuid}/currentsettings"
    try:
        async with CloudService(cloud_settings(mqtt_url, prefix, db_url)) as admin:
            token = await admin.tokens.create(edge.edge_device_id, evse.evse_uuid)
        await edge.start()
        headers = {"evsetoken": token}
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        async with httpx2.AsyncClient(timeout=10) as http:
            deadline = time.monotonic() + 30
            for url in urls:
                while True:
                    try:
                        if (await http.get(url + path, headers=headers)).status_code == 200:
                            break
                    except httpx2.TransportError:
                        pass
                    assert time.monotonic() < deadline, "cloud process did not come up"
                    await asyncio.sleep(0.2)
            r = await http.post(
                urls[0] + path, json={"current": 11, "duration": 300}, headers=headers
            )
            assert r.json()["state"] == "received"
            assert edge.targets.cap_a(evse.evse_uuid) == 11
            assert (await http.get(urls[1] + path, headers=headers)).json()["current"] == 11
            r = await http.delete(urls[1] + path, headers=headers)
            assert r.json()["current"] == 11
            assert (await http.get(urls[0] + path, headers=headers)).json()["current"] is None
    finally:
        await edge.stop()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)
