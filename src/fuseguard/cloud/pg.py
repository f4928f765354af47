"""Raw psycopg for a cloud replica's per-request database work on PostgreSQL.

Every POST and GET of the cloud's EVSE API checks a token and reads or writes one row. Through
SQLAlchemy's async engine one such read cost ~0.7 ms of CPU (pool checkout with its ``SELECT 1``
ping, greenlet hops, statement cache lookup, result processing); the same prepared statement on
a psycopg connection costs ~0.1-0.15 ms (measured on this machine: bench/notes/cloud.md).
So on PostgreSQL the replica's hot statements (token check, target and EVSE reads, the writer's
batch) run here, on connections of :class:`PgPool`; SQLite and everything else (schema, fleet
page, metrics, the CLI) stay on SQLAlchemy. The statements are the same ones: the store compiles
its SQLAlchemy statements to PostgreSQL text once (:func:`compiled`), so the two paths cannot
drift.

:class:`PgPool` is deliberately small: at most ``max_size`` connections, idle ones reused last in
first out, each in autocommit (a read is one round trip) with ``synchronous_commit=off`` (see
docs/cloud.md "Writes"). A statement the server refuses leaves its connection in the pool; a
connection that breaks (or whose work is cancelled) is closed, never reused. An idle connection
that turns out dead (a restarted server) is replaced and the work retried once on a new one,
which is safe because every statement here is a read or a stamp-guarded (idempotent) write.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
import structlog
from psycopg import pq
from sqlalchemy.dialects.postgresql import psycopg as sa_psycopg
from sqlalchemy.engine import make_url

log = structlog.get_logger(__name__)

T = TypeVar("T")
PgConnection = psycopg.AsyncConnection[tuple[Any, ...]]

_DIALECT = sa_psycopg.dialect()  # type: ignore[no-untyped-call]


def pg_conninfo(url: str) -> str:
    """A libpq URI for a SQLAlchemy PostgreSQL URL (``postgresql+psycopg://`` -> ``postgresql://``)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        msg = f"not a PostgreSQL url: {parsed.render_as_string(hide_password=True)}"
        raise ValueError(msg)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def compiled(stmt: Any, column_keys: list[str] | None = None) -> str:
    """``stmt`` as PostgreSQL text with ``%(name)s`` parameters (for psycopg)."""
    text = stmt.compile(dialect=_DIALECT, column_keys=column_keys)
    return str(text)


class PgPool:
    """A small pool of autocommit psycopg connections (see the module docstring)."""

    def __init__(self, url: str, *, max_size: int = 16, connect_timeout_s: float = 10.0) -> None:
        self._conninfo = pg_conninfo(url)
        self._connect_timeout_s = connect_timeout_s
        self._slots = asyncio.Semaphore(max_size)
        self._idle: list[PgConnection] = []
        self._closed = False

    async def _connect(self) -> PgConnection:
        async with asyncio.timeout(self._connect_timeout_s):
            conn: PgConnection = await psycopg.AsyncConnection.connect(
                self._conninfo,
                autocommit=True,
                options="-c synchronous_commit=off",
            )
        return conn

    async def run(self, work: Callable[[PgConnection], Awaitable[T]]) -> T:
        """``await work(conn)`` on a pooled connection; retried once if an idle one was dead."""
        if self._closed:
            msg = "the PostgreSQL pool is closed"
            raise psycopg.InterfaceError(msg)
        async with self._slots:
            for attempt in (0, 1):
                reused = bool(self._idle)
                conn = self._idle.pop() if reused else await self._connect()
                try:
                    result = await work(conn)
                except Exception as err:
                    if not (conn.closed or conn.broken):
                        # the server refused the statement (a deadlock victim, bad data): the
                        # connection is fine once its transaction is rolled back
                        self._release(conn)
                        raise
                    await _discard(conn)
                    if not reused or attempt or not isinstance(err, psycopg.OperationalError):
                        raise
                    log.info(
                        "pg_connection_replaced",
                        device="postgresql",
                        reason=f"idle connection was dropped: {type(err).__name__}",
                    )
                    continue
                except BaseException:  # cancelled, possibly mid-statement: never reuse
                    await _discard(conn)
                    raise
                self._release(conn)
                return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _release(self, conn: PgConnection) -> None:
        idle = not conn.closed and conn.info.transaction_status == pq.TransactionStatus.IDLE
        if idle and not self._closed:
            self._idle.append(conn)
        else:
            conn.pgconn.finish()  # closed, or left inside a transaction: never reused

    async def fetch_one(self, sql: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """The first row of a prepared query, or None."""

        async def work(conn: PgConnection) -> tuple[Any, ...] | None:
            cur = await conn.execute(sql, params, prepare=True)
            return await cur.fetchone()

        return await self.run(work)

    async def fetch_all(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Every row of a prepared query."""

        async def work(conn: PgConnection) -> list[tuple[Any, ...]]:
            cur = await conn.execute(sql, params, prepare=True)
            return await cur.fetchall()

        return await self.run(work)

    async def close(self) -> None:
        """Close every idle connection; connections in use are closed when they come back."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await _discard(conn)


async def _discard(conn: PgConnection) -> None:
    with contextlib.suppress(Exception):
        await conn.close()
