"""Cloud at scale, small: two replicas, PostgreSQL, a Mosquitto of the test's own, many edges.

* Every POST through either replica is acknowledged (no lost ack, no timeout), and a GET on the
  OTHER replica right after the 201 returns the new target (replicas share only the database
  and the broker).
* A replica that starts after many edges learns every edge's retained state: the generated
  Mosquitto config lifts the broker's per-client queue (default 1000 messages).
* The batching writers of two replicas never deadlock on PostgreSQL, even when their batches
  touch the same EVSE rows in crossing order (statuses of one EVSE with the target of another).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import pytest
from brokerkit import run_mosquitto
from cloudkit import VirtualEdge, api_client, cloud_settings, make_edge, wait_for
from tests.ports import free_port

from fuseguard.cloud.acl import mosquitto_conf
from fuseguard.cloud.app import CloudService
from fuseguard.cloud.pg import PgPool
from fuseguard.cloud.protocol import EdgeState, EvseStatusMessage, PlugInfoWire, Topics
from fuseguard.cloud.store import CloudStore, StoredTarget, TargetWrite
from fuseguard.store.db import create_engine, init_schema

pytestmark = [pytest.mark.mqtt, pytest.mark.postgres]

EDGES = 12
ROUNDS = 4


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[str]:
    """A Mosquitto for this test only (as bench/cloud.py starts one)."""
    port = free_port()
    conf = (
        f"listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n"
        "max_connections -1\nmax_queued_messages 0\n"
    )
    with run_mosquitto(conf, tmp_path, [port]):
        yield f"mqtt://127.0.0.1:{port}"


def _counter(service: CloudService, name: str) -> float:
    value = service.registry.get_sample_value(
        f"fuseguard_cloud_commands_{name}_total", {"op": "set"}
    )
    return value or 0.0


async def _drive_edge(
    edge: VirtualEdge, token: str, clients: list[object], seed: int
) -> list[tuple[int, object, object]]:
    """ROUNDS POSTs alternating replicas; after each, GET on the other replica."""
    rng = random.Random(seed)
    evse = edge.evses[0]
    path = f"/edgedevices/{edge.edge_device_id}/evses/{evse.evse_uuid}/currentsettings"
    headers = {"evsetoken": token}
    seen = []
    for k in range(ROUNDS):
        post_via, get_via = clients[k % 2], clients[(k + 1) % 2]
        current = rng.randint(6, 32)
        r = await post_via.post(path, json={"current": current, "duration": 600}, headers=headers)  # type: ignore[attr-defined]
        assert r.status_code == 201
        assert r.json()["state"] == "received"
        got = (await get_via.get(path, headers=headers)).json()["current"]  # type: ignore[attr-defined]
        seen.append((current, got, edge.targets.cap_a(evse.evse_uuid)))
    return seen


async def test_two_replicas_many_edges_consistent_no_lost_ack(
    own_broker: str, prefix: str, pg_url: str
) -> None:
    edges = [make_edge(own_broker, prefix, plugs_per_evse=1) for _ in range(EDGES)]
    async with (
        CloudService(cloud_settings(own_broker, prefix, pg_url, replica_id="sa")) as a,
        CloudService(cloud_settings(own_broker, prefix, pg_url, replica_id="sb")) as b,
    ):
        await asyncio.gather(*(e.start() for e in edges))
        try:

            async def all_known() -> bool:
                for svc in (a, b):
                    await svc.backend.flush()
                    for e in edges:
                        if await svc.backend.evse(e.edge_device_id, e.evses[0].evse_uuid) is None:
                            return False
                return True

            await wait_for(all_known, timeout_s=20)
            tokens = [await a.tokens.create(e.edge_device_id, e.evses[0].evse_uuid) for e in edges]
            async with api_client(a) as http_a, api_client(b) as http_b:
                results = await asyncio.gather(
                    *(
                        _drive_edge(e, t, [http_a, http_b], i)
                        for i, (e, t) in enumerate(zip(edges, tokens, strict=True))
                    )
                )
            for seen in results:
                for posted, got_other, on_edge in seen:
                    assert got_other == posted  # the other replica answers the new target
                    assert on_edge == posted
            total = EDGES * ROUNDS
            assert _counter(a, "acked") + _counter(b, "acked") == total
            assert _counter(a, "sent") + _counter(b, "sent") == total
            assert _counter(a, "timed_out") + _counter(b, "timed_out") == 0
        finally:
            await asyncio.gather(*(e.stop() for e in edges))


def _status(evse: str, seq: int) -> EvseStatusMessage:
    return EvseStatusMessage(
        seq=seq, evse_uuid=evse, min_current_a=6, max_current_a=32,
        plugs=[PlugInfoWire(uuid="p" * 32, label="Plug 1")],
    )  # fmt: skip


@pytest.mark.parametrize("path", ["sqlalchemy", "raw psycopg"])
async def test_crossing_batches_of_two_replicas_do_not_deadlock(pg_url: str, path: str) -> None:
    """Replica A writes X's status and Y's target while B writes Y's status and X's target.

    Both ways a replica can write: through SQLAlchemy, and on the raw connections a replica
    uses on PostgreSQL (:mod:`fuseguard.cloud.pg`).
    """
    engines = [create_engine(pg_url), create_engine(pg_url)]
    await init_schema(engines[0])
    pools = [PgPool(pg_url), PgPool(pg_url)] if path == "raw psycopg" else [None, None]
    store_a, store_b = CloudStore(engines[0], pools[0]), CloudStore(engines[1], pools[1])
    edge = f"deadlock-{random.randrange(10**9)}"
    keys = [f"{c}" * 32 for c in "abcdef"]
    until = datetime.now(UTC) + timedelta(hours=1)
    try:
        await store_a.apply_batch([(edge, _status(k, 1)) for k in keys], ())
        await store_a.apply_batch((), (), [(edge, EdgeState(state="online", session=1))])
        for seq in range(2, 42, 2):
            fwd, rev = keys, keys[::-1]
            batch_a = store_a.apply_batch(
                [(edge, _status(k, seq)) for k in fwd[:3]],
                [TargetWrite(edge, k, StoredTarget(10, until), seq) for k in fwd[3:]],
            )
            batch_b = store_b.apply_batch(
                [(edge, _status(k, seq + 1)) for k in rev[:3]],
                [TargetWrite(edge, k, StoredTarget(12, until), seq + 1) for k in rev[3:]],
            )
            async with asyncio.timeout(5):  # a deadlock costs deadlock_timeout (1 s) and an error
                await asyncio.gather(batch_a, batch_b)
        for k in keys[:3]:  # target of B (seq + 1) wins over A's status (seq) ...
            row = await store_a.evse(edge, k)
            assert row is not None
            assert row.target is not None
            assert row.target.current_a == 12
        # edge states in crossing batches too (one row per edge, offline wins in a session)
        await asyncio.gather(
            store_a.apply_batch((), (), [(edge, EdgeState(state="online", session=50))]),
            store_b.apply_batch((), (), [(edge, EdgeState(state="offline", session=50))]),
        )
        assert await store_b.edge_online(edge) is False
    finally:
        for pool in pools:
            if pool is not None:
                await pool.close()
        for engine in engines:
            await engine.dispose()


RETAINED_EDGES = 1500  # more than Mosquitto's default queue of 1000 messages per client


async def test_new_replica_learns_every_retained_state(
    tmp_path: Path, prefix: str, pg_url: str
) -> None:
    """A replica starting after many edges gets all their retained states (generated config).

    With Mosquitto's default ``max_queued_messages`` (1000) the broker drops the rest of the
    retained messages a new subscription gets at once ("Outgoing messages are being dropped").
    """
    port = free_port()
    generated = mosquitto_conf(tmp_path / "passwd", tmp_path / "acl")
    queue_line = next(ln for ln in generated.splitlines() if ln.startswith("max_queued_messages"))
    conf = f"listener {port} 127.0.0.1\nallow_anonymous true\n{queue_line}\n"
    url = f"mqtt://127.0.0.1:{port}"
    topics = Topics(prefix)
    with run_mosquitto(conf, tmp_path, [port]):
        async with aiomqtt.Client("127.0.0.1", port, identifier=f"pub-{prefix}") as pub:
            for i in range(RETAINED_EDGES):
                payload = EdgeState(state="online", session=1).to_bytes()
                await pub.publish(topics.state(f"re-{i:05d}"), payload, qos=1, retain=True)
        async with CloudService(cloud_settings(url, prefix, pg_url, replica_id="late")) as svc:

            async def all_stored() -> bool:
                await svc.backend.flush()
                edges = await svc.store.edges()
                return sum(1 for e in edges if e.startswith("re-")) == RETAINED_EDGES

            await wait_for(all_stored, timeout_s=30)
            assert all(
                [await svc.backend.edge_online(f"re-{i:05d}") for i in range(0, RETAINED_EDGES, 97)]
            )
