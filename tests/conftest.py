"""Fixtures shared by several test areas."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
import structlog

#: Admin connection of the machine's PostgreSQL (CI and this machine have one on :5432).
PG_ADMIN = os.environ.get("FUSEGUARD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def make_pg_database() -> Iterator[Callable[[str], str]]:
    """Create throwaway PostgreSQL databases (``<prefix>_<random>``), dropped at the end.

    Skips the tests that need one only when no server answers, saying so.
    """
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as err:
        pytest.skip(f"no PostgreSQL reachable at {PG_ADMIN}: {str(err).strip()}")
    created: list[str] = []

    def make(prefix: str) -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        admin.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"

    with admin:
        try:
            yield make
        finally:
            for name in created:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(autouse=True)
def _isolated_logging() -> Iterator[None]:
    """A command under test may configure logging for the process (``fuseguard run``); undo it,
    so later tests see structlog's defaults (``capture_logs`` works on uncached loggers only)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)
