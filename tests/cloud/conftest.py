"""Cloud fixtures: a real MQTT broker, unique topic prefixes, real edges with virtual EVSEs.

Broker: the machine's Mosquitto on 127.0.0.1:1883 when it answers; otherwise ``mosquitto`` is
started on a free port with a generated config; otherwise the tests fail saying so (nothing is
installed from here). PostgreSQL: ``FUSEGUARD_TEST_PG`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``), a throwaway database per run.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def mqtt_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a running MQTT broker (see module docstring)."""
    if _port_open(1883):
        yield "mqtt://127.0.0.1:1883"
        return
    binary = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if binary is None:
        pytest.fail(
            "no MQTT broker on 127.0.0.1:1883 and no `mosquitto` binary: "
            "install Mosquitto (apt-get install mosquitto) to run the cloud tests"
        )
    port = _free_port()
    conf = tmp_path_factory.mktemp("mosquitto") / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while not _port_open(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"mosquitto did not start on port {port}")
        time.sleep(0.05)
    try:
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=5)


@pytest.fixture(scope="session")
def pg_url(make_pg_database: Callable[[str], str]) -> str:
    """A fresh PostgreSQL database for this run (tests/conftest.py)."""
    return make_pg_database("fuseguard_cloud_test")


@pytest.fixture
def prefix() -> str:
    """A topic prefix of this test only."""
    return f"fgtest-{uuid.uuid4().hex[:10]}"
