"""Fixtures shared by several test areas."""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import structlog

from tests.ports import free_port

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


#: An MQTT broker to use instead of a private one (``mqtt://host:port``); unset: a private one.
MQTT_OVERRIDE = os.environ.get("FUSEGUARD_TEST_MQTT", "")


def _mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    if found is None and Path("/usr/sbin/mosquitto").exists():
        found = "/usr/sbin/mosquitto"
    return found


def _start_mosquitto(binary: str, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A private ``mosquitto`` on a free loopback port (tried again when the port was taken
    between choosing and binding it)."""
    problem = ""
    for attempt in range(5):
        port = free_port()
        conf = workdir / f"mosquitto-{attempt}.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        log = (workdir / f"mosquitto-{attempt}.log").open("wb")
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 10
        while proc.poll() is None and not _port_open(port) and time.monotonic() < deadline:
            time.sleep(0.02)
        if proc.poll() is None and _port_open(port):
            return proc, port
        proc.kill()
        proc.wait(timeout=5)
        problem = (workdir / f"mosquitto-{attempt}.log").read_text(errors="replace")[-500:]
    pytest.fail(f"mosquitto did not start on a free port (5 tries); its last words: {problem}")


@pytest.fixture(scope="session")
def mqtt_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of an MQTT broker of this test session alone: a private ``mosquitto`` on a free port.

    Not the machine's broker on 127.0.0.1:1883: that one is shared with every other test run on
    the machine (other work trees, CI, each pytest-xdist worker), and the tests' edges connect
    with fixed client ids (``fuseguard-it1``, the demo's), so two runs took each other's MQTT
    sessions over: reconnect loops, lost messages, slow teardowns. ``FUSEGUARD_TEST_MQTT`` names
    another broker; without a ``mosquitto`` binary the machine's :1883 is used when it answers,
    otherwise the tests fail saying so.
    """
    if MQTT_OVERRIDE:
        yield MQTT_OVERRIDE
        return
    binary = _mosquitto_binary()
    if binary is None:
        if _port_open(1883):
            yield "mqtt://127.0.0.1:1883"
            return
        pytest.fail(
            "no `mosquitto` binary and no MQTT broker on 127.0.0.1:1883: "
            "install Mosquitto (apt-get install mosquitto) to run the MQTT tests"
        )
    proc, port = _start_mosquitto(binary, tmp_path_factory.mktemp("mosquitto"))
    try:
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


class StopLater:
    """Processes asked to stop (a signal sent) that the session waits for at its end.

    A module-scoped subprocess fixture (the browser tests' ``fuseguard demo``) sends its stop
    signal at teardown and hands the process here instead of waiting for it: the demo's
    graceful stop took 14-20 s of wall time on the loaded 2-core machine (interpreter teardown
    and the last history flush, starved of CPU), time in which the worker ran nothing. The
    stop itself is unchanged; the wait overlaps with the next tests. At the session's end
    each process gets what is left of its ``grace_s``, then is killed.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[subprocess.Popen[bytes], float]] = []

    def add(self, proc: subprocess.Popen[bytes], grace_s: float) -> None:
        self._pending.append((proc, time.monotonic() + grace_s))

    def finish(self) -> None:
        for proc, deadline in self._pending:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._pending.clear()


@pytest.fixture(scope="session")
def stop_later() -> Iterator[StopLater]:
    """See :class:`StopLater`."""
    stops = StopLater()
    try:
        yield stops
    finally:
        stops.finish()


# --- pytest-xdist: `make test` runs the suite in several workers (`-n 4 --dist loadgroup`) ------

#: Fixture scopes whose value a module's tests share: such a module runs in one worker, so its
#: expensive fixture (a demo subprocess, a browser, a served app) starts once, and module-level
#: state a later test checks (the schemathesis tallies) is the state its earlier tests left.
_SHARED_SCOPES = {"module", "class", "package"}


def _set_nodeid(item: pytest.Item, nodeid: str) -> None:
    """Rename a collected test (pytest >= 9.2 keeps the id in ``_id``, older ones in
    ``_nodeid``; pytest-xdist 3.8 still writes ``_nodeid``, so its own ``xdist_group`` suffix is
    lost on pytest 9.2: this conftest adds the suffix itself)."""
    if hasattr(item, "_id"):
        from _pytest.nodeid import coerce_node_id

        item._id = coerce_node_id(nodeid)
    else:
        item._nodeid = nodeid


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``--dist loadgroup``: every test of a module that uses a module-, class- or
    package-scoped fixture goes to one worker (``<nodeid>@<module>``, xdist's group syntax), and
    so does every test marked ``xdist_group(name)`` (``<nodeid>@<name>``).

    Also every test gets a node id of its own: schemathesis names all its generated tests of one
    function alike (``test_local_api_conforms`` once per API operation), and xdist's scheduler
    keys tests by node id, so it ran only the first of them (the tallies counted 54 of 240 cases).
    """
    # the controller (``--dist loadgroup`` is in the default options, so it counts only with
    # workers: a plain run keeps its order and node ids)
    workers = config.getoption("numprocesses", None) or config.getoption("tx", None)
    loadgroup = config.getoption("dist", "no") == "loadgroup" and bool(workers)
    if not (loadgroup or getattr(config.option, "loadgroup", False)):  # or an xdist worker
        return
    seen: set[str] = set()
    for item in items:
        if item.nodeid in seen:
            label = getattr(item, "operation_label", None) or f"#{len(seen)}"
            _set_nodeid(item, f"{item.nodeid}[{label}]")
        seen.add(item.nodeid)
    shared: set[str] = set()
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        defs = info.name2fixturedefs.values() if info is not None else ()
        if any(d and d[-1].scope in _SHARED_SCOPES for d in defs):
            shared.add(item.nodeid.split("::", 1)[0])
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        mark = item.get_closest_marker("xdist_group")
        group = (mark.args[0] if mark.args else mark.kwargs["name"]) if mark else None
        if group is not None or module in shared:
            _set_nodeid(item, f"{item.nodeid}@{group or module}")
    items[:] = sorted(items, key=lambda item: _dispatch_rank(config, item))


#: Single (ungrouped) tests that each take many seconds of CPU, by node id prefix: about how
#: many (round 14, per-test CPU at -n 0 on the 2-core machine, rounded). They are handed out
#: first among the single tests, the heaviest first, so that none of them starts near the end
#: and becomes the run's tail (4 workers share 2 cores: a 20 s test started last ends ~40 s
#: after the rest).
_LONG_TESTS_S = {
    "tests/faults/test_soak.py::test_hours_of_random_faults": 11,
    "tests/scenario/test_planner_scenario.py": 21,
    "tests/allocation/test_paths.py::test_paths_agree_on_any_input": 12,
    "tests/allocation/test_paths.py::test_paths_agree_on_random_measured_sites": 5,
    "tests/faults/test_kill9_edge.py": 11,
    "tests/scenario/test_scenario_jump.py::test_jumps_change_no_report_number_and_no_tick": 9,
    "tests/scenario/test_scenario_fairness.py": 9,
    "tests/scenario/test_scenario_meter_library.py": 9,
    "tests/ocpp_sim/test_scenario_ocpp.py::test_": 8,
    "tests/bench/test_ocpp_bench_smoke.py::test_ocpp_bench_quick": 8,
    "tests/bench/test_edge_bench_smoke.py": 8,
}


def _dispatch_rank(config: pytest.Config, item: pytest.Item) -> tuple[int, float]:
    """Where xdist hands out a test that is in no group (grouped ones keep their order).

    xdist's loadgroup queue has the groups first (most tests first), then the single tests in
    collection order. An ``exclusive`` test goes last: while it waits for the tests running on
    the other workers to end, those workers may start nothing (the turnstile), so in the middle
    of the run it idled three workers for as long as the longest test beside it (the 7.2 h
    soak); at the end there is nothing left for them to do. A long test (:data:`_LONG_TESTS_S`,
    or one that declares a timeout above the configured one: the bench smokes) goes first
    among the single tests, the longest first, so that it does not start last and become the
    run's tail.
    """
    if "@" in item.nodeid.rsplit("]", 1)[-1]:
        return 1, 0.0
    if item.get_closest_marker("exclusive") is not None:
        return 2, 0.0
    long_s = max((s for k, s in _LONG_TESTS_S.items() if item.nodeid.startswith(k)), default=0)
    mark = item.get_closest_marker("timeout")
    default_s = float(config.getini("timeout") or 0)
    if long_s or (mark is not None and mark.args and float(mark.args[0]) > default_s):
        return 0, -float(long_s)
    return 1, 0.0


class _WorkerLock:
    """A readers-writer lock across the xdist workers of one run (``flock`` on two files in the
    run's shared temp dir): every test holds it shared, an ``exclusive`` test holds it alone.

    A writer first takes the turnstile, so no new reader gets in while it waits for the running
    tests to end (it is not starved by the other workers' stream of tests).
    """

    def __init__(self, directory: Path) -> None:
        import fcntl

        self._fcntl = fcntl
        directory.mkdir(parents=True, exist_ok=True)
        self._turnstile = (directory / "turnstile.lock").open("a+")
        self._main = (directory / "main.lock").open("a+")

    def acquire(self, exclusive: bool) -> None:
        f = self._fcntl
        f.flock(self._turnstile, f.LOCK_EX)
        try:
            f.flock(self._main, f.LOCK_EX if exclusive else f.LOCK_SH)
        finally:
            f.flock(self._turnstile, f.LOCK_UN)

    def release(self) -> None:
        self._fcntl.flock(self._main, self._fcntl.LOCK_UN)


_worker_lock: _WorkerLock | None = None


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Under xdist, an ``exclusive`` test runs alone (setup, call and teardown); the wait for the
    lock is outside the test's timeout (pytest-timeout's wrapper is inside this one)."""
    global _worker_lock
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:
        yield
        return
    run_dir = item.config._tmp_path_factory.getbasetemp().parent  # type: ignore[attr-defined]
    if _worker_lock is None:
        _worker_lock = _WorkerLock(run_dir / "xdist-locks")
    _worker_lock.acquire(item.get_closest_marker("exclusive") is not None)
    try:
        with _stack_dump_before_timeout(item, run_dir / DUMP_DIR / f"{worker}.txt"):
            yield
    finally:
        _worker_lock.release()


#: Where a worker's stacks go when one of its tests nears its timeout (in the run's temp dir).
DUMP_DIR = "xdist-dumps"
#: How long before pytest-timeout's own timer the stacks are dumped.
DUMP_LEAD_S = 1.5
_dump_file: Any = None


def _test_timeout_s(item: pytest.Item) -> float:
    mark = item.get_closest_marker("timeout")
    if mark is not None and mark.args:
        return float(mark.args[0])
    return float(item.config.getini("timeout") or 0)


@contextlib.contextmanager
def _stack_dump_before_timeout(item: pytest.Item, path: Path) -> Iterator[None]:
    """Dump every thread's stack to ``path`` shortly before the test's timeout.

    A test past its timeout ends its worker (pytest-timeout's thread method: ``os._exit``), and
    the stacks pytest-timeout prints go to the worker's stdout, which xdist does not keep: the
    controller only says the worker crashed while running the test. faulthandler's own thread
    writes the stacks to a file first, even when the test holds the GIL in C code; the
    controller prints that file when it sees the worker go down (``pytest_testnodedown``)."""
    global _dump_file
    timeout_s = _test_timeout_s(item)
    if timeout_s <= 2 * DUMP_LEAD_S:
        yield
        return
    if _dump_file is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _dump_file = path.open("w+")
    _dump_file.seek(0)
    _dump_file.truncate()
    _dump_file.write(f"{item.nodeid}: stacks {timeout_s - DUMP_LEAD_S:.1f} s after start\n")
    _dump_file.flush()
    faulthandler.dump_traceback_later(timeout_s - DUMP_LEAD_S, file=_dump_file)
    tasks = threading.Timer(timeout_s - DUMP_LEAD_S / 2, _dump_asyncio_tasks, (_dump_file,))
    tasks.daemon = True
    tasks.start()
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        tasks.cancel()


def _dump_asyncio_tasks(file: Any) -> None:
    """The pending asyncio tasks' stacks (an asyncio test's thread stack only shows the event
    loop waiting). Read from another thread while the loop may run: a diagnostic, best effort."""
    import asyncio.tasks

    try:
        pending = [t for t in list(asyncio.tasks._all_tasks) if not t.done()]  # type: ignore[attr-defined]
        file.write(f"\n{len(pending)} pending asyncio task(s):\n")
        for task in pending[:50]:
            file.write(f"-- {task!r}\n")
            task.print_stack(limit=20, file=file)
        file.flush()
    except Exception as exc:  # never let the diagnostic raise in its thread
        file.write(f"(asyncio tasks not dumped: {exc!r})\n")
        file.flush()


def pytest_testnodedown(node: Any, error: object) -> None:
    """On the controller: when a worker dies, print the stacks it dumped (see above)."""
    if not error:
        return
    config = node.config
    path = config._tmp_path_factory.getbasetemp() / DUMP_DIR / f"{node.gateway.id}.txt"
    try:
        text = path.read_text(errors="replace")[-20_000:]
    except OSError:
        text = "(no stack dump: the test did not reach its timeout)"
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_sep("!", f"{node.gateway.id} went down ({error}); its last stack dump")
        for line in text.splitlines():
            reporter.write_line(line)
