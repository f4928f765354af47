"""Database engine, write serialisation and schema versioning (SQLAlchemy 2 Core, async).

SQLite (``sqlite+aiosqlite``) is the default, one file in the data dir; PostgreSQL
(``postgresql+psycopg``) is selected by URL. The tables are in :mod:`fuseguard.store.schema`;
:func:`init_schema` creates exactly those.

SQLite gets ``journal_mode=WAL``, ``busy_timeout`` and ``synchronous=NORMAL`` on every connection,
and writes inside one process go through :func:`writing`, which serialises them with a lock per
engine (one writer; readers run concurrently thanks to WAL).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool
from sqlalchemy.schema import CreateIndex, CreateTable

from fuseguard.model.clock import RealClock
from fuseguard.store.schema import (
    add_history_pv,
    add_session_id_tag,
    metadata,
    schema_version_table,
)

log = structlog.get_logger(__name__)

#: Version of the schema this code writes. Bump it together with an entry in ``_MIGRATIONS``.
SCHEMA_VERSION = 3
SCHEMA_COMPONENT = "fuseguard"
SQLITE_BUSY_TIMEOUT_MS = 5000
DB_FILENAME = "fuseguard.db"
#: PostgreSQL connections kept open per engine, and how many more it may open under load.
PG_POOL_SIZE = 16
PG_MAX_OVERFLOW = 16


class SchemaVersionError(RuntimeError):
    """The database was written by a newer fuseguard than this one."""


def default_sqlite_url(data_dir: Path) -> str:
    """``sqlite+aiosqlite:///<data_dir>/fuseguard.db`` (the directory is created)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{(data_dir / DB_FILENAME).resolve()}"


def normalize_url(url: str) -> str:
    """Pick the async driver: ``sqlite://`` -> aiosqlite, ``postgresql://`` -> psycopg."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite" and parsed.drivername != "sqlite+aiosqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif backend == "postgresql" and parsed.drivername != "postgresql+psycopg":
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend not in ("sqlite", "postgresql"):
        msg = f"unsupported database {backend!r}: use sqlite or postgresql"
        raise ValueError(msg)
    return parsed.render_as_string(hide_password=False)


def _sqlite_on_connect(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def create_engine(url: str, *, synchronous_commit: bool = True) -> AsyncEngine:
    """An async engine for ``url``; SQLite connections get WAL, busy timeout, synchronous=NORMAL.

    ``synchronous_commit=False`` (PostgreSQL only): a commit returns before its WAL record is
    flushed to disk (other sessions see it at once; a server crash may lose the last ~0.6 s of
    commits). For data that is a re-derivable copy, such as the cloud's view of its edges.
    """
    full = normalize_url(url)
    parsed = make_url(full)
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or "mode=memory" in full:
            kwargs["poolclass"] = StaticPool
        elif not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    else:
        # One cloud replica reads tokens and rows from many concurrent requests: a pool smaller
        # than that opens and closes a connection (a PostgreSQL backend) per request.
        kwargs.update(pool_pre_ping=True, pool_size=PG_POOL_SIZE, max_overflow=PG_MAX_OVERFLOW)
        if not synchronous_commit:
            kwargs["connect_args"] = {"options": "-c synchronous_commit=off"}
    engine = create_async_engine(full, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
    log.debug("db_engine_created", db=parsed.render_as_string(hide_password=True))
    return engine


_write_locks: weakref.WeakKeyDictionary[sa.Engine, asyncio.Lock] = weakref.WeakKeyDictionary()


def _write_lock(engine: AsyncEngine) -> asyncio.Lock | None:
    if engine.dialect.name != "sqlite":
        return None
    lock = _write_locks.get(engine.sync_engine)
    if lock is None:
        lock = asyncio.Lock()
        _write_locks[engine.sync_engine] = lock
    return lock


@asynccontextmanager
async def writing(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A write transaction; on SQLite, one writer at a time per engine (no "database is locked")."""
    lock = _write_lock(engine)
    if lock is None:
        async with engine.begin() as conn:
            yield conn
        return
    async with lock, engine.begin() as conn:
        yield conn


@asynccontextmanager
async def reading(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection for reads; on PostgreSQL in autocommit.

    Without it every read is BEGIN, the query, ROLLBACK (when the connection goes back to the
    pool): three round trips instead of one. Each statement sees the newest committed data.
    """
    async with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


def dialect_insert(conn: AsyncConnection, table: sa.Table) -> Any:
    """``INSERT`` of the connection's dialect, which has ``on_conflict_do_update`` (upserts)."""
    return insert_for(conn.dialect.name, table)


def insert_for(dialect: str, table: sa.Table) -> Any:
    """``INSERT`` of the dialect named ``dialect`` (``postgresql``, else SQLite's)."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


# Migrations from version N to N+1, run in one transaction each.
_MIGRATIONS: dict[int, Any] = {1: add_history_pv, 2: add_session_id_tag}

_PG_INIT_LOCK_KEY = 0x46554547  # "FUEG": serialises concurrent init_schema on PostgreSQL


async def _create_and_version(conn: AsyncConnection, now: datetime) -> int:
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_INIT_LOCK_KEY})
        await conn.run_sync(metadata.create_all)
    else:
        # SQLite runs DDL outside the transaction: checking for a table and creating it would
        # race with another process starting at the same moment ("table ... already exists")
        for table in metadata.sorted_tables:
            await conn.execute(CreateTable(table, if_not_exists=True))
            for index in sorted(table.indexes, key=lambda i: str(i.name)):
                await conn.execute(CreateIndex(index, if_not_exists=True))
    row = (
        await conn.execute(
            sa.select(schema_version_table.c.version).where(
                schema_version_table.c.component == SCHEMA_COMPONENT
            )
        )
    ).first()
    if row is None:
        await conn.execute(
            schema_version_table.insert().values(
                component=SCHEMA_COMPONENT, version=SCHEMA_VERSION, updated_at=now
            )
        )
        return SCHEMA_VERSION
    found = int(row[0])
    if found > SCHEMA_VERSION:
        msg = (
            f"database schema version {found} is newer than this fuseguard supports "
            f"({SCHEMA_VERSION}); upgrade fuseguard or point it at another database"
        )
        raise SchemaVersionError(msg)
    version = found
    while version < SCHEMA_VERSION:
        await conn.run_sync(_MIGRATIONS[version])
        version += 1
    if version != found:
        await conn.execute(
            schema_version_table.update()
            .where(schema_version_table.c.component == SCHEMA_COMPONENT)
            .values(version=version, updated_at=now)
        )
    return found


async def init_schema(engine: AsyncEngine) -> None:
    """Create missing tables and record/check the schema version.

    Raises :class:`SchemaVersionError` when the database is newer than this code.
    Safe to call from several processes at once (advisory lock on PostgreSQL, retry on SQLite).
    """
    now = RealClock().now()  # bookkeeping timestamp only
    attempts = 5
    for attempt in range(attempts):
        try:
            async with writing(engine) as conn:
                found = await _create_and_version(conn, now)
        except (sa.exc.OperationalError, sa.exc.IntegrityError, sa.exc.ProgrammingError) as err:
            if attempt == attempts - 1:
                raise
            log.warning("db_init_retry", reason=str(err).splitlines()[0], attempt=attempt + 1)
            await asyncio.sleep(0.05 * (attempt + 1))  # let the other starter finish
            continue
        log.info(
            "db_schema_ready", dialect=engine.dialect.name, version=SCHEMA_VERSION, found=found
        )
        return


async def open_store(url: str) -> AsyncEngine:
    """:func:`create_engine` + :func:`init_schema` (dispose the engine when done)."""
    engine = create_engine(url)
    try:
        await init_schema(engine)
    except BaseException:
        await engine.dispose()
        raise
    return engine
