"""Issue 17 item 1: one edge cannot cut the cloud off from every edge.

A retained poisoned message, a message whose handling fails, a row the database refuses: each is
logged and dropped; the link stays up (a fresh replica too), the other edges' statuses and
acknowledged targets are written.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import pytest
from cloudkit import api_client, cloud_settings, make_edge, wait_for

from fuseguard.cloud.app import CloudService
from fuseguard.cloud.backend import CloudEvseBackend
from fuseguard.cloud.link import BrokerAddress, LinkMessage, MqttLink, supervised
from fuseguard.cloud.protocol import EvseStatusMessage, Topics
from fuseguard.cloud.store import CloudStore, StoredTarget, TargetWrite
from fuseguard.cloud.writer import CloudWriter
from fuseguard.model.clock import RealClock
from fuseguard.store.db import create_engine, init_schema

EVSE_A = "a" * 32
EVSE_B = "b" * 32
T0 = datetime(2026, 1, 5, tzinfo=UTC)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'cloud.db'}"


def _status(evse_uuid: str, seq: int, target_current: int | None = None) -> bytes:
    target = None
    if target_current is not None:
        target = {"current": target_current, "valid_until": "2026-01-05T10:00:00+00:00"}
    return json.dumps(
        {
            "seq": seq,
            "evse_uuid": evse_uuid,
            "min_current_a": 6,
            "max_current_a": 32,
            "plugs": [{"uuid": "c" * 32, "label": "Plug 1"}],
            "target": target,
            "statuses": [],
        }
    ).encode()


async def _publish_retained(mqtt_url: str, topic: str, payload: bytes) -> None:
    address = BrokerAddress.parse(mqtt_url)
    async with aiomqtt.Client(address.host, address.port) as client:
        await client.publish(topic, payload, qos=1, retain=True)


async def _clear_retained(mqtt_url: str, topic: str) -> None:
    await _publish_retained(mqtt_url, topic, b"")


@pytest.mark.mqtt
async def test_retained_poisoned_state_does_not_cut_off_the_cloud(
    mqtt_url: str, prefix: str, sqlite_url: str
) -> None:
    """The reproduction from the issue: session 10**30, retained, on a rogue edge's own topic."""
    rogue_topic = Topics(prefix).state("rogue")
    await _publish_retained(
        mqtt_url, rogue_topic, b'{"state":"online","session":' + b"1" + b"0" * 30 + b"}"
    )
    edge = make_edge(mqtt_url, prefix)
    evse = edge.evses[0]
    path = f"/edgedevices/{edge.edge_device_id}/evses/{evse.evse_uuid}/currentsettings"
    try:
        for replica in ("first", "fresh"):  # a fresh replica gets the retained message again
            settings = cloud_settings(mqtt_url, prefix, sqlite_url, replica_id=replica)
            async with CloudService(settings) as service:
                if replica == "first":
                    await edge.start()

                async def known(svc: CloudService = service) -> bool:
                    await svc.backend.flush()
                    return await svc.backend.evse(edge.edge_device_id, evse.evse_uuid) is not None

                await wait_for(known)
                assert service.link.connected
                token = await service.tokens.create(edge.edge_device_id, evse.evse_uuid)
                async with api_client(service) as http:
                    r = await http.post(
                        path, json={"current": 10, "duration": 600}, headers={"evsetoken": token}
                    )
                assert r.json()["state"] == "received"
                assert service.link.connected
                assert await service.store.edge_online("rogue") is None  # never written
    finally:
        await edge.stop()
        await _clear_retained(mqtt_url, rogue_topic)


@pytest.mark.mqtt
async def test_link_survives_a_failing_handler_and_drops_oversized_messages(
    mqtt_url: str, prefix: str
) -> None:
    received: list[bytes] = []

    async def on_message(message: LinkMessage) -> None:
        if message.payload == b"boom":
            raise RuntimeError("handler bug")
        received.append(message.payload)

    connects = 0

    async def on_connect() -> None:
        nonlocal connects
        connects += 1

    link = MqttLink(
        mqtt_url, f"test-{prefix}", on_message, on_connect=on_connect, max_payload_bytes=1000
    )
    task = asyncio.create_task(link.run())
    try:
        await link.subscribe(f"{prefix}/x")
        await link.wait_connected(10)
        for payload in (b"boom", b"z" * 2000, b"after"):
            await link.publish(f"{prefix}/x", payload)

        async def arrived() -> bool:
            return received == [b"after"]

        await wait_for(arrived)
        assert link.connected
        assert connects == 1  # never dropped the connection over it
        assert not task.done()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


class _NoLink:
    connected = False

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        raise AssertionError("not used")

    async def subscribe(self, topic_filter: str, *, qos: int = 1) -> None:
        return None

    async def wait_connected(self, timeout_s: float) -> None:
        return None


async def test_poisoned_status_does_not_fail_the_batch(tmp_path: Path) -> None:
    """Old code: the 10**30 seq went into the batch and the whole transaction failed."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    await init_schema(engine)
    store = CloudStore(engine)
    topics = Topics("fg")
    backend = CloudEvseBackend(store, topics, RealClock(), replica_id="r1")
    await backend.start(_NoLink())
    try:
        messages = [
            LinkMessage(topics.status("good", EVSE_A), _status(EVSE_A, 5, 16)),
            LinkMessage(topics.status("rogue", EVSE_B), _status(EVSE_B, 10**30)),
            LinkMessage(
                topics.status("rogue", EVSE_B), b'{"seq": 1, "evse_uuid": "' + b"x" * 10**5 + b'"}'
            ),
            LinkMessage(topics.status("rogue", EVSE_B), b"\xff not json"),
            LinkMessage(topics.state("rogue"), b'{"state": "online", "session": -1}'),
            LinkMessage(topics.ack("rogue", "r1"), b'{"id": 5}'),
        ]
        for message in messages:
            await backend.handle_message(message)  # never raises
        await backend.flush()
        row = await store.evse("good", EVSE_A)
        assert row is not None
        assert row.target is not None
        assert row.target.current_a == 16
        assert await store.evse("rogue", EVSE_B) is None
    finally:
        await backend.stop()
        await engine.dispose()


async def test_writer_isolates_a_row_the_database_refuses(tmp_path: Path) -> None:
    """A target write the database refuses fails only its own waiter, not the other edges'."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    await init_schema(engine)
    store = CloudStore(engine)
    await store.apply_batch(
        [("e1", _parsed(_status(EVSE_A, 1))), ("e2", _parsed(_status(EVSE_B, 1)))], ()
    )
    writer = CloudWriter(store)
    writer.start()
    try:
        later = T0 + timedelta(hours=1)
        good = writer.write_target(TargetWrite("e1", EVSE_A, StoredTarget(12, later), 2))
        bad = writer.write_target(TargetWrite("e2", EVSE_B, StoredTarget(12, later), 10**30))
        writer.put_status("e2", _parsed(_status(EVSE_B, 3, 8)))
        results = await asyncio.gather(good, bad, return_exceptions=True)
        await writer.flush()
        assert results[0] is None
        assert isinstance(results[1], Exception)
        row = await store.evse("e1", EVSE_A)
        assert row is not None
        assert row.target == StoredTarget(12, later)
        row2 = await store.evse("e2", EVSE_B)
        assert row2 is not None
        assert row2.target is not None
        assert row2.target.current_a == 8  # the status in the same batch was written
    finally:
        await writer.stop()
        await engine.dispose()


def _parsed(payload: bytes) -> EvseStatusMessage:
    return EvseStatusMessage.model_validate_json(payload)


async def test_supervised_restarts_a_task_that_ends() -> None:
    runs = 0

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise RuntimeError("crash")
        if runs == 2:
            return
        await asyncio.sleep(3600)

    task = asyncio.create_task(supervised("t", flaky, restart_min_s=0.01))

    async def third() -> bool:
        return runs == 3

    try:
        await wait_for(third)
        assert not task.done()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
