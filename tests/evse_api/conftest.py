"""Fixtures of the EVSE API tests (helpers live in ``evse_edge_helpers``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from evse_edge_helpers import Edge, start_edge, stop_edge

from fuseguard.model.clock import VirtualClock
from fuseguard.store.db import default_sqlite_url


@pytest.fixture
async def edge(tmp_path: Path) -> AsyncIterator[Edge]:
    e = await start_edge(default_sqlite_url(tmp_path), VirtualClock())
    try:
        yield e
    finally:
        await stop_edge(e)
