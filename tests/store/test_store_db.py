import asyncio
import importlib
import pkgutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

import fuseguard
from fuseguard.store.db import (
    SCHEMA_COMPONENT,
    SCHEMA_VERSION,
    SchemaVersionError,
    create_engine,
    default_sqlite_url,
    init_schema,
    normalize_url,
    writing,
)
from fuseguard.store.schema import UtcDateTime, metadata, schema_version_table

#: Every table of fuseguard (store/schema.py), edge and cloud.
SCHEMA_TABLES = {
    "schema_version",
    "evse_tokens",
    "evse_targets",
    "cloud_edges",
    "cloud_evses",
    "web_users",
    "web_events",
    "history_samples",
    "history_minutes",
    "history_circuit_max",
    "history_exceedances",
    "charge_sessions",
}

# A table of the tests only, on its own metadata: init_schema must not create it.
probe_metadata = sa.MetaData()
probe = sa.Table(
    "test_probe",
    probe_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", UtcDateTime, nullable=False),
)


async def _create_probe(engine: AsyncEngine) -> None:
    async with writing(engine) as conn:
        await conn.run_sync(probe_metadata.create_all)


async def _schema_version(engine: AsyncEngine) -> int | None:
    """The recorded schema version, or None for an uninitialised database."""
    async with engine.connect() as conn:
        has = await conn.run_sync(lambda c: sa.inspect(c).has_table(schema_version_table.name))
        if not has:
            return None
        row = (
            await conn.execute(
                sa.select(schema_version_table.c.version).where(
                    schema_version_table.c.component == SCHEMA_COMPONENT
                )
            )
        ).first()
        return None if row is None else int(row[0])


async def _table_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))


def test_default_sqlite_url_is_a_file_in_the_data_dir(tmp_path: Path) -> None:
    url = default_sqlite_url(tmp_path / "data")
    assert url.startswith("sqlite+aiosqlite:///")
    assert url.endswith("/data/fuseguard.db")
    assert (tmp_path / "data").is_dir()


def test_normalize_url_picks_async_drivers() -> None:
    assert normalize_url("sqlite:///x.db") == "sqlite+aiosqlite:///x.db"
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgresql+psycopg://u:pw@h/db") == "postgresql+psycopg://u:pw@h/db"
    with pytest.raises(ValueError, match="unsupported database"):
        normalize_url("mysql://h/db")


async def test_sqlite_connections_get_wal_busy_timeout_and_normal_sync(tmp_path: Path) -> None:
    eng = create_engine(default_sqlite_url(tmp_path))
    try:
        async with eng.connect() as conn:
            assert (await conn.execute(sa.text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(sa.text("PRAGMA busy_timeout"))).scalar() == 5000
            assert (await conn.execute(sa.text("PRAGMA synchronous"))).scalar() == 1  # NORMAL
    finally:
        await eng.dispose()
    assert (tmp_path / "fuseguard.db").exists()


async def test_init_schema_records_version_and_is_idempotent(db_url: str) -> None:
    eng = create_engine(db_url)
    try:
        assert await _schema_version(eng) is None
        await init_schema(eng)
        await init_schema(eng)
        assert await _schema_version(eng) == SCHEMA_VERSION
        assert await _table_names(eng) == SCHEMA_TABLES  # exactly the schema, nothing else
    finally:
        await eng.dispose()


def test_the_schema_module_holds_every_table() -> None:
    """Importing every module of fuseguard adds no table and no second MetaData."""
    assert set(metadata.tables) == SCHEMA_TABLES
    prefix = fuseguard.__name__ + "."
    for info in pkgutil.walk_packages(fuseguard.__path__, prefix):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if isinstance(value, sa.MetaData):
                assert value is metadata, f"{info.name}.{name} is a second MetaData"
            if isinstance(value, sa.Table):
                assert value.metadata is metadata, f"{info.name}.{name} is not in store/schema.py"
    assert set(metadata.tables) == SCHEMA_TABLES


_FRESH_INIT = """
import asyncio, sys
import sqlalchemy as sa
from fuseguard.store.db import create_engine, init_schema

async def main(url):
    eng = create_engine(url)
    try:
        await init_schema(eng)
        async with eng.connect() as conn:
            names = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
    finally:
        await eng.dispose()
    loaded = sorted(m for m in sys.modules if m.startswith(("fuseguard.cloud", "fuseguard.api")))
    print("RESULT", " ".join(sorted(names)), "|", " ".join(loaded))

asyncio.run(main(sys.argv[1]))
"""


def test_init_schema_alone_creates_the_cloud_tables_too(db_url: str) -> None:
    """A fresh process that imports only the store gets the same tables as the cloud does."""
    out = subprocess.run(
        [sys.executable, "-c", _FRESH_INIT, db_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    result = next(line for line in out.splitlines() if line.startswith("RESULT "))
    tables, _, loaded = result.removeprefix("RESULT ").partition(" | ")
    assert set(tables.split()) == SCHEMA_TABLES
    assert loaded.strip() == ""  # neither the cloud nor the API was imported


async def test_newer_schema_is_refused_with_a_clear_error(engine: AsyncEngine) -> None:
    async with writing(engine) as conn:
        await conn.execute(schema_version_table.update().values(version=SCHEMA_VERSION + 5))
    with pytest.raises(SchemaVersionError, match=r"newer than this fuseguard supports"):
        await init_schema(engine)


async def test_utc_datetime_round_trips_aware_with_microseconds(engine: AsyncEngine) -> None:
    await _create_probe(engine)
    cet = timezone(timedelta(hours=1))
    at = datetime(2024, 5, 30, 10, 14, 47, 244362, tzinfo=cet)
    async with writing(engine) as conn:
        await conn.execute(probe.insert().values(id=1, at=at))
    async with engine.connect() as conn:
        got = (await conn.execute(sa.select(probe.c.at))).scalar_one()
    assert got == at
    assert got.tzinfo is UTC or got.utcoffset() == timedelta(0)
    assert got.isoformat() == "2024-05-30T09:14:47.244362+00:00"
    with pytest.raises(sa.exc.StatementError, match="timezone-aware"):
        async with writing(engine) as conn:
            await conn.execute(probe.insert().values(id=2, at=datetime(2024, 1, 1)))


async def test_many_concurrent_writers_do_not_lock(engine: AsyncEngine) -> None:
    await _create_probe(engine)
    at = datetime(2024, 1, 1, tzinfo=UTC)

    async def put(i: int) -> None:
        async with writing(engine) as conn:
            await conn.execute(probe.insert().values(id=i, at=at + timedelta(seconds=i)))

    await asyncio.gather(*(put(i) for i in range(60)))
    async with engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(probe))).scalar() == 60


async def test_two_engines_on_one_database_share_writes(db_url: str) -> None:
    """Two processes (here: two engines) on the same store: both init, both write."""
    a, b = create_engine(db_url), create_engine(db_url)
    try:
        await asyncio.gather(init_schema(a), init_schema(b))
        await _create_probe(a)
        at = datetime(2024, 1, 1, tzinfo=UTC)

        async def put(eng: AsyncEngine, i: int) -> None:
            async with writing(eng) as conn:
                await conn.execute(probe.insert().values(id=i, at=at))

        await asyncio.gather(*(put(a if i % 2 else b, i) for i in range(30)))
        async with b.connect() as conn:
            count = (await conn.execute(sa.select(sa.func.count()).select_from(probe))).scalar()
        assert count == 30
    finally:
        await a.dispose()
        await b.dispose()


async def test_open_store_initialises(db_url: str) -> None:
    from fuseguard.store import open_store

    eng = await open_store(db_url)
    try:
        assert await _schema_version(eng) == SCHEMA_VERSION
        assert await _table_names(eng) == SCHEMA_TABLES
    finally:
        await eng.dispose()


async def test_many_processes_starting_at_once_all_init_a_new_sqlite_store(
    tmp_path: Path,
) -> None:
    """Six engines (as six processes starting together) on one new SQLite file: each init
    succeeds (SQLite's DDL runs outside the transaction; tables are created IF NOT EXISTS)."""
    for round_ in range(3):
        url = f"sqlite+aiosqlite:///{tmp_path}/race{round_}.db"
        engines = [create_engine(url) for _ in range(6)]
        try:
            await asyncio.gather(*(init_schema(e) for e in engines))
            assert await _table_names(engines[0]) == SCHEMA_TABLES
            assert await _schema_version(engines[-1]) == SCHEMA_VERSION
        finally:
            for e in engines:
                await e.dispose()
