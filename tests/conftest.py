"""Fixtures shared by several test areas."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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


@pytest.fixture(autouse=True, scope="session")
def _uncached_loggers() -> Iterator[None]:
    """No test caches structlog loggers: ``fuseguard.logging`` asks for caching (right for a
    process that configures logging once), but a cached module logger keeps that configuration
    for the rest of the test session, so a later ``capture_logs`` or the soak's probe would see
    none of its events (the soak failed after tests/scenario's in-process ``simulate``)."""
    real = structlog.configure

    def configure(*args: Any, **kwargs: Any) -> None:
        kwargs["cache_logger_on_first_use"] = False
        real(*args, **kwargs)

    structlog.configure = configure  # type: ignore[assignment]
    yield
    structlog.configure = real


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
    """URL of a running MQTT broker: the machine's on 127.0.0.1:1883 when it answers, otherwise a
    private ``mosquitto`` started on a free port (the tests fail when neither is possible)."""
    if _port_open(1883):
        yield "mqtt://127.0.0.1:1883"
        return
    binary = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if binary is None:
        pytest.fail(
            "no MQTT broker on 127.0.0.1:1883 and no `mosquitto` binary: "
            "install Mosquitto (apt-get install mosquitto) to run the MQTT tests"
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
