"""The suite's own machinery in tests/conftest.py: xdist dispatch order and deferred stops."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .conftest import StopLater, _dispatch_rank


@dataclass
class _Item:
    nodeid: str
    marks: dict[str, Any] = field(default_factory=dict)

    def get_closest_marker(self, name: str) -> Any:
        return self.marks.get(name)


class _Config:
    def getini(self, name: str) -> str:
        assert name == "timeout"
        return "120"


def _rank(item: _Item) -> int:
    return _dispatch_rank(_Config(), item)  # type: ignore[arg-type]


def test_exclusive_tests_go_last_long_ones_first_grouped_keep_their_place() -> None:
    exclusive = _Item("a.py::t_excl", {"exclusive": pytest.mark.exclusive.mark})
    long_ = _Item("b.py::t_long", {"timeout": pytest.mark.timeout(400).mark})
    short = _Item("b.py::t_short", {"timeout": pytest.mark.timeout(60).mark})
    plain = _Item("c.py::t_plain")
    grouped = _Item("d.py::t[x]@d.py", {"exclusive": pytest.mark.exclusive.mark})
    at_in_param = _Item("e.py::t[a@b]")
    items = [exclusive, grouped, plain, short, long_, at_in_param]
    ordered = sorted(items, key=_rank)
    assert ordered == [long_, grouped, plain, short, at_in_param, exclusive]


def test_stop_later_waits_for_a_process_that_ends_and_kills_one_that_does_not() -> None:
    stops = StopLater()
    ends = subprocess.Popen([sys.executable, "-c", "pass"])
    hangs = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    stops.add(ends, grace_s=30)
    stops.add(hangs, grace_s=0.5)
    started = time.monotonic()
    stops.finish()
    assert ends.returncode == 0
    assert hangs.returncode == -9  # killed once its grace was over
    assert time.monotonic() - started < 30


def test_a_timed_out_test_ends_its_worker(request: pytest.FixtureRequest) -> None:
    """pytest-timeout's "thread" method: a stuck test's worker is ended and replaced. With the
    "signal" method the failure is raised inside the test, and an asyncio test's clean-up then
    waits for its executor threads: a thread that never returns hung the whole run (seen in
    scenario runs on a loaded machine; reproduced with a 60 s sleep in ``run_in_executor``:
    signal 75 s, thread 18 s)."""
    assert request.config.getini("timeout_method") == "thread"


def test_ports_for_later_servers_are_distinct_and_outside_the_ephemeral_range() -> None:
    import socket

    from tests import ports

    tcp = [ports.free_port() for _ in range(300)]
    assert len(set(tcp)) == len(tcp)  # never the same port twice within a worker's block
    low = ports._ephemeral_low()
    if low >= ports.BASE_PORT + (ports._WORKERS + 1) * ports.BLOCK:  # else: bind(0), see ports.py
        assert all(ports.BASE_PORT <= p < low for p in tcp)  # bind(0), clients never land here
        block = ports._block_index()
        assert all(p // ports.BLOCK == ports.BASE_PORT // ports.BLOCK + block for p in tcp)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # a UDP port is bindable
        s.bind(("127.0.0.1", ports.free_port(socket.SOCK_DGRAM)))


def test_a_worker_that_dies_at_its_timeout_leaves_its_stacks_and_the_run_ends(
    tmp_path: Path,
) -> None:
    """A test past its timeout ends its worker; the run then ends red (``--max-worker-restart=0``,
    the Makefile's) and prints the stacks the worker dumped just before (this conftest), naming
    the line the test was stuck on. Round 8 lost a crashed worker's stacks in a full run."""
    repo = Path(__file__).resolve().parents[1]
    (tmp_path / "conftest.py").write_text((repo / "tests" / "conftest.py").read_text())
    (tmp_path / "pytest.ini").write_text("[pytest]\ntimeout = 120\ntimeout_method = thread\n")
    (tmp_path / "test_stuck.py").write_text(
        "import asyncio\nimport time\nimport pytest\n\n\n@pytest.mark.timeout(4)\n"
        "def test_stuck() -> None:\n    time.sleep(60)  # stuck-here\n\n\n"
        "def test_fine() -> None:\n    pass\n\n\n"
        "async def _waits() -> None:\n    await asyncio.sleep(60)\n\n\n"
        "@pytest.mark.timeout(4)\n"
        "def test_stuck_async() -> None:\n    asyncio.run(_waits())\n"
    )
    started = time.monotonic()
    # only the plugins this run uses (xdist, pytest-timeout): the installed ones that load by
    # themselves (schemathesis, hypothesis, playwright, ...) cost each of the four processes
    # about half its start-up CPU (round 15: 3.0 -> 1.6 s for this test)
    plugins = ("-p", "xdist.plugin", "-p", "pytest_timeout")
    run = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", *plugins, "-n", "3", "--dist", "loadgroup"),
            *("--max-worker-restart=0", "-p", "no:cacheprovider", "-q", "test_stuck.py"),
        ],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "PYTHONPATH": str(repo), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
    )
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert "went down" in out and "its last stack dump" in out, out
    assert "test_stuck.py::test_stuck: stacks 2.5 s after start" in out, out
    assert re.search(r'test_stuck\.py", line 8 in test_stuck$', out, re.MULTILINE), out
    assert "pending asyncio task(s)" in out and "in _waits" in out, out
    assert "2 failed, 1 passed" in out, out
    assert time.monotonic() - started < 60
