"""Round 9 red team: a flood on a subscribed MQTT topic costs the edge bounded work and memory.

Before, every Home Assistant birth (``<discovery_prefix>/status`` = ``online``) republished every
discovery config and state topic at once, and aiomqtt's incoming queue was unbounded: 3 000
births published in one second kept the demo edge at half a core for minutes while its memory
grew (157 -> 189 MB in a minute). Now births within ``HA_BIRTH_INTERVAL_S`` get one deferred
republish and the incoming queue holds at most ``MAX_QUEUED_INCOMING`` messages.
"""

from __future__ import annotations

import logging
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from fuseguard.api.mqtt.client import MAX_QUEUED_INCOMING, MqttConnection
from fuseguard.api.mqtt.service import HA_BIRTH_INTERVAL_S, MqttInterface
from fuseguard.control.flex import FlexManagement
from fuseguard.model.clock import VirtualClock

from .statuskit import site_config, status


class _Recorder:
    """Stands in for the broker connection: records what is published."""

    connected = True

    def __init__(self) -> None:
        self.published: list[str] = []

    async def publish(self, topic: str, payload: bytes, *, retain: bool, qos: int = 1) -> None:
        self.published.append(topic)


async def test_home_assistant_births_are_coalesced(tmp_path: Path) -> None:
    cfg = site_config(tmp_path, mqtt={"url": "mqtt://127.0.0.1:1", "min_interval_s": 1.0})
    clock = VirtualClock()
    iface = MqttInterface(cfg, clock, status, FlexManagement(clock, fuse_a=32.0))
    recorder = _Recorder()
    iface.connection = recorder  # type: ignore[assignment]
    assert iface.discovery is not None
    birth = iface.discovery.birth_topic
    await iface._on_message(birth, b"online", False)
    everything = len(recorder.published)
    assert everything > 20  # discovery configs and every state topic
    for _ in range(500):
        await iface._on_message(birth, b"online", False)
    assert len(recorder.published) == everything  # the flood waits for the interval
    await iface._ha_birth_due()
    assert len(recorder.published) == everything  # not yet due
    await clock.advance(HA_BIRTH_INTERVAL_S)
    await iface._ha_birth_due()
    assert len(recorder.published) == 2 * everything  # one republish for the whole flood
    await clock.advance(HA_BIRTH_INTERVAL_S)
    await iface._ha_birth_due()
    assert len(recorder.published) == 2 * everything  # nothing pending any more


async def test_incoming_queue_is_bounded_and_drops_are_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    conn = MqttConnection(
        url="mqtt://127.0.0.1:1",
        client_id="flood-test",
        will_topic="fg/e1/status",
        on_message=_ignore,
        on_connect=_nothing,
    )
    client = conn._make_client()
    message = paho.MQTTMessage(topic=b"homeassistant/status")
    message.payload = b"online"
    with caplog.at_level(logging.WARNING):
        for _ in range(MAX_QUEUED_INCOMING + 5000):
            client._on_message(client._client, None, message)
    assert client._queue.qsize() == MAX_QUEUED_INCOMING
    drops = [r for r in caplog.records if "queue is full" in r.getMessage()]
    assert len(drops) == 1


async def _ignore(topic: str, payload: bytes, retained: bool) -> None:
    return None


async def _nothing() -> None:
    return None
