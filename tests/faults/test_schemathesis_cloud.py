"""Schemathesis against the cloud app (``fuseguard.cloud.app.CloudService``) on real backends.

PostgreSQL (a throwaway database), the session's Mosquitto (``tests/conftest.py::mqtt_url``),
and two real edge agents with virtual EVSEs that answer the cloud's commands over MQTT
(``tests/cloud/cloudkit.py``). The app is served on loopback (see ``servekit``); every case is
validated against its OpenAPI: 0 5xx, 0 schema violations. The schema declares no OpenAPI links (no stateful run, see the edge module).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis

from fuseguard.cloud.app import CloudService
from tests.cloud.cloudkit import VirtualEdge, cloud_settings, make_edge, wait_for
from tests.faults.casekit import Tally, case_settings, http_session, map_current
from tests.faults.servekit import LoopThread, serve

pytestmark = [pytest.mark.mqtt, pytest.mark.postgres]

CLOUD_OPS = 4
#: (edge id, evse uuid) pairs the generated paths are mapped onto; filled by the fixture.
KNOWN: list[tuple[str, str]] = []
TOKENS: dict[str, str] = {}

HTTP = http_session()
tally = Tally("cloud EVSE API")


def _shape() -> Any:
    """The cloud app's schema (construction only: nothing connects)."""
    settings = cloud_settings("mqtt://127.0.0.1:1", "schema", "sqlite+aiosqlite:///:memory:")
    return schemathesis.openapi.from_dict(CloudService(settings).app.openapi())


schema = _shape()


@schema.hook
def map_path_parameters(context: Any, path_parameters: dict[str, Any]) -> dict[str, Any]:
    """Most cases address a known edge and one of its EVSEs (so they get past 404)."""
    raw = str(path_parameters.get("uuid", ""))
    digest = hashlib.md5(raw.encode()).digest()
    if KNOWN and digest[0] % 8:  # 7 in 8 cases
        path_parameters["edge_device_id"], path_parameters["uuid"] = KNOWN[digest[1] % len(KNOWN)]
    return path_parameters


@schema.hook
def map_body(context: Any, body: Any) -> Any:
    """Keep schema-valid currents within the virtual EVSEs' range [6, 32] A."""
    return map_current(body, 32)


@pytest.fixture(scope="module")
def cloud_url(make_pg_database: Callable[[str], str], mqtt_url: str) -> Iterator[str]:
    db_url = make_pg_database("fuseguard_faults_cloud")
    prefix = f"fgfaults-{uuid.uuid4().hex[:10]}"
    loop_thread = LoopThread()

    async def start() -> str:
        service = CloudService(cloud_settings(mqtt_url, prefix, db_url, ack_timeout_s=5.0))
        await service.start()
        loop_thread.on_close(service.stop)
        edges: list[VirtualEdge] = []
        for _ in range(2):
            edge = make_edge(mqtt_url, prefix, evse_count=2)
            await edge.start()
            loop_thread.on_close(edge.stop)
            edges.append(edge)

        async def known() -> bool:
            await service.backend.flush()
            return all(
                [
                    await service.backend.evse(e.edge_device_id, evse.evse_uuid)
                    for e in edges
                    for evse in e.evses
                ]
            )

        await wait_for(known, timeout_s=15)
        for e in edges:
            for evse in e.evses:
                KNOWN.append((e.edge_device_id, evse.evse_uuid))
                TOKENS[evse.evse_uuid] = await service.tokens.create(
                    e.edge_device_id, evse.evse_uuid
                )
        assert service.app.openapi() == schema.raw_schema
        return await serve(service.app, loop_thread)

    try:
        yield loop_thread.run(start())
    finally:
        loop_thread.close()
        KNOWN.clear()
        TOKENS.clear()


@schema.parametrize()
@case_settings(CLOUD_OPS)
def test_cloud_api_conforms(case: Any, cloud_url: str) -> None:
    evse_uuid = str((case.path_parameters or {}).get("uuid", ""))
    token = TOKENS.get(evse_uuid, "not-a-token")
    response = case.call_and_validate(
        base_url=cloud_url, session=HTTP, headers={"evsetoken": token}
    )
    tally.add(case.operation.label, response.status_code)


def test_cloud_api_ran_its_budget() -> None:
    tally.check()
