"""Round 11: the new edge limits are configurable, validated, and an oversized MQTT message is
dropped before it is queued.

``[mqtt] max_message_bytes`` (default 64 KiB): before, any payload size on a subscribed topic was
queued (up to 1 000 messages) and parsed. The cloud link's incoming queue had no bound at all;
now it is bounded by payload bytes (``MqttLink.max_queued_bytes``). ``[api.*] max_connections_per_peer``: see
``test_hardening_peer_cap``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path

import aiomqtt
import paho.mqtt.client as paho
import pytest
from structlog.testing import capture_logs

from fuseguard.api.mqtt.client import MAX_MESSAGE_BYTES, MqttConnection
from fuseguard.cloud.link import LinkMessage, MqttLink
from fuseguard.config import FuseguardConfig
from tests.hardening.test_hardening_config import MINIMAL, _load

LISTENERS = ("api.local", "api.evse", "api.web", "api.metrics", "api.modbus")


def test_defaults() -> None:
    api = FuseguardConfig.model_validate(
        {"site": {"edge_id": "e1", "main_fuse_a": 35}, "chargers": []}
    ).api
    assert (
        api.local.max_connections_per_peer,
        api.evse.max_connections_per_peer,
        api.web.max_connections_per_peer,
        api.metrics.max_connections_per_peer,
        api.modbus.max_connections_per_peer,
    ) == (16, 16, 16, 16, 8)
    assert MAX_MESSAGE_BYTES == 64 * 1024


@pytest.mark.parametrize("section", LISTENERS)
@pytest.mark.parametrize("value", ["0", "-1", "1000"])
def test_max_connections_per_peer_out_of_range_names_the_key(
    tmp_path: Path, section: str, value: str
) -> None:
    err = _load(tmp_path, f"{MINIMAL}\n[{section}]\nmax_connections_per_peer = {value}\n")
    key = f"{section}.max_connections_per_peer"
    assert [p.key for p in err.problems] == [key], err.problems
    assert key in str(err)


@pytest.mark.parametrize("value", ["0", "-65536"])
def test_max_message_bytes_below_one_names_the_key(tmp_path: Path, value: str) -> None:
    err = _load(
        tmp_path, f'{MINIMAL}\n[mqtt]\nurl = "mqtt://127.0.0.1"\nmax_message_bytes = {value}\n'
    )
    assert [p.key for p in err.problems] == ["mqtt.max_message_bytes"], err.problems
    assert "greater than or equal to 1" in str(err)


async def _ignore(topic: str, payload: bytes, retained: bool) -> None:
    return None


async def _nothing() -> None:
    return None


async def test_oversized_message_is_not_queued(caplog: pytest.LogCaptureFixture) -> None:
    conn = MqttConnection(
        url="mqtt://127.0.0.1:1", client_id="size-test", will_topic="fg/e1/status",
        on_message=_ignore, on_connect=_nothing, max_message_bytes=1024,
    )  # fmt: skip
    client = conn._make_client()
    big = paho.MQTTMessage(topic=b"fg/e1/plug/p1/set")
    big.payload = b"x" * 1025
    small = paho.MQTTMessage(topic=b"fg/e1/plug/p1/set")
    small.payload = b"x" * 1024
    with capture_logs() as logs, caplog.at_level(logging.WARNING):
        for _ in range(100):
            client._on_message(client._client, None, big)
        client._on_message(client._client, None, small)
    assert client._queue.qsize() == 1  # only the one at the limit
    dropped = [e for e in logs if e["event"] == "mqtt_message_dropped"]
    assert len(dropped) == 1  # a flood of them is one line per burst
    assert dropped[0]["topic"] == "fg/e1/plug/p1/set"
    assert dropped[0]["size_bytes"] == 1025
    assert dropped[0]["device"] == "size-test"


async def test_oversized_message_is_dropped_and_the_next_one_processed(mqtt_url: str) -> None:
    topic = f"fg-size-{uuid.uuid4().hex[:8]}/cmd"
    received: list[tuple[str, int]] = []
    got_small = asyncio.Event()

    async def on_message(t: str, payload: bytes, retained: bool) -> None:
        received.append((t, len(payload)))
        if len(payload) == 10:
            got_small.set()

    conn = MqttConnection(
        url=mqtt_url, client_id=f"size-{uuid.uuid4().hex[:8]}", will_topic=f"{topic}/status",
        on_message=on_message, on_connect=_nothing, subscriptions=(topic,),
        max_message_bytes=4096,
    )  # fmt: skip
    task = asyncio.create_task(conn.run())
    try:
        await conn.wait_connected(10.0)
        host, port = mqtt_url.removeprefix("mqtt://").split(":")
        with capture_logs() as logs:
            async with aiomqtt.Client(host, int(port)) as publisher:
                await publisher.publish(topic, b"y" * 100_000, qos=1)
                await publisher.publish(topic, b"z" * 10, qos=1)
            await asyncio.wait_for(got_small.wait(), 10.0)
        assert received == [(topic, 10)]
        dropped = [e for e in logs if e["event"] == "mqtt_message_dropped"]
        assert [(e["topic"], e["size_bytes"]) for e in dropped] == [(topic, 100_000)]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def _ignore_link(message: LinkMessage) -> None:
    return None


async def test_cloud_link_queue_is_bounded_by_bytes() -> None:
    link = MqttLink(
        "mqtt://127.0.0.1:1", "bytes-test", _ignore_link, max_payload_bytes=2000,
        max_queued_bytes=5000,
    )  # fmt: skip
    client = link._make_client()

    def message(size: int) -> paho.MQTTMessage:
        m = paho.MQTTMessage(topic=b"fuseguard/e1/status")
        m.payload = b"s" * size
        return m

    with capture_logs() as logs:
        client._on_message(client._client, None, message(2001))  # over max_payload_bytes
        for _ in range(50):  # a publisher faster than the handler
            client._on_message(client._client, None, message(1000))
    assert client._queue.qsize() == 5 and client.queued_bytes == 5000
    assert client.dropped == 46
    reasons = [e["reason"] for e in logs if e["event"] == "mqtt_message_dropped"]
    assert reasons == ["payload over 2000 bytes", "queued payloads at 5000 bytes"]  # once each
    client.taken(client._queue.get_nowait())  # the handler takes one: room for one more
    client._on_message(client._client, None, message(1000))
    assert client._queue.qsize() == 5 and client.queued_bytes == 5000
