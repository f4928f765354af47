"""A cancel that aiomqtt swallows still stops the cloud's MQTT link (``MqttLink``).

aiomqtt 2.x waits for CONNACK, SUBACK and PUBACK with ``asyncio.wait_for``; on Python 3.11 that
returns the answer instead of raising when a cancel and the answer land in the same loop step.
The link then went on (a POST's publish returned as if not cancelled; ``run`` went on to serve
messages for ever). The fix is the API layer's one helper (``fuseguard.api.mqtt.client``:
``cancel_requests`` / ``raise_lost_cancel``); these tests make the race happen every time with a
stand-in client that waits the way aiomqtt does.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fuseguard.cloud.link import LinkMessage, MqttLink


class AnsweringClient:
    """An aiomqtt stand-in: every call that needs the broker's answer (connect, subscribe,
    publish) waits for it with ``asyncio.wait_for``; the test answers and cancels in one step."""

    def __init__(self) -> None:
        self.answers: asyncio.Queue[tuple[str, asyncio.Future[None]]] = asyncio.Queue()
        self.calls: list[str] = []
        self.closed = False

    async def _answer(self, what: str) -> None:
        self.calls.append(what)
        answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self.answers.put((what, answer))
        await asyncio.wait_for(answer, 5)  # as aiomqtt's Client._wait_for

    async def __aenter__(self) -> AnsweringClient:
        await self._answer("connect")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.closed = True

    async def subscribe(self, topic: str, qos: int = 0) -> None:
        await self._answer(f"subscribe {topic}")

    async def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        await self._answer(f"publish {topic}")

    @property
    def messages(self) -> AsyncIterator[Any]:
        async def nothing_arrives() -> AsyncIterator[Any]:
            await asyncio.Event().wait()
            yield None  # pragma: no cover

        return nothing_arrives()


async def _ignore(_message: LinkMessage) -> None:
    return None


def _link(client: AnsweringClient) -> MqttLink:
    link = MqttLink("mqtt://127.0.0.1:1", "cancel-test", _ignore, reconnect_min_s=0.01)
    link._make_client = lambda: client  # type: ignore[assignment,method-assign,return-value]
    return link


async def _answer(client: AnsweringClient, expected: str) -> None:
    what, answer = await asyncio.wait_for(client.answers.get(), 5)
    assert what == expected
    answer.set_result(None)


async def _answer_and_cancel(
    client: AnsweringClient, expected: str, task: asyncio.Task[Any]
) -> None:
    """The broker's answer and the cancel land in the same loop step."""
    what, answer = await asyncio.wait_for(client.answers.get(), 5)
    assert what == expected
    answer.set_result(None)
    task.cancel()


async def _ends_cancelled(task: asyncio.Task[Any]) -> None:
    done, _ = await asyncio.wait({task}, timeout=5)
    assert done, f"the cancel was lost: {task}"
    assert task.cancelled()


def _connected(client: AnsweringClient) -> MqttLink:
    link = _link(client)
    link._client = client  # type: ignore[assignment]
    link._connected_event.set()
    return link


async def test_a_publish_cancelled_as_its_puback_arrives_is_cancelled() -> None:
    client = AnsweringClient()
    link = _connected(client)
    task = asyncio.create_task(link.publish("t/cmd", b"{}", qos=1))
    await _answer_and_cancel(client, "publish t/cmd", task)
    await _ends_cancelled(task)


async def test_a_subscribe_cancelled_as_its_suback_arrives_is_cancelled() -> None:
    client = AnsweringClient()
    link = _connected(client)
    task = asyncio.create_task(link.subscribe("t/#"))
    await _answer_and_cancel(client, "subscribe t/#", task)
    await _ends_cancelled(task)


async def test_the_link_stops_when_cancelled_as_the_connack_arrives() -> None:
    client = AnsweringClient()
    task = asyncio.create_task(_link(client).run())
    await _answer_and_cancel(client, "connect", task)
    await _ends_cancelled(task)
    assert client.calls == ["connect"]  # it neither subscribed nor served messages
    assert client.closed


async def test_the_link_stops_when_cancelled_as_a_suback_arrives() -> None:
    client = AnsweringClient()
    link = _link(client)
    link._subscriptions = {"a/#": 1, "b/#": 1}
    task = asyncio.create_task(link.run())
    await _answer(client, "connect")
    await _answer_and_cancel(client, "subscribe a/#", task)
    await _ends_cancelled(task)
    assert client.calls == ["connect", "subscribe a/#"]
    assert not link.connected


async def test_a_timeout_around_an_acknowledged_publish_is_not_a_cancel() -> None:
    """The caller's own deadline firing with the PUBACK: the publish succeeded, nothing raises
    (``asyncio.timeout`` takes its cancel back), as with a publish answered just in time."""
    client = AnsweringClient()
    link = _connected(client)

    async def publish_with_deadline() -> str:
        async with asyncio.timeout(5):
            await link.publish("t/cmd", b"{}", qos=1)
        return "published"

    task = asyncio.create_task(publish_with_deadline())
    await _answer(client, "publish t/cmd")
    assert await asyncio.wait_for(task, 5) == "published"


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="wait_for no longer swallows it")
async def test_the_stand_in_reproduces_the_race() -> None:
    """A bare ``wait_for`` answered and cancelled in one step returns normally on Python 3.11:
    the cancel is lost unless the caller checks ``cancelling()`` (what the link does)."""
    client = AnsweringClient()
    task = asyncio.create_task(client.publish("t/raw", b""))
    await _answer_and_cancel(client, "publish t/raw", task)
    await asyncio.wait({task}, timeout=5)
    assert task.done()
    assert not task.cancelled()
    assert task.cancelling() == 1
