"""Store fixtures: every ``db_url`` test runs on SQLite and on PostgreSQL (when reachable).

PostgreSQL: one throwaway database ``fuseguard_test_<random>`` per test run, dropped at the end;
tables are dropped before each test. Admin URL from ``FUSEGUARD_TEST_PG`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``). PG tests skip only when no server answers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from fuseguard.store.db import create_engine, default_sqlite_url, init_schema


@pytest.fixture(scope="session")
def pg_database_url(make_pg_database: Callable[[str], str]) -> str:
    """A fresh PostgreSQL database for this run (tests/conftest.py)."""
    return make_pg_database("fuseguard_test")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of an empty database on each backend."""
    if request.param == "sqlite":
        return default_sqlite_url(tmp_path)
    url: str = request.getfixturevalue("pg_database_url")
    _drop_all_tables(url)
    return url


def _drop_all_tables(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on an initialised schema."""
    eng = create_engine(db_url)
    await init_schema(eng)
    try:
        yield eng
    finally:
        await eng.dispose()
