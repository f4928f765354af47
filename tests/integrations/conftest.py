"""MQTT fixtures: the session's private Mosquitto, unique prefixes, a probe client.

Broker: ``tests/conftest.py::mqtt_url`` (a ``mosquitto`` of this test session alone, on a free
port). Every test gets its own topic and discovery prefixes, and whatever it left retained below
them is cleared afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiomqtt
import pytest


@pytest.fixture(scope="session")
def broker_url(mqtt_url: str) -> str:
    """The session's MQTT broker (``tests/conftest.py::mqtt_url``)."""
    return mqtt_url


def broker_port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@dataclass
class Probe:
    """A test client: records every message below the given filters."""

    url: str
    filters: tuple[str, ...]
    messages: list[tuple[str, bytes, bool]] = field(default_factory=list)
    client: aiomqtt.Client | None = None
    _task: asyncio.Task[None] | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        self.client = aiomqtt.Client(
            "127.0.0.1", broker_port(self.url), identifier=f"probe-{uuid.uuid4().hex[:8]}"
        )
        await self.client.__aenter__()
        for f in self.filters:
            await self.client.subscribe(f, qos=1)
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.client is not None
        async for m in self.client.messages:
            payload = m.payload if isinstance(m.payload, bytes) else str(m.payload).encode()
            self.messages.append((str(m.topic), payload, bool(m.retain)))
            self._changed.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.client is not None:
            await self.client.__aexit__(None, None, None)

    async def publish(self, topic: str, payload: bytes | str, *, retain: bool = False) -> None:
        assert self.client is not None
        await self.client.publish(topic, payload, qos=1, retain=retain)

    def last(self, topic: str) -> bytes | None:
        for t, payload, _ in reversed(self.messages):
            if t == topic:
                return payload
        return None

    def latest(self) -> dict[str, tuple[bytes, bool]]:
        out: dict[str, tuple[bytes, bool]] = {}
        for t, payload, retained in self.messages:
            out[t] = (payload, retained)
        return out

    def retained_copies(self) -> dict[str, tuple[bytes, bool]]:
        """``latest()`` of the retained copies only: what the broker handed this (fresh)
        subscriber, without live publishes that arrived meanwhile (an edge publishes its state
        twice at connect when its periodic pass gets in before the connect's forced one)."""
        return {t: (payload, True) for t, payload, retained in self.messages if retained}

    async def wait_for(self, check: object, timeout_s: float = 10.0) -> None:
        assert callable(check)
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not check():
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError("condition not met in time")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.2))

    async def settle(self, quiet_s: float = 0.5, timeout_s: float = 10.0) -> None:
        """Wait until nothing arrived for ``quiet_s``."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            count = len(self.messages)
            await asyncio.sleep(quiet_s)
            if len(self.messages) == count:
                return


async def retained(url: str, filters: tuple[str, ...], quiet_s: float = 0.6) -> Probe:
    """What a fresh subscriber gets: the retained messages below ``filters``."""
    probe = Probe(url, filters)
    await probe.start()
    await probe.settle(quiet_s)
    await probe.stop()
    return probe


@pytest.fixture
async def prefixes(broker_url: str) -> AsyncIterator[tuple[str, str]]:
    """``(topic_prefix, discovery_prefix)`` of this test; retained leftovers are cleared."""
    tag = uuid.uuid4().hex[:10]
    topic_prefix, ha_prefix = f"fgit-{tag}", f"fgit-ha-{tag}"
    yield topic_prefix, ha_prefix
    probe = await retained(broker_url, (f"{topic_prefix}/#", f"{ha_prefix}/#"))
    cleaner = Probe(broker_url, ())
    await cleaner.start()
    for topic, (payload, was_retained) in probe.latest().items():
        if was_retained and payload:
            await cleaner.publish(topic, b"", retain=True)
    await cleaner.stop()


@pytest.fixture
async def probe_factory(broker_url: str) -> AsyncIterator[object]:
    started: list[Probe] = []

    async def make(*filters: str) -> Probe:
        p = Probe(broker_url, tuple(filters))
        await p.start()
        started.append(p)
        return p

    yield make
    for p in started:
        await p.stop()
