"""History fixtures: a store on SQLite (file) and on the machine's PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from fuseguard.store.db import open_store

# the browser tests share the dashboard's demo and Chromium fixtures
from ..web.conftest import browser, demo, playwright_session  # noqa: F401


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'history.db'}"
    else:
        make: Callable[[str], str] = request.getfixturevalue("make_pg_database")
        url = make("fg_history")
    eng = await open_store(url)
    try:
        yield eng
    finally:
        await eng.dispose()
