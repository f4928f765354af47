"""The edge agent re-publishes its retained ``online`` state periodically (``state_interval_s``).

The cloud commits asynchronously (docs/cloud.md): a crash may lose the last writes, among them an
edge's ``online``. The edge says it again every ``state_interval_s`` while connected, so the
cloud's flag is right again within one interval without a reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from cloudkit import make_edge
from pydantic import ValidationError

from fuseguard.cloud.link import LinkDownError
from fuseguard.cloud.protocol import EdgeState, Topics
from fuseguard.config.apis import CloudLinkConfig
from fuseguard.model.clock import VirtualClock

PREFIX = "fg-refresh"


class RecordingLink:
    """A connected link that records what is published; ``down`` makes publishing fail."""

    def __init__(self) -> None:
        self.down = False
        self.published: list[tuple[str, bytes, bool]] = []

    @property
    def connected(self) -> bool:
        return True

    async def run(self) -> None:
        await asyncio.Event().wait()

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        if self.down:
            raise LinkDownError("broker gone")
        self.published.append((topic, payload, retain))

    async def subscribe(self, topic_filter: str, *, qos: int = 1) -> None:
        return None

    def states(self, edge_id: str) -> list[EdgeState]:
        topic = Topics(PREFIX).state(edge_id)
        out = []
        for t, payload, retain in self.published:
            if t == topic:
                assert retain, "the edge state must be published retained"
                out.append(EdgeState.model_validate_json(payload))
        return out


@contextlib.asynccontextmanager
async def running_agent(
    state_interval_s: float,
) -> AsyncIterator[tuple[VirtualClock, RecordingLink, str, asyncio.Task[None]]]:
    clock = VirtualClock()
    edge = make_edge("mqtt://127.0.0.1:9", PREFIX, clock=clock)
    agent = edge.agent
    agent.state_interval_s = state_interval_s
    link = RecordingLink()
    agent.link = link  # type: ignore[assignment]
    task = asyncio.create_task(agent.run())
    try:
        await agent._on_connect()  # what the real link calls once connected
        yield clock, link, edge.edge_device_id, task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_online_is_republished_every_state_interval() -> None:
    async with running_agent(300.0) as (clock, link, edge_id, task):
        first = link.states(edge_id)
        assert [s.state for s in first] == ["online"], "online is said on connect"
        await clock.advance(299.0)
        assert len(link.states(edge_id)) == 1, "not re-published before the interval"
        await clock.advance(1.0)
        states = link.states(edge_id)
        assert [s.state for s in states] == ["online", "online"], states
        assert states[1].session == first[0].session, "the same connection: the same session"
        await clock.advance(300.0)
        assert len(link.states(edge_id)) == 3
        assert not task.done()


async def test_a_failed_refresh_does_not_end_the_agent() -> None:
    async with running_agent(60.0) as (clock, link, edge_id, task):
        link.down = True
        await clock.advance(120.0)
        assert not task.done(), "a failed publish must not end the agent"
        link.down = False
        await clock.advance(60.0)
        assert [s.state for s in link.states(edge_id)] == ["online", "online"]


def test_state_interval_config_is_bounded() -> None:
    assert CloudLinkConfig().state_interval_s == 300.0
    assert CloudLinkConfig(state_interval_s=60).state_interval_s == 60.0
    for bad in (0.0, 1.0, float("nan"), float("inf"), 1e9):
        with pytest.raises(ValidationError):
            CloudLinkConfig(state_interval_s=bad)
