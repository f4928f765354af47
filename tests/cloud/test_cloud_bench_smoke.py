"""Smoke test of the cloud benchmark harness (``bench/cloud.py``) at a tiny size.

The real harness: its own Mosquitto, a throwaway PostgreSQL database, two replica processes,
one process of light edge agents (``bench/cloud_agents.py``). No timing assertions: it proves
that every POST was acknowledged by its edge, that the GET on the other replica saw each new
target, and that the row has the documented shape.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"

pytestmark = [pytest.mark.mqtt, pytest.mark.postgres]


def _load_bench() -> ModuleType:
    name = "fuseguard_bench_cloud"
    if name in sys.modules:
        return sys.modules[name]
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))  # bench/cloud.py imports its sibling cloud_agents
    spec = importlib.util.spec_from_file_location(name, BENCH / "cloud.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


async def test_cloud_bench_tiny(make_pg_database: object) -> None:  # PostgreSQL reachable
    bench = _load_bench()
    opts = bench.Options(
        database="postgresql", replicas=2, edges=20, requests=40, concurrency=[4],
        agent_procs=1, verify=True, ack_timeout_s=5.0,
    )  # fmt: skip
    (row,) = await bench.run(opts)
    assert row["states"] == {"received": 40}
    assert row["consistent_gets"] == 40
    assert row["inconsistent_gets"] == 0
    assert row["lost_acks"] == 0
    assert row["edges_acks_sent"] == 40
    assert row["edges_connected"] == 20
    assert row["edges_reconnects"] == 0
    assert row["cloud_commands"]["timed_out"] == 0
    assert row["cloud_commands"]["acked"] == 40
    assert set(row["cpu_ms_per_request"]) >= {"replicas", "edge_agents", "broker", "total"}
    assert "| postgresql | 2 | 20 | 4 | 40 |" in bench._markdown([row])


def test_a_replica_counts_as_up_only_when_its_own_process_holds_the_port() -> None:
    """CI once measured replica 0 twice: replica 1's port was taken, it exited, and the 200
    on its URL came from another process. ``_listens`` tells the holder apart; ports never
    repeat within a run."""
    import socket
    import subprocess

    bench = _load_bench()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert bench._listens(os.getpid(), port)
        assert not bench._listens(sleeper.pid, port)
        server.close()
        assert not bench._listens(os.getpid(), port)
    finally:
        sleeper.kill()
        sleeper.wait()
    ports = [bench._free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
