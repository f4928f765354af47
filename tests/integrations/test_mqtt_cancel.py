"""A cancel that aiomqtt swallows still stops the MQTT connection.

aiomqtt waits for PUBACK with ``asyncio.wait_for``; on Python 3.11 that returns the answer instead
of raising when the cancel and the answer land in the same loop step. The connection task then
went on serving messages with its cancel lost, and ``stop`` waited for ever (the 120 s teardown
timeouts of ``test_home_assistant_birth_republishes`` under load). These tests make that race
happen every time, with a stand-in client that waits the way aiomqtt does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fuseguard.api.mqtt.client import MqttConnection


class WaitForClient:
    """An aiomqtt stand-in: ``publish`` waits for its acknowledgement with ``asyncio.wait_for``,
    and the test acknowledges it and cancels the publisher in one step."""

    def __init__(self, messages: list[str] | None = None) -> None:
        self.acks: asyncio.Queue[asyncio.Future[None]] = asyncio.Queue()
        self.published: list[str] = []
        self.inbox: list[str] = list(messages or [])
        self.closed = False

    async def __aenter__(self) -> WaitForClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.closed = True

    async def subscribe(self, topic: str, qos: int = 0) -> None:
        return None

    async def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        self.published.append(topic)
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self.acks.put(ack)
        await asyncio.wait_for(ack, 5)  # as aiomqtt's Client._wait_for

    @property
    def messages(self) -> AsyncIterator[Any]:
        async def gen() -> AsyncIterator[Any]:
            for topic in self.inbox:
                yield type("Message", (), {"topic": topic, "payload": b"online", "retain": False})
            await asyncio.Event().wait()  # then nothing more arrives

        return gen()


def _connection(on_message: Any = None) -> MqttConnection:
    async def nothing(*_args: object) -> None:
        return None

    return MqttConnection(
        url="mqtt://127.0.0.1:1",
        client_id="cancel-test",
        will_topic="t/status",
        on_message=on_message or nothing,
        on_connect=nothing,
        timeout_s=5.0,
    )


async def _ack_and_cancel(client: WaitForClient, task: asyncio.Task[Any]) -> None:
    """Acknowledge the pending publish and cancel ``task`` in the same loop step."""
    ack = await asyncio.wait_for(client.acks.get(), 5)
    ack.set_result(None)
    task.cancel()


async def test_a_cancel_during_an_acknowledged_publish_is_not_lost() -> None:
    conn = _connection()
    client = WaitForClient()
    conn._client = client  # type: ignore[assignment]
    conn._connected.set()
    task = asyncio.create_task(conn.publish("t/x", b"1", retain=True))
    await _ack_and_cancel(client, task)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert task.cancelled()


async def test_the_connection_stops_when_cancelled_in_a_handlers_publish() -> None:
    """The hang as it happened: a message handler publishes (Home Assistant's birth republishes
    discovery), the stop's cancel lands with the PUBACK; ``run`` must still end."""
    holder: dict[str, MqttConnection] = {}

    async def handler(topic: str, payload: bytes, retained: bool) -> None:
        await holder["conn"].publish("t/discovery", b"{}", retain=True)

    conn = _connection(handler)
    holder["conn"] = conn
    client = WaitForClient(messages=["homeassistant/status"])
    conn._make_client = lambda: client  # type: ignore[assignment,method-assign,return-value]
    task = asyncio.create_task(conn.run())
    await _ack_and_cancel(client, task)
    # going offline publishes once more; acknowledge that too
    offline = await asyncio.wait_for(client.acks.get(), 5)
    offline.set_result(None)
    done, _ = await asyncio.wait({task}, timeout=5)
    assert done, f"the connection did not stop after its cancel: {task}"
    assert task.cancelled()
    assert client.published == ["t/discovery", "t/status"]
    assert client.closed
