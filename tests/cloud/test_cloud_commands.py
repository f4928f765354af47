"""Issue 17 item 2: one cloud command cannot crash-loop the edge.

The edge agent checks a command exactly as the edge's own EVSE API checks a POST (current 0 or
within the EVSE's range, duration within 1..max_duration_s) and acknowledges anything else
``rejected``; nothing out of range reaches (and is persisted in) the targets. No broker needed:
the commands go straight into the agent; acks that cannot be published are logged.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from cloudkit import make_edge
from pydantic import ValidationError

from fuseguard.cloud.link import LinkMessage
from fuseguard.cloud.protocol import CommandMessage, EvseStatusMessage, TargetWire, Topics
from fuseguard.control.targets import EvseTargets, MemoryTargetStore, Target
from fuseguard.model.clock import RealClock

NO_BROKER = "mqtt://127.0.0.1:9"


def _set(evse_uuid: str, current: int, duration: int) -> CommandMessage:
    return CommandMessage(
        id=uuid.uuid4().hex, reply_to="x", op="set", evse_uuid=evse_uuid,
        current=current, duration=duration,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("current", "duration", "reason"),
    [
        (1000, 60, "current must be 0 or within [6, 32] A"),
        (3, 60, "current must be 0 or within [6, 32] A"),
        (33, 60, "current must be 0 or within [6, 32] A"),
        (16, 10**9, "duration must be within [1, 86400] s"),
        (16, 86_401, "duration must be within [1, 86400] s"),
        (16, 0, "duration must be within [1, 86400] s"),
    ],
)
async def test_out_of_range_commands_are_rejected_and_never_stored(
    current: int, duration: int, reason: str
) -> None:
    store = MemoryTargetStore()
    edge = make_edge(NO_BROKER, "fg", targets=EvseTargets(RealClock(), store))
    evse = edge.evses[0].evse_uuid
    ack = await edge.agent.handle_command(_set(evse, current, duration))
    assert ack.state == "rejected"
    assert ack.reason is not None
    assert reason in ack.reason
    assert edge.targets.all() == {}
    assert store.targets == {}


@pytest.mark.parametrize(("current", "duration"), [(0, 1), (6, 60), (32, 86_400)])
async def test_in_range_commands_are_applied(current: int, duration: int) -> None:
    edge = make_edge(NO_BROKER, "fg")
    evse = edge.evses[0].evse_uuid
    ack = await edge.agent.handle_command(_set(evse, current, duration))
    assert ack.state == "received", ack.reason
    assert ack.target is not None
    assert ack.target.current == current
    assert ack.target.valid_until.tzinfo is UTC
    assert edge.targets.cap_a(evse) == current


async def test_max_duration_follows_the_edge_setting() -> None:
    edge = make_edge(NO_BROKER, "fg")
    edge.agent.max_duration_s = 3600
    evse = edge.evses[0].evse_uuid
    assert (await edge.agent.handle_command(_set(evse, 10, 3601))).state == "rejected"
    assert (await edge.agent.handle_command(_set(evse, 10, 3600))).state == "received"


async def test_hostile_command_payloads_are_dropped_without_effect() -> None:
    edge = make_edge(NO_BROKER, "fg")
    evse = edge.evses[0].evse_uuid
    topic = Topics("fg").command(edge.edge_device_id)
    base = {"id": "c1", "reply_to": "x", "op": "set", "evse_uuid": evse, "current": 16}
    for payload in (
        json.dumps({**base, "duration": 250_000_000_000}).encode(),  # the overflow
        json.dumps({**base, "duration": 10**30}).encode(),
        json.dumps({**base, "duration": 60, "current": -5}).encode(),
        json.dumps({**base, "duration": 60, "id": "i" * 10_000}).encode(),
        json.dumps({**base, "duration": 60, "current": 16.5}).encode(),
        b"\xff" * 100,
        b"[" * 100_000,
    ):
        await edge.agent._on_message(LinkMessage(topic, payload))
    assert edge.agent._tasks == set()
    assert edge.targets.all() == {}


async def test_a_failing_backend_is_acknowledged_rejected() -> None:
    edge = make_edge(NO_BROKER, "fg")
    evse = edge.evses[0].evse_uuid

    async def broken(*args: object) -> str:
        raise RuntimeError("disk on fire")

    edge.backend.set_target = broken  # type: ignore[method-assign,assignment]
    ack = await edge.agent.handle_command(_set(evse, 10, 60))
    assert ack.state == "rejected"
    assert ack.reason == "internal error: RuntimeError"


async def test_a_persisted_target_out_of_wire_range_does_not_stop_status_publishing() -> None:
    """A target stored by an older version (or by hand) that the wire refuses: logged, no crash."""
    store = MemoryTargetStore()
    evil = Target(5000, datetime(9999, 12, 31, 23, 0, tzinfo=UTC))
    edge = make_edge(NO_BROKER, "fg", targets=EvseTargets(RealClock(), store))
    evse = edge.evses[0].evse_uuid
    store.targets[evse] = evil
    await edge.targets.load()
    await edge.agent.publish_status(evse)  # logs, does not raise (old code raised)


def test_target_times_must_convert_to_utc() -> None:
    with pytest.raises(ValidationError):
        TargetWire.model_validate_json(
            b'{"current": 10, "valid_until": "9999-12-31T23:00:00-05:00"}'
        )
    with pytest.raises(ValidationError):
        TargetWire.model_validate_json(b'{"current": 10, "valid_until": "2026-01-01T00:00:00"}')
    ok = TargetWire.model_validate_json(
        b'{"current": 10, "valid_until": "2026-01-01T09:00:00+09:00"}'
    )
    assert ok.valid_until == datetime(2026, 1, 1, tzinfo=UTC)
    assert ok.valid_until.tzinfo is UTC


def test_status_messages_are_bounded() -> None:
    good = {
        "seq": 1, "evse_uuid": "e" * 32, "min_current_a": 6, "max_current_a": 32,
        "plugs": [{"uuid": "p" * 32, "label": "Plug 1"}],
        "statuses": [{
            "time": "2026-01-01T00:00:00.000Z", "plug_uuid": "p" * 32, "plug_label": "Plug 1",
            "evse_uuid": "e" * 32, "status": "charging", "current_l1": 1.0, "current_l2": 1.0,
            "current_l3": 1.0, "power": 690.0, "dyn_current_limit": 16.0,
        }],
    }  # fmt: skip
    EvseStatusMessage.model_validate_json(json.dumps(good))
    status = good["statuses"][0]  # type: ignore[index]
    bad_cases = [
        {**good, "seq": 2**63},
        {**good, "max_current_a": 2**31},
        {**good, "evse_uuid": "e" * 65},
        {**good, "plugs": [{"uuid": "p" * 32, "label": "x"}] * 33},
        {**good, "plugs": [{"uuid": "p" * 32, "label": "x" * 65}]},
        {**good, "statuses": [{**status, "current_l1": float("nan")}]},
        {**good, "statuses": [{**status, "power": float("inf")}]},
        {**good, "statuses": [{**status, "dyn_current_limit": 1e300}]},
        {**good, "statuses": [{**status, "time": "yesterday"}]},
    ]
    for case in bad_cases:
        with pytest.raises(ValidationError):
            EvseStatusMessage.model_validate_json(json.dumps(case))


@pytest.mark.parametrize(
    "reply_to",
    [
        "fg/edges/{edge}/ack/#",
        "fg/edges/{edge}/ack/+",
        "fg/edges/{edge}/ack/a/b",
        "fg/edges/other/ack/r1",
        "fg/edges/{edge}/state",
    ],
)
async def test_acks_go_only_to_this_edges_ack_topics(reply_to: str) -> None:
    edge = make_edge(NO_BROKER, "fg")
    published: list[str] = []

    async def publish(topic: str, payload: bytes, **kw: object) -> None:
        published.append(topic)

    edge.agent.link.publish = publish  # type: ignore[method-assign,assignment]
    command = _set(edge.evses[0].evse_uuid, 10, 60).model_copy(
        update={"reply_to": reply_to.format(edge=edge.edge_device_id)}
    )
    await edge.agent.handle_command(command)
    assert not [t for t in published if "/ack/" in t]
    good = command.model_copy(
        update={"id": "c2", "reply_to": f"fg/edges/{edge.edge_device_id}/ack/r1"}
    )
    await edge.agent.handle_command(good)
    assert f"fg/edges/{edge.edge_device_id}/ack/r1" in published
