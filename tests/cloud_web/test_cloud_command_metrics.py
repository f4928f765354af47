"""Command counters of the cloud backend against a fake link: timeout, link error, sent/acked."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from fuseguard.cloud.backend import CloudEvseBackend
from fuseguard.cloud.link import LinkDownError, LinkMessage
from fuseguard.cloud.metrics import CommandMetrics
from fuseguard.cloud.protocol import EdgeState, Topics
from fuseguard.cloud.store import CloudStore
from fuseguard.model.clock import RealClock
from fuseguard.store.db import create_engine, init_schema

EVSE = "e" * 32


class SilentLink:
    """A connected link that swallows every publish (an edge that never acks)."""

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.published: list[str] = []

    @property
    def connected(self) -> bool:
        return True

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        if self.fail:
            raise LinkDownError("broker gone")
        self.published.append(topic)

    async def subscribe(self, topic_filter: str, *, qos: int = 1) -> None:
        return None

    async def wait_connected(self, timeout_s: float) -> None:
        return None


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_timeouts_and_link_errors_are_counted(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    await init_schema(engine)
    registry = CollectorRegistry()
    topics = Topics("fgunit")
    backend = CloudEvseBackend(
        CloudStore(engine),
        topics,
        RealClock(),
        replica_id="r1",
        ack_timeout_s=0.05,
        metrics=CommandMetrics(registry),
    )
    link = SilentLink()
    await backend.start(link)
    try:
        online = EdgeState(state="online", session=1).model_dump_json().encode()
        await backend.handle_message(LinkMessage(topics.state("edge1"), online, retain=True))
        assert await backend.set_target("edge1", EVSE, 10, 60) == "rejected"
        assert link.published == [topics.command("edge1")]
        assert _sample(registry, "fuseguard_cloud_commands_sent_total", op="set") == 1.0
        assert _sample(registry, "fuseguard_cloud_commands_timed_out_total", op="set") == 1.0
        assert _sample(registry, "fuseguard_cloud_commands_acked_total", op="set") == 0.0

        link.fail = True
        assert await backend.set_target("edge1", EVSE, 10, 60) == "rejected"
        assert _sample(registry, "fuseguard_cloud_commands_sent_total", op="set") == 1.0
        assert (
            _sample(
                registry, "fuseguard_cloud_commands_rejected_total", op="set", reason="link_error"
            )
            == 1.0
        )
        count = _sample(registry, "fuseguard_cloud_currentsettings_post_duration_seconds_count")
        assert count == 2.0
        total = _sample(registry, "fuseguard_cloud_currentsettings_post_duration_seconds_sum")
        assert total >= 0.05  # the timed-out request waited ack_timeout_s
    finally:
        await backend.stop()
        await engine.dispose()
