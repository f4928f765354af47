"""The replica's in-memory presence and EVSE limits, and group-committed target writes.

Unit tests drive :class:`CloudEvseBackend` through a fake link (messages fed by hand, commands
acked by a fake edge); the last test checks two replicas against the real broker.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cloudkit import api_client, cloud_settings, crash_connection, make_edge, wait_for

from fuseguard.cloud.app import CloudService
from fuseguard.cloud.backend import CloudEvseBackend
from fuseguard.cloud.link import LinkDownError, LinkMessage
from fuseguard.cloud.protocol import (
    AckMessage,
    CommandMessage,
    EdgeState,
    EvseStatusMessage,
    PlugInfoWire,
    TargetWire,
    Topics,
)
from fuseguard.cloud.store import CloudStore
from fuseguard.model.clock import RealClock
from fuseguard.store.db import create_engine, init_schema

EVSE = "e" * 32


class FakeLink:
    """A Link whose connection state the test sets; commands are acked by a fake edge."""

    def __init__(self) -> None:
        self.connected = True
        self.backend: CloudEvseBackend | None = None
        self.topics = Topics("fg")
        self.commands: list[CommandMessage] = []
        self.seq = 1000
        self.targets: dict[str, TargetWire] = {}

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        if not self.connected:
            raise LinkDownError("down")
        command = CommandMessage.model_validate_json(payload)
        self.commands.append(command)
        self.seq += 1
        target = previous = None
        if command.op == "clear":
            previous = self.targets.pop(command.evse_uuid, None)
        else:
            assert command.current is not None
            target = self.targets[command.evse_uuid] = TargetWire(
                current=command.current, valid_until=datetime(2099, 1, 1, tzinfo=UTC)
            )
        ack = AckMessage(
            id=command.id, seq=self.seq, evse_uuid=command.evse_uuid, state="received",
            target=target, previous=previous,
        )  # fmt: skip
        assert self.backend is not None
        backend = self.backend
        asyncio.get_running_loop().call_soon(
            lambda: asyncio.ensure_future(
                backend.handle_message(LinkMessage(command.reply_to, ack.to_bytes()))
            )
        )

    async def subscribe(self, topic_filter: str, *, qos: int = 1) -> None:
        return None

    async def wait_connected(self, timeout_s: float) -> None:
        return None


def _state(edge: str, state: str, session: int) -> LinkMessage:
    payload = EdgeState(state=state, session=session).to_bytes()  # type: ignore[arg-type]
    return LinkMessage(Topics("fg").state(edge), payload, retain=True)


def _status(edge: str, evse: str, seq: int, max_a: int) -> LinkMessage:
    msg = EvseStatusMessage(
        seq=seq, evse_uuid=evse, min_current_a=6, max_current_a=max_a,
        plugs=[PlugInfoWire(uuid="p" * 32, label="Plug 1")], target=None,
    )  # fmt: skip
    return LinkMessage(Topics("fg").status(edge, evse), msg.to_bytes(), retain=True)


async def _backend(tmp_path: Path) -> tuple[CloudEvseBackend, FakeLink, CloudStore]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    await init_schema(engine)
    store = CloudStore(engine)
    backend = CloudEvseBackend(store, Topics("fg"), RealClock(), replica_id="r1")
    link = FakeLink()
    link.backend = backend
    await backend.start(link)
    return backend, link, store


async def test_cached_online_flag_follows_state_messages(tmp_path: Path) -> None:
    backend, link, store = await _backend(tmp_path)
    try:
        assert await backend.edge_online("e1") is None
        await backend.handle_message(_state("e1", "online", 1))
        assert await backend.edge_online("e1") is True
        await backend.handle_message(_state("e1", "offline", 1))
        assert await backend.edge_online("e1") is False
        # a late "online" of the same session does not undo the will (same rule as the store)
        await backend.handle_message(_state("e1", "online", 1))
        assert await backend.edge_online("e1") is False
        await backend.flush()  # the database is written by the replica's batching writer
        assert await store.edge_online("e1") is False
        assert await backend.set_target("e1", EVSE, 10, 60) == "rejected"
        assert link.commands == []  # rejected without publishing
        await backend.handle_message(_state("e1", "online", 2))
        assert await backend.edge_online("e1") is True
        # an older session arriving late changes nothing
        await backend.handle_message(_state("e1", "offline", 1))
        assert await backend.edge_online("e1") is True

        # another replica recorded "offline" while this one missed the message:
        await store.apply_edge_state("e1", EdgeState(state="offline", session=3))
        link.connected = False  # link down: the database answers
        assert await backend.edge_online("e1") is False
        link.connected = True
        await backend.on_link_connected()  # reconnect forgets what was learnt before
        assert await backend.edge_online("e1") is False
        await backend.handle_message(_state("e1", "online", 4))  # the retained state again
        assert await backend.edge_online("e1") is True
        await backend.flush()
        assert await store.edge_online("e1") is True
    finally:
        await backend.stop()
        await store.engine.dispose()


async def test_cached_evse_limits_newest_wins_and_db_fallback(tmp_path: Path) -> None:
    backend, _, store = await _backend(tmp_path)
    try:
        assert await backend.evse("e1", EVSE) is None
        await backend.handle_message(_status("e1", EVSE, 10, 32))
        info = await backend.evse("e1", EVSE)  # at once, before the writer committed it
        assert info is not None
        assert info.max_current_a == 32
        await backend.handle_message(_status("e1", EVSE, 5, 16))  # older: ignored
        info = await backend.evse("e1", EVSE)
        assert info is not None
        assert info.max_current_a == 32
        await backend.handle_message(_status("e1", EVSE, 11, 20))
        await backend.flush()
        row = await store.evse("e1", EVSE)
        assert row is not None
        assert row.max_current_a == 20
        await backend.on_link_connected()
        info = await backend.evse("e1", EVSE)  # from the database now
        assert info is not None
        assert info.max_current_a == 20
        assert info.plugs == (("p" * 32, "Plug 1"),)
    finally:
        await backend.stop()
        await store.engine.dispose()


async def test_concurrent_targets_are_committed_before_the_answer(tmp_path: Path) -> None:
    backend, _, store = await _backend(tmp_path)
    try:
        evses = [f"{i:032x}" for i in range(20)]
        await backend.handle_message(_state("e1", "online", 1))
        for i, evse in enumerate(evses):
            await backend.handle_message(_status("e1", evse, 1 + i, 32))
        # no flush: the targets go through the same writer queue as the status messages
        states = await asyncio.gather(
            *(backend.set_target("e1", evse, 6 + i, 600) for i, evse in enumerate(evses))
        )
        assert states == ["received"] * len(evses)
        for i, evse in enumerate(evses):
            row = await store.evse("e1", evse)
            assert row is not None
            assert row.target is not None
            assert row.target.current_a == 6 + i
        previous = await backend.clear_target("e1", evses[0])
        assert previous is not None
        assert previous.current_a == 6
        row = await store.evse("e1", evses[0])
        assert row is not None
        assert row.target is None
    finally:
        await backend.stop()
        await store.engine.dispose()


@pytest.mark.mqtt
async def test_two_replicas_follow_offline_and_online(
    mqtt_url: str, prefix: str, tmp_path: Path
) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"
    edge = make_edge(mqtt_url, prefix)
    # The offline phase below must outlast two POSTs and two GETs on a busy machine: the agent's
    # default backoff (0.1-0.3 s) made it a race (a replica's status write in that window, e.g.
    # one held by the writer's linger, could make it lose); 0.5-1.5 s keeps the edge offline.
    edge.agent.link.reconnect_min_s = 1.0
    evse = edge.evses[0]
    path = f"/edgedevices/{edge.edge_device_id}/evses/{evse.evse_uuid}"
    async with (
        CloudService(cloud_settings(mqtt_url, prefix, db_url, replica_id="a")) as a,
        CloudService(cloud_settings(mqtt_url, prefix, db_url, replica_id="b")) as b,
    ):
        await edge.start()
        try:

            async def online_everywhere() -> bool:
                for svc in (a, b):
                    await svc.backend.flush()
                    if await svc.backend.edge_online(edge.edge_device_id) is not True:
                        return False
                    if await svc.backend.evse(edge.edge_device_id, evse.evse_uuid) is None:
                        return False
                return True

            await wait_for(online_everywhere)
            token = await a.tokens.create(edge.edge_device_id, evse.evse_uuid)
            headers = {"evsetoken": token}
            async with api_client(a) as http_a, api_client(b) as http_b:
                for http, current in ((http_a, 10), (http_b, 12)):
                    r = await http.post(
                        f"{path}/currentsettings", json={"current": current, "duration": 600},
                        headers=headers,
                    )  # fmt: skip
                    assert r.json()["state"] == "received"

                crash_connection(edge.agent.link)  # the broker sends the will to both replicas

                async def offline_everywhere() -> bool:
                    flags = [await svc.backend.edge_online(edge.edge_device_id) for svc in (a, b)]
                    return flags == [False, False]

                await wait_for(offline_everywhere)
                for http in (http_a, http_b):
                    started = time.monotonic()
                    r = await http.post(
                        f"{path}/currentsettings", json={"current": 8, "duration": 60},
                        headers=headers,
                    )  # fmt: skip
                    assert r.json()["state"] == "rejected"
                    assert time.monotonic() - started < 1.0  # no ack wait for an offline edge
                    rs = (await http.get(f"{path}/status", headers=headers)).json()
                    assert {p["status"] for p in rs} == {"cloud_offline"}

                await wait_for(online_everywhere, 10)  # the agent reconnects by itself
                for http, current in ((http_b, 14), (http_a, 16)):
                    r = await http.post(
                        f"{path}/currentsettings", json={"current": current, "duration": 600},
                        headers=headers,
                    )  # fmt: skip
                    assert r.json()["state"] == "received"
                assert edge.targets.cap_a(evse.evse_uuid) == 16
                got = [
                    (await http.get(f"{path}/currentsettings", headers=headers)).json()
                    for http in (http_a, http_b)
                ]
                assert got[0] == got[1]
                assert got[0]["current"] == 16
        finally:
            await edge.stop()
