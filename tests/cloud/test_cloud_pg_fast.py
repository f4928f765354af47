"""The replica's raw psycopg path on PostgreSQL (``fuseguard.cloud.pg``) against the SQLAlchemy one.

* Token checks answer exactly as :class:`~fuseguard.store.tokens.TokenRepository` does (ok,
  missing, invalid, wrong EVSE), and a revoked token is refused by the next check (no cache).
* Reads (EVSE row, target only, online flag) return the same values on both paths, and writes
  through the raw path are guarded by the same stamps (an older status or target changes nothing).
* The pool replaces a connection the server dropped (a restarted PostgreSQL) and retries once,
  keeps a connection whose statement the server refused (rolled back), and a server it cannot
  reach at all is an error, not a hang.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from fuseguard.cloud.pg import PgPool, pg_conninfo
from fuseguard.cloud.protocol import EdgeState, EvseStatusMessage, PlugInfoWire, TargetWire
from fuseguard.cloud.store import CloudStore, StoredTarget, TargetWrite
from fuseguard.cloud.tokens import CloudTokens
from fuseguard.store.db import create_engine, init_schema
from fuseguard.store.tokens import TokenRepository

pytestmark = pytest.mark.postgres

EVSE_A = "a" * 32
EVSE_B = "b" * 32


@dataclass
class Paths:
    raw: CloudStore
    orm: CloudStore
    raw_tokens: CloudTokens
    orm_tokens: TokenRepository
    pool: PgPool


@pytest.fixture
async def paths(pg_url: str) -> AsyncIterator[Paths]:
    engine = create_engine(pg_url, synchronous_commit=False)
    await init_schema(engine)
    pool = PgPool(pg_url, max_size=4)
    try:
        yield Paths(
            CloudStore(engine, pool),
            CloudStore(engine),
            CloudTokens(engine, pool),
            TokenRepository(engine),
            pool,
        )
    finally:
        await pool.close()
        await engine.dispose()


def _status(evse: str, seq: int, target: TargetWire | None = None) -> EvseStatusMessage:
    return EvseStatusMessage(
        seq=seq, evse_uuid=evse, min_current_a=6, max_current_a=32,
        plugs=[PlugInfoWire(uuid="p" * 32, label="Plug 1")], target=target,
    )  # fmt: skip


async def test_token_checks_answer_alike_and_revocation_is_immediate(paths: Paths) -> None:
    edge = f"tok-{uuid.uuid4().hex[:8]}"
    token_a = await paths.orm_tokens.create(edge, EVSE_A)
    token_b = await paths.orm_tokens.create(edge, EVSE_B)
    cases = [
        ((edge, EVSE_A, token_a), "ok"),
        ((edge, EVSE_A, None), "missing"),
        ((edge, EVSE_A, ""), "missing"),
        ((edge, EVSE_A, "not-a-token"), "invalid"),
        ((edge, EVSE_A, token_b), "wrong_evse"),
        (("other-edge", EVSE_A, token_a), "wrong_evse"),
    ]
    for args, expected in cases:
        assert await paths.orm_tokens.check(*args) == expected, args
        assert await paths.raw_tokens.check(*args) == expected, args
    token_id = next(t.id for t in await paths.orm_tokens.list(edge) if t.evse_uuid == EVSE_A)
    assert await paths.raw_tokens.revoke(token_id)
    assert await paths.raw_tokens.check(edge, EVSE_A, token_a) == "invalid"


async def test_reads_agree_and_writes_are_stamp_guarded(paths: Paths) -> None:
    edge = f"rw-{uuid.uuid4().hex[:8]}"
    until = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    written = await paths.raw.apply_batch(
        [(edge, _status(EVSE_A, 10)), (edge, _status(EVSE_B, 10))],
        [],
        [(edge, EdgeState(state="online", session=1))],
    )
    assert written == (2, 0)
    assert await paths.raw.edge_online(edge) is True
    assert await paths.raw.edge_online("never-seen") is None
    assert await paths.raw.target(edge, EVSE_A) is None
    # a target and a status of another EVSE in one batch (the lock-up-front case)
    assert await paths.raw.apply_batch(
        [(edge, _status(EVSE_B, 12))], [TargetWrite(edge, EVSE_A, StoredTarget(16, until), 11)]
    ) == (1, 1)
    assert await paths.raw.target(edge, EVSE_A) == StoredTarget(16, until)
    # older stamps change nothing
    assert await paths.raw.apply_batch(
        [(edge, _status(EVSE_B, 11))], [TargetWrite(edge, EVSE_A, StoredTarget(6, until), 5)]
    ) == (0, 0)
    assert not await paths.raw.apply_target(edge, EVSE_A, None, 9)
    assert await paths.raw.apply_target(edge, EVSE_A, None, 13)
    assert await paths.raw.target(edge, EVSE_A) is None
    target = TargetWire(current=20, valid_until=until)
    assert await paths.raw.apply_batch([(edge, _status(EVSE_A, 14, target))], []) == (1, 0)
    assert await paths.raw.apply_batch((), (), [(edge, EdgeState(state="offline", session=1))])
    for evse in (EVSE_A, EVSE_B, "c" * 32):
        assert await paths.raw.evse(edge, evse) == await paths.orm.evse(edge, evse)
        assert await paths.raw.target(edge, evse) == await paths.orm.target(edge, evse)
    row = await paths.raw.evse(edge, EVSE_A)
    assert row is not None
    assert row.target == StoredTarget(20, until)
    assert row.target.valid_until.tzinfo is UTC
    assert await paths.raw.edge_online(edge) is False
    assert await paths.orm.edge_online(edge) is False


async def test_pool_replaces_a_dropped_connection(paths: Paths, pg_url: str) -> None:
    async def backend_pid(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> int:
        return int(conn.info.backend_pid)

    first = await paths.pool.run(backend_pid)
    with psycopg.connect(pg_conninfo(pg_url), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (first,))
    assert await paths.raw.edge_online("nobody") is None  # retried on a new connection
    assert await paths.pool.run(backend_pid) != first


async def test_a_refused_statement_keeps_its_connection(paths: Paths) -> None:
    async def backend_pid(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> int:
        return int(conn.info.backend_pid)

    async def fail_in_transaction(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
        async with conn.transaction():
            await conn.execute("SELECT 1 / 0")

    first = await paths.pool.run(backend_pid)
    with pytest.raises(psycopg.errors.DivisionByZero):
        await paths.pool.fetch_one("SELECT 1 / %(zero)s", {"zero": 0})
    with pytest.raises(psycopg.errors.DivisionByZero):
        await paths.pool.run(fail_in_transaction)
    assert await paths.pool.run(backend_pid) == first  # rolled back and reused, not reconnected


async def test_unreachable_server_is_an_error() -> None:
    pool = PgPool("postgresql://nobody@127.0.0.1:1/none", connect_timeout_s=5)
    with pytest.raises(psycopg.OperationalError):
        await pool.fetch_one("SELECT 1", {})
    await pool.close()
