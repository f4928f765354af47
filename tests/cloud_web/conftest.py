"""Fixtures of the cloud web tests: the machine's Mosquitto, a topic prefix, a SQLite file.

The cloud tests' helpers (``tests/cloud/cloudkit.py``: virtual edges, polling) are imported from
there; the broker is the machine's Mosquitto on 127.0.0.1:1883 (the tests fail if it is absent).
"""

from __future__ import annotations

import socket
import sys
import uuid
from pathlib import Path

import pytest

_CLOUD_TESTS = Path(__file__).resolve().parent.parent / "cloud"
if str(_CLOUD_TESTS) not in sys.path:
    sys.path.insert(0, str(_CLOUD_TESTS))


@pytest.fixture(scope="session")
def mqtt_url() -> str:
    """The machine's Mosquitto."""
    with socket.socket() as s:
        s.settimeout(0.5)
        if s.connect_ex(("127.0.0.1", 1883)) != 0:
            pytest.fail("no MQTT broker on 127.0.0.1:1883 (install/start mosquitto)")
    return "mqtt://127.0.0.1:1883"


@pytest.fixture
def prefix() -> str:
    """A topic prefix of this test only."""
    return f"fgweb-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file."""
    return f"sqlite+aiosqlite:///{tmp_path / 'cloud.db'}"
