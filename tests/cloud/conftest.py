"""Cloud fixtures: a real MQTT broker, unique topic prefixes, real edges with virtual EVSEs.

Broker: ``tests/conftest.py::mqtt_url``, a ``mosquitto`` of this test session alone on a free
port (the tests fail saying so when there is none; nothing is installed from here).
PostgreSQL: ``FUSEGUARD_TEST_PG`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``), a
throwaway database per run.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest


@pytest.fixture(scope="session")
def pg_url(make_pg_database: Callable[[str], str]) -> str:
    """A fresh PostgreSQL database for this run (tests/conftest.py)."""
    return make_pg_database("fuseguard_cloud_test")


@pytest.fixture
def prefix() -> str:
    """A topic prefix of this test only."""
    return f"fgtest-{uuid.uuid4().hex[:10]}"
