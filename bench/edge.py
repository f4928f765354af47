"""Edge benchmark (issue 6): reaction time, controller-added latency and footprint of the edge.

Run: ``.venv/bin/python bench/edge.py [--quick] [--chargers 10,100,300] [--reference SRC]``
(``--profile DIR``: the edge under cProfile instead). Writes ``bench/results/edge.json`` (rows
``{"chargers", "reaction_p50_ms", "reaction_p99_ms", "controller_p50_ms", "rss_mb", "cpu_pct"}``)
and the markdown fragment ``bench/results/edge.md``.

Set-up per size (10 and 100 chargers):

* this process runs the simulators on loopback: one :class:`~fuseguard.sim.site.SiteModel`
  (ticking every 1 s), one virtual CEMM (REST, served on its own thread: :class:`CemmThread`)
  and N virtual Bender controllers, each on its own REST + Modbus port, each with a 3-phase car
  plugged in;
* the edge runs as a separate ``fuseguard run --config <generated toml>`` subprocess (password
  through ``FUSEGUARD_API__LOCAL__PASSWORD``, data dir in a temp dir, API ports 0), so its RSS and
  CPU are the edge alone.

A measured step raises the building base load so that every charger's setpoint must fall by
1 A (a staircase ``TOP_SETPOINT_A`` -> ``BOTTOM_SETPOINT_A``); after the bottom one step lowers the
base load back to the top. Decreases are what keeps a fuse safe and the edge writes them at once;
increases are held for ``raise_after_s`` (5 s, hysteresis) and ramped by design, so the reset
steps are reported separately and not counted as reaction time. The cars draw a constant
``CAR_A`` (at or below every setpoint), so the only thing that moves the meter is the step itself
and the cars' own response (2 s by IEC 61851) cannot blur the measurement.

Timestamps are taken in this (the simulator) process with ``time.perf_counter``:

* ``step``: the site tick that first publishes the new power in the CEMM telegram;
* ``meter answer``: the CEMM's first ``/realtime`` answer after that tick (the edge's next poll);
* ``write``: each virtual charger's Modbus write of register 1000 with the new setpoint
  (``BenderConnector.set_hems_limit`` wrapped).

``reaction`` = last charger written - step (includes waiting for the edge's next 1 s poll);
``controller`` = last charger written - meter answer (the edge's own time from meter sample to
writes done: the concurrent charger reads of that poll, the allocation and the writes).
CPU is the edge's utime + stime over the whole stepping window (>= 30 s in a full run), i.e.
under load (every charger's setpoint changes every few seconds), not idle.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import os
import platform
import random
import secrets
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fuseguard.logging import configure_logging
from fuseguard.model.clock import RealClock
from fuseguard.model.phases import Phases, Rotation
from fuseguard.sim.bender import BenderConnector, BenderController, BenderDeviceConfig, Firmware
from fuseguard.sim.bender_serve import BenderServerHandle, serve_bender
from fuseguard.sim.cemm_model import CemmModel
from fuseguard.sim.cemm_server import CemmServerHandle, serve_cemm
from fuseguard.sim.site import BaseLoad, SiteModel
from fuseguard.sim.vehicle import SimVehicle

RESULTS = Path(__file__).parent / "results"
ROW_KEYS = (
    "chargers",
    "reaction_p50_ms",
    "reaction_p99_ms",
    "controller_p50_ms",
    "rss_mb",
    "cpu_pct",
)
TARGET_REACTION_P99_MS = 1000.0  # one meter period
TARGET_CONTROLLER_P50_MS = 30.0  # issue 18 (was 50)
TARGET_RSS_MB = 120.0
TARGET_CPU_PCT = 3.0  # issue 18 (was 5)
FOOTPRINT_CHARGERS = 100

TOP_SETPOINT_A = 16  # every charger at the lowest base load (= charger max)
BOTTOM_SETPOINT_A = 7  # the last step of the staircase
CAR_A = 6.0  # what each car draws (constant, below every setpoint of the staircase)
CHARGER_MAX_A = 16
BASE_LOW_A = 2.0  # building load per phase at the low level
STEP_TIMEOUT_S = 15.0  # an increase waits raise_after_s (5 s) first
SETTLE_TIMEOUT_S = 90.0
#: how long a virtual Bender's REST server keeps an idle connection (``--bender-keepalive-s``;
#: the virtual device's default, the real one's is not documented)
BENDER_KEEPALIVE_S = 5


def main_fuse_a(chargers: int) -> float:
    """The main fuse: every charger gets ``TOP_SETPOINT_A`` at the lowest base load."""
    return TOP_SETPOINT_A * chargers + 3 * BASE_LOW_A + 0.5


def base_load_a(chargers: int, setpoint_a: int) -> float:
    """Balanced base load per phase (A) that leaves every charger exactly ``setpoint_a``.

    The CEMM reports total power only; the edge's default ``worst`` phase assumption puts all
    non-EV power on every phase, i.e. ``3 * base`` A per phase for a balanced base load.
    """
    return BASE_LOW_A + (TOP_SETPOINT_A - setpoint_a) * chargers / 3.0


# --- the simulated site -------------------------------------------------------------------------


@dataclass
class StepLoad:
    """A balanced building load that the benchmark switches between two levels."""

    level_a: float

    def __call__(self, t_s: float) -> Phases:
        return Phases.uniform(self.level_a)


@dataclass
class Probe:
    """Timestamps (``time.perf_counter``) recorded inside the simulators."""

    armed: bool = False
    last_tick: float = 0.0
    ticks: int = 0
    step_ticks: list[float] = field(default_factory=list)
    meter_answers: list[float] = field(default_factory=list)
    charger_reads: list[float] = field(default_factory=list)
    writes: list[list[tuple[float, float]]] = field(default_factory=list)

    def on_tick(self, t_s: float) -> None:
        """``SiteModel.on_tick`` listener registered after the CEMM's: the telegram is out."""
        now = time.perf_counter()
        self.last_tick = now
        self.ticks += 1
        if self.armed:
            self.armed = False
            self.step_ticks.append(now)


class CemmThread:
    """The virtual CEMM served on its own event loop in a thread.

    A real meter answers on its own; served on the loop of N virtual Benders it would wait
    behind their Modbus answers whenever the edge reads or writes many chargers at once (at 300
    chargers the edge's meter reads timed out), which measures the simulator, not the edge. The
    model itself stays on the main loop (the site tick publishes its telegram; the thread only
    reads the last one, an attribute swap under the GIL).
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="cemm", daemon=True)
        self.handle: CemmServerHandle | None = None

    async def start(self, model: CemmModel) -> CemmServerHandle:
        """Serve ``model`` on a free loopback port; returns the handle."""
        self.thread.start()
        serving = serve_cemm(model, "127.0.0.1", 0, discovery_port=None)
        self.handle = await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(serving, self.loop)
        )
        return self.handle

    @property
    def port(self) -> int:
        """The bound HTTP port."""
        assert self.handle is not None
        return self.handle.port

    async def close(self) -> None:
        """Stop the server, the loop and the thread."""
        if self.handle is not None:
            closing = asyncio.run_coroutine_threadsafe(self.handle.close(), self.loop)
            await asyncio.wrap_future(closing)
        self.loop.call_soon_threadsafe(self.loop.stop)
        await asyncio.to_thread(self.thread.join, 10.0)
        self.loop.close()


@dataclass
class SimSite:
    """Everything the benchmark runs in its own process."""

    site: SiteModel
    load: StepLoad
    probe: Probe
    cemm: CemmThread
    benders: list[BenderServerHandle]
    connectors: list[BenderConnector]
    site_task: asyncio.Task[None]
    ports: list[tuple[int, int]] = field(default_factory=list)  # (REST, Modbus) per charger
    regular: bool = True  # the meter keeps its period (False: re-phased at every step)

    async def step(self, clock: RealClock, level_a: float, gap_s: float) -> None:
        """Change the base load to ``level_a`` ``gap_s`` (1-2 s) after the last telegram.

        Regular meter (default): the CEMM publishes every period on its own clock, as a real
        meter does; the load changes at a random instant and the next regular telegram carries
        it. The edge's poll drifts against the meter's clock over a run (its loop is late by a
        few ms per poll), so a plain-polling edge sees poll waits spread over its cycle.
        ``regular=False`` (``--meter irregular``): the meter's tick loop is restarted so the
        step's telegram itself comes at a random phase, ``gap_s`` after the previous one (a
        meter whose phase cannot be predicted; the edge falls back to plain polling).
        """
        if self.regular:
            await clock.sleep(self.probe.last_tick + gap_s - time.perf_counter())
            self.load.level_a = level_a
            self.probe.armed = True
            return
        self.site_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.site_task
        first_at = self.probe.last_tick + gap_s
        await clock.sleep(first_at - time.perf_counter())
        self.load.level_a = level_a
        self.probe.armed = True
        self.site_task = asyncio.create_task(tick_regularly(self.site, first_at), name="site")

    async def close(self) -> None:
        """Stop the site and every server."""
        self.site_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.site_task
        await asyncio.gather(*(b.close() for b in self.benders), return_exceptions=True)
        await self.cemm.close()


def _next_at(phase_s: float, period_s: float = 1.0) -> float:
    """The next ``time.perf_counter`` instant at ``phase_s`` (mod the period)."""
    now = time.perf_counter()
    return now + (phase_s - now) % period_s


async def tick_regularly(site: SiteModel, first_at: float) -> None:
    """Tick ``site`` at ``first_at`` and every period after it (``time.perf_counter``): a meter
    on its own clock, late only by this process's scheduling, never drifting."""
    at = first_at
    while True:
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        site.tick()
        at += site.period_s


def _record_writes(connector: BenderConnector, log: list[tuple[float, float]]) -> None:
    original = connector.set_hems_limit

    def recorded(current_a: float) -> None:
        log.append((time.perf_counter(), current_a))
        original(current_a)

    connector.set_hems_limit = recorded  # type: ignore[method-assign]


def _record_reads(connector: BenderConnector, log: list[float]) -> None:
    original = connector.modbus_registers

    def recorded() -> dict[int, int]:
        log.append(time.perf_counter())
        return original()

    connector.modbus_registers = recorded  # type: ignore[method-assign]


def _record_meter_answers(cemm: CemmModel, log: list[float]) -> None:
    original = cemm.realtime_body

    def recorded(alias: str) -> dict[str, Any]:
        body = original(alias)
        log.append(time.perf_counter())
        return body

    cemm.realtime_body = recorded  # type: ignore[method-assign]


def _virtual_bender(
    i: int, clock: RealClock, site: SiteModel, keepalive_s: int
) -> tuple[BenderController, BenderConnector]:
    """Virtual Bender number ``i`` (0-based) with its car plugged in, on ``site``; its REST
    server keeps idle connections ``keepalive_s``."""
    ctrl = BenderController(
        clock=clock,
        config=BenderDeviceConfig(
            firmware=Firmware.V5_33,
            max_current_a=CHARGER_MAX_A,
            free_charging=True,
            cp_id=f"+49*839*{i + 1:011d}",
            rest_keepalive_s=keepalive_s,
        ),
        rotations=(Rotation.L1L2L3,),
    )
    connector = ctrl.connector(1)
    site.add(connector)
    connector.plug_in(
        SimVehicle(
            phases=3, max_current_a=CAR_A, battery_wh=1_000_000.0, soc=0.3, name=f"car{i + 1}"
        )
    )
    return ctrl, connector


async def start_site(
    chargers: int, clock: RealClock, bender_keepalive_s: int = BENDER_KEEPALIVE_S
) -> SimSite:
    """One site model, one virtual CEMM and ``chargers`` virtual Benders, each with a car."""
    site = SiteModel(clock)
    load = StepLoad(base_load_a(chargers, TOP_SETPOINT_A))
    site.add(BaseLoad(load))
    phase_s = random.random()  # the meter's phase: any
    cemm_model = CemmModel.for_site(site)
    probe = Probe()
    site.on_tick(probe.on_tick)
    _record_meter_answers(cemm_model, probe.meter_answers)
    cemm = CemmThread()
    await cemm.start(cemm_model)
    benders: list[BenderServerHandle] = []
    connectors: list[BenderConnector] = []
    ports: list[tuple[int, int]] = []
    probe.writes.extend([] for _ in range(chargers))
    try:
        for i in range(chargers):
            ctrl, connector = _virtual_bender(i, clock, site, bender_keepalive_s)
            _record_writes(connector, probe.writes[i])
            _record_reads(connector, probe.charger_reads)
            connectors.append(connector)
            handle = await serve_bender(ctrl, "127.0.0.1", rest_port=0, modbus_port=0)
            benders.append(handle)
            ports.append((handle.rest_port, handle.modbus_port))
    except BaseException:
        await asyncio.gather(*(b.close() for b in benders), return_exceptions=True)
        await cemm.close()
        raise
    site_task = asyncio.create_task(tick_regularly(site, _next_at(phase_s)), name="site")
    return SimSite(site, load, probe, cemm, benders, connectors, site_task, ports)


# --- the edge subprocess ------------------------------------------------------------------------


def edge_toml(sim: SimSite, data_dir: Path, *, phase_lock: bool | None = None) -> str:
    """The site config of the edge under test (password comes from the environment);
    ``phase_lock``: ``[meter] phase_lock`` (None: the tree's default, on since round 6; a
    reference tree that predates the key must get None)."""
    fuse_a = main_fuse_a(len(sim.ports))
    lines = [
        f'data_dir = "{data_dir}"',
        "",
        "[site]",
        'edge_id = "bench-edge"',
        'name = "edge benchmark"',
        f"main_fuse_a = {fuse_a}",
        "",
        "[meter]",
        'driver = "cemm"',
        'host = "127.0.0.1"',
        f"port = {sim.cemm.port}",
        'alias = "p1"',
        *([] if phase_lock is None else [f"phase_lock = {str(phase_lock).lower()}"]),
        "",
        # the cars draw a constant CAR_A below every setpoint (by design: only the step moves
        # the meter); the demand cap would cap them at CAR_A + 2 A after its 30 s and the
        # staircase would no longer be what the edge follows (round 17: a start-up or a pass
        # of the staircase that took longer than 30 s failed the run)
        "[control]",
        "underuse_after_s = 86400",
        "",
        "[api.local]",
        'host = "127.0.0.1"',
        "port = 0",
        'user = "bench"',
        "",
        "[api.modbus]",
        'host = "127.0.0.1"',
        "port = 0",
        "",
        "[api.evse]",
        'host = "127.0.0.1"',
        "port = 0",
        "",
        "[logging]",
        'level = "info"',
        'format = "json"',
    ]
    for i, (rest_port, modbus_port) in enumerate(sim.ports):
        lines += [
            "",
            "[[chargers]]",
            f'id = "cp{i + 1:03d}"',
            f'evse_uuid = "{0xE0000000 + i:032x}"',
            'host = "127.0.0.1"',
            f"rest_port = {rest_port}",
            f"modbus_port = {modbus_port}",
            'rotation = "L1L2L3"',
            f"max_current_a = {CHARGER_MAX_A}",
            "safe_current_a = 6",
            "safe_timeout_s = 60",
            "",
            "[[chargers.plugs]]",
            f'uuid = "{0xF0000000 + i:032x}"',
            'label = "Plug 1"',
        ]
    return "\n".join(lines) + "\n"


def _fuseguard_command() -> list[str]:
    script = Path(sys.executable).parent / "fuseguard"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from fuseguard.cli import app; app()"]


# The edge under cProfile: the profiler is switched on by SIGUSR2 (the stepping window starts) and
# its stats are written by SIGUSR1 (the window ends), so start-up and shutdown are not in them and
# the stats do not depend on the edge exiting cleanly.
_PROFILED_EDGE = """
import cProfile, signal, sys
from fuseguard.cli import main
prof = cProfile.Profile()
stats_path = sys.argv.pop(1)
def _start(*_):
    prof.enable()
def _dump(*_):
    prof.disable()
    prof.dump_stats(stats_path)
signal.signal(signal.SIGUSR2, _start)
signal.signal(signal.SIGUSR1, _dump)
sys.argv[0] = "fuseguard"
main()
"""


async def start_edge(
    config: Path, log_path: Path, profile: Path | None = None, source: Path | None = None
) -> asyncio.subprocess.Process:
    """``fuseguard run --config <config>``, logging to ``log_path``; with cProfile ready when
    ``profile`` is given (see :func:`profile_window`)."""
    command = _fuseguard_command()
    if profile is not None:
        command = [sys.executable, "-c", _PROFILED_EDGE, str(profile)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUSEGUARD_")}
    if source is not None:  # another fuseguard source tree (the reference edge), same venv
        command = [sys.executable, "-c", "from fuseguard.cli import main; main()"]
        env["PYTHONPATH"] = str(source)
    env["FUSEGUARD_API__LOCAL__PASSWORD"] = secrets.token_urlsafe(16)
    with log_path.open("wb") as log_file:
        return await asyncio.create_subprocess_exec(
            *command,
            "run",
            "--config",
            str(config),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            env=env,
        )


async def profile_window_end(proc: asyncio.subprocess.Process, stats: Path) -> None:
    """Ask the profiled edge for its stats (SIGUSR1) and wait until they are written."""
    proc.send_signal(signal.SIGUSR1)
    await asyncio.to_thread(_wait_for_file, stats, 30.0)


def _wait_for_file(path: Path, timeout_s: float) -> None:
    deadline = time.perf_counter() + timeout_s
    while not path.exists() and time.perf_counter() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)  # dump_stats writes in one go; let it close the file


async def stop_edge(
    proc: asyncio.subprocess.Process, timeout_s: float = 15.0, dump: Path | None = None
) -> None:
    """SIGINT (Ctrl-C), then SIGKILL if it does not stop within ``timeout_s`` (longer than the
    edge's own hard exit, 12 s, which logs the tasks still running). When it has not exited
    ``DUMP_AFTER_S`` after the signal, ``py-spy dump --native`` (when installed) of it goes to
    ``dump``: where the process is while it does not exit."""
    if proc.returncode is not None:
        return
    t0 = time.perf_counter()
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(2)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(DUMP_AFTER_S):
            await proc.wait()
    if proc.returncode is None and dump is not None:
        await _py_spy_dump(proc.pid, dump)
    try:
        async with asyncio.timeout(max(0.0, timeout_s - (time.perf_counter() - t0))):
            await proc.wait()
    except TimeoutError:
        print(f"the edge did not stop within {timeout_s:g} s of SIGINT: killed", file=sys.stderr)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
    took = time.perf_counter() - t0
    if took > DUMP_AFTER_S:
        print(f"the edge took {took:.1f} s to exit after SIGINT (rc {proc.returncode})", flush=True)


#: How long after SIGINT a still running edge is looked at with py-spy (``stop_edge``).
DUMP_AFTER_S = 3.0


async def _py_spy_dump(pid: int, path: Path) -> None:
    spy = Path(sys.executable).parent / "py-spy"
    if not spy.exists():
        return
    proc = await asyncio.create_subprocess_exec(
        str(spy),
        "dump",
        "--native",
        "--pid",
        str(pid),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    path.write_bytes(out)  # noqa: ASYNC240 - once, after a stop that hangs


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (s), from ``/proc/<pid>/stat``."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # fields 14 and 15 of stat(5)


def rss_mb(pid: int) -> float:
    """``VmRSS`` of ``pid`` in MB (MiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    msg = f"no VmRSS for pid {pid}"
    raise RuntimeError(msg)


# --- measuring ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepResult:
    """One meter step."""

    direction: str  # "down" (base load up, setpoints fall: measured) or "up" (reset)
    expected_a: int
    chargers_written: int
    ramped: int  # chargers whose first reaction was a ramp step below the new setpoint
    reaction_ms: float | None
    controller_ms: float | None
    poll_wait_ms: float | None
    write_spread_ms: float | None
    decide_write_ms: float | None


@dataclass
class SizeResult:
    """Everything measured at one size."""

    chargers: int
    steps: list[StepResult]
    rss_mb: float
    cpu_pct: float
    window_s: float
    sim_cpu_pct: float
    modbus_reads_per_s: float  # Modbus read requests the virtual chargers answered
    startup_s: float
    edge_warnings: int
    edge_log_lines: int
    load_avg: float
    edge: str = "this"  # "reference": the edge from --reference, measured in the same run

    def values(self, name: str, direction: str | None = None) -> list[float]:
        """A per-step quantity over the complete steps (optionally one direction)."""
        out = []
        for s in self.steps:
            v = getattr(s, name)
            if v is not None and (direction is None or s.direction == direction):
                out.append(float(v))
        return out

    def row(self) -> dict[str, Any]:
        """The ``edge.json`` row (reaction and controller time over the decrease steps)."""
        reaction = self.values("reaction_ms", "down")
        controller = self.values("controller_ms", "down")
        return {
            "chargers": self.chargers,
            "reaction_p50_ms": _pct(reaction, 50),
            "reaction_p99_ms": _pct(reaction, 99),
            "controller_p50_ms": _pct(controller, 50),
            "rss_mb": round(self.rss_mb, 1),
            "cpu_pct": round(self.cpu_pct, 2),
        }


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return round(float(np.percentile(values, q)), 1)


def _last_value(log: list[tuple[float, float]]) -> float | None:
    return log[-1][1] if log else None


async def _wait_until(
    clock: RealClock,
    done: Callable[[], bool],
    timeout_s: float,
    proc: asyncio.subprocess.Process,
) -> bool:
    deadline = time.perf_counter() + timeout_s
    while not done():
        if proc.returncode is not None:
            msg = f"the edge exited with code {proc.returncode}"
            raise RuntimeError(msg)
        if time.perf_counter() >= deadline:
            return False
        await clock.sleep(0.02)
    return True


async def one_step(
    sim: SimSite,
    clock: RealClock,
    proc: asyncio.subprocess.Process,
    *,
    previous: int,
    expected: int,
    gap_s: float,
) -> StepResult:
    """Switch the base load; wait until every charger reacted and reached its new setpoint.

    A charger has reacted at its first write that moves in the step's direction. Decreases are
    written at once, so that is the new setpoint; increases are ramped (``ramp_up_a_per_s``)
    and may take a second write to reach it, which is deliberate and not counted as reaction.
    """
    high = expected < previous
    probe = sim.probe
    n_ticks = len(probe.step_ticks)
    marks = [len(w) for w in probe.writes]
    await sim.step(clock, base_load_a(len(sim.ports), expected), gap_s)

    def first_new_write(i: int) -> tuple[float, float] | None:
        for t, v in probe.writes[i][marks[i] :]:
            if (v < previous) if high else (v > previous):
                return t, v
        return None

    def complete() -> bool:
        return (
            len(probe.step_ticks) > n_ticks
            and all(_last_value(w) == expected for w in probe.writes)
            and all(first_new_write(i) is not None for i in range(len(probe.writes)))
        )

    await _wait_until(clock, complete, STEP_TIMEOUT_S, proc)
    direction = "down" if high else "up"
    if len(probe.step_ticks) <= n_ticks:
        return StepResult(direction, expected, 0, 0, None, None, None, None, None)
    step_t = probe.step_ticks[n_ticks]
    reactions = [w for i in range(len(probe.writes)) if (w := first_new_write(i)) is not None]
    times = [t for t, _ in reactions]
    ramped = sum(1 for _, v in reactions if v != expected)
    if len(times) < len(probe.writes):
        return StepResult(direction, expected, len(times), ramped, None, None, None, None, None)
    last = max(times)
    first = min(times)
    answer = next((t for t in probe.meter_answers if t >= step_t), None)
    # the charger read answered last before the first write: what the decision waited for
    reads = sorted(probe.charger_reads)  # worker processes report in batches
    i = bisect.bisect_left(reads, first)
    last_read = reads[i - 1] if i > 0 and answer is not None and reads[i - 1] >= answer else None
    controller = (last - answer) * 1000.0 if answer is not None and answer <= last else None
    poll_wait = (answer - step_t) * 1000.0 if answer is not None else None
    return StepResult(
        direction,
        expected,
        len(times),
        ramped,
        (last - step_t) * 1000.0,
        controller,
        poll_wait,
        (last - first) * 1000.0,
        (last - last_read) * 1000.0 if last_read is not None else None,
    )


async def measure_size(
    chargers: int,
    steps: int,
    *,
    seed: int = 1,
    keep_dir: Path | None = None,
    profile: Path | None = None,
    source: Path | None = None,
    regular: bool = True,
    bender_keepalive_s: int = BENDER_KEEPALIVE_S,
) -> SizeResult:
    """Start the simulators and the edge subprocess, run ``steps`` meter steps, measure."""
    clock = RealClock()
    rng = random.Random(seed)
    load_avg = os.getloadavg()[0]
    t_start = time.perf_counter()
    sim = await start_site(chargers, clock, bender_keepalive_s)
    sim.regular = regular
    with tempfile.TemporaryDirectory(prefix="fuseguard-bench-edge-") as tmp:
        work = Path(tmp)
        data_dir = work / "data"
        config = work / "site.toml"
        config.write_text(edge_toml(sim, data_dir))
        log_path = work / "edge.log"
        proc = await start_edge(config, log_path, profile, source)
        try:
            settled = await _wait_until(
                clock,
                lambda: all(_last_value(w) == TOP_SETPOINT_A for w in sim.probe.writes),
                SETTLE_TIMEOUT_S,
                proc,
            )
            if not settled:
                msg = f"the edge did not settle all {chargers} chargers at {TOP_SETPOINT_A} A"
                raise RuntimeError(msg)
            startup_s = time.perf_counter() - t_start
            await clock.sleep(1.0)
            pid = proc.pid
            if profile is not None:
                proc.send_signal(signal.SIGUSR2)
            cpu0, sim0, wall0 = cpu_seconds(pid), time.process_time(), time.perf_counter()
            reads0 = len(sim.probe.charger_reads)
            rss = rss_mb(pid)
            results: list[StepResult] = []
            level = TOP_SETPOINT_A
            while sum(1 for r in results if r.direction == "down") < steps:
                target = level - 1 if level > BOTTOM_SETPOINT_A else TOP_SETPOINT_A
                gap_s = rng.uniform(1.0, 2.0)
                step = await one_step(
                    sim, clock, proc, previous=level, expected=target, gap_s=gap_s
                )
                results.append(step)
                level = target
                rss = max(rss, rss_mb(pid))
                if step.reaction_ms is None:
                    break  # not every charger got there: the edge is not following any more
            wall = time.perf_counter() - wall0
            cpu_pct = (cpu_seconds(pid) - cpu0) / wall * 100.0
            sim_cpu_pct = (time.process_time() - sim0) / wall * 100.0
            reads_per_s = (len(sim.probe.charger_reads) - reads0) / wall
            if profile is not None:
                await profile_window_end(proc, profile)
        except RuntimeError as err:
            text = log_path.read_text(errors="replace")
            if keep_dir is not None:
                keep_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - it failed
                (keep_dir / f"edge-{chargers}-failed.log").write_text(text)
            tail = "\n".join(text.splitlines()[-15:])
            msg = f"{err}; edge log tail:\n{tail}"
            raise RuntimeError(msg) from err
        finally:
            await stop_edge(proc, dump=work / "edge-stop.pyspy")
            await sim.close()
        log_lines = log_path.read_text(errors="replace").splitlines()
        warnings = sum(
            1 for line in log_lines if '"level": "warning"' in line or '"level": "error"' in line
        )
        if keep_dir is not None:
            keep_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - after measuring
            (keep_dir / f"edge-{chargers}.log").write_text("\n".join(log_lines) + "\n")
            if (work / "edge-stop.pyspy").exists():
                (keep_dir / f"edge-{chargers}-stop.pyspy").write_bytes(
                    (work / "edge-stop.pyspy").read_bytes()
                )
    return SizeResult(
        chargers=chargers,
        steps=results,
        rss_mb=rss,
        cpu_pct=cpu_pct,
        window_s=wall,
        sim_cpu_pct=sim_cpu_pct,
        modbus_reads_per_s=reads_per_s,
        startup_s=startup_s,
        edge_warnings=warnings,
        edge_log_lines=len(log_lines),
        load_avg=load_avg,
    )


# --- reporting ----------------------------------------------------------------------------------


def _fmt(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _met(value: float | None, target: float) -> str:
    if value is None:
        return "n/a"
    return "met" if value <= target else "**missed**"


def markdown(results: list[SizeResult], *, quick: bool) -> str:
    """The ``bench/results/edge.md`` fragment."""
    rows = [r.row() for r in results]
    out = [
        "### Edge (`bench/edge.py`)",
        "",
        "A meter step (the building base load rises so that every charger's setpoint must"
        " fall by 1 A, a staircase 16 A -> 7 A, then one reset step back to 16 A) against the"
        " edge running as a separate `fuseguard run`"
        " subprocess; the simulators (site model, virtual CEMM, one REST + Modbus port per virtual"
        " Bender, a car on each) run in the benchmark process over loopback. Timestamps are taken"
        " in the simulators. `reaction` = the step is in the CEMM telegram -> the last charger"
        " received its Modbus write of register 1000 with the lower setpoint (includes waiting"
        " for the edge's next 1 s meter poll). Reaction and controller times are over the"
        " decrease steps: the edge holds an increase for `raise_after_s` (5 s) by design, so the"
        " reset steps are shown apart."
        " `controller` = the CEMM answer that first carried the step -> last charger written (the"
        " edge's time from meter sample to writes done: the charger reads of that poll,"
        " allocation, writes). `decide + write` = last charger read answered before the first"
        " write -> last charger written. RSS = `VmRSS`; CPU = utime + stime of the edge over the"
        " stepping window (every setpoint changes every 1-3 s), in % of one core.",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python"
        f" {platform.python_version()}, load average at the start of each size"
        f" {', '.join(f'{r.load_avg:.1f}' for r in results)} (a shared machine: other test"
        " suites were running)."
        + (" **Quick run** (few steps, short CPU window)." if quick else ""),
        "",
        "| chargers | steps | reaction p50 ms | reaction p99 ms | controller p50 ms"
        " | RSS MB | CPU % | CPU window s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r, row in zip(results, rows, strict=True):
        complete = len(r.values("reaction_ms", "down"))
        total = sum(1 for s in r.steps if s.direction == "down")
        out.append(
            f"| {r.chargers} | {complete}/{total} | {_fmt(row['reaction_p50_ms'])}"
            f" | {_fmt(row['reaction_p99_ms'])} | {_fmt(row['controller_p50_ms'])}"
            f" | {_fmt(row['rss_mb'])} | {_fmt(row['cpu_pct'], 2)} | {r.window_s:.0f} |"
        )
    out += [
        "",
        "| chargers | poll wait p50 ms | controller p99 ms | decide + write p50 ms"
        " | write spread p50 ms | reset (increase) p50 ms | sim CPU %"
        " | edge warnings / log lines |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        down = "down"
        out.append(
            f"| {r.chargers} | {_fmt(_pct(r.values('poll_wait_ms', down), 50))}"
            f" | {_fmt(_pct(r.values('controller_ms', down), 99))}"
            f" | {_fmt(_pct(r.values('decide_write_ms', down), 50))}"
            f" | {_fmt(_pct(r.values('write_spread_ms', down), 50))}"
            f" | {_fmt(_pct(r.values('reaction_ms', 'up'), 50))}"
            f" | {r.sim_cpu_pct:.0f} | {r.edge_warnings} / {r.edge_log_lines} |"
        )
    target_row = next((row for row in rows if row["chargers"] == FOOTPRINT_CHARGERS), rows[-1])
    worst_p99 = max((row["reaction_p99_ms"] or 0.0) for row in rows)
    worst_ctrl = max((row["controller_p50_ms"] or 0.0) for row in rows)
    out += [
        "",
        "| target | measured | |",
        "|---|---:|---|",
        f"| reaction p99 <= one meter period (1000 ms), every size | {worst_p99:.0f} ms"
        f" | {_met(worst_p99, TARGET_REACTION_P99_MS)} |",
        f"| controller-added median <= 30 ms, every size | {worst_ctrl:.0f} ms"
        f" | {_met(worst_ctrl, TARGET_CONTROLLER_P50_MS)} |",
        f"| RSS <= 120 MB at {target_row['chargers']} chargers | {target_row['rss_mb']} MB"
        f" | {_met(target_row['rss_mb'], TARGET_RSS_MB)} |",
        f"| CPU <= 3 % of a core at {target_row['chargers']} chargers"
        f" | {target_row['cpu_pct']} % | {_met(target_row['cpu_pct'], TARGET_CPU_PCT)} |",
        "",
        "Reading the numbers: `reaction` = poll wait + `controller`. The virtual CEMM publishes"
        " every 1 s on its own clock (`--meter irregular`: the step's telegram at a random"
        " phase instead); an edge that polls twice per period at an unrelated phase waits"
        " 0..0.5 s for a telegram, an edge with the phase lock (control/phase.py) polls just"
        " after the meter publishes (poll wait = its margin + the round trip), falling back to"
        " plain polling when the phase is unknown. A meter sample that rose while none of the"
        " edge's own cars is ramping up (or one above the limit) is decided on at once with the"
        " chargers' last samples;"
        " `controller` p50 is that decision plus the concurrent writes, its p99 the cases where"
        " the rise landed in a charger poll and the decision waited for those reads (at most"
        " `poll_wait_s`). A Bender read is three Modbus block reads (state, CP, meter), plus the"
        " session block and the limit read-back and the REST `full_state` every 10 s or on a"
        " change. With `charger_idle_poll_s` (10 s) a steady charger is read every 10 s, fast"
        " only after a change (docs/safety.md). The virtual Benders answer one request at a"
        " time on one event loop, so `write spread` (and with it `controller`) grows with the"
        " number of chargers on the simulator's side too (a real site's chargers answer in"
        " parallel); the virtual CEMM runs on its own thread so that it is never queued behind"
        " them. `bench/edge.py --profile DIR [--chargers N]` runs the edge under cProfile over"
        " the stepping window; `--reference SRC` measures another source tree's edge first at"
        " every size (an A/B in the same minutes, `edge-ab.json`). RSS is mostly the imported"
        " libraries.",
        "",
    ]
    return "\n".join(out)


def write_results(results: list[SizeResult], out_dir: Path, *, quick: bool) -> list[dict[str, Any]]:
    """Write ``edge.json`` and ``edge.md`` into ``out_dir``; return the JSON rows."""
    rows = [r.row() for r in results]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "edge.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out_dir / "edge.md").write_text(markdown(results, quick=quick))
    return rows


async def run(
    sizes: list[tuple[int, int]],
    *,
    keep_logs: Path | None,
    reference: Path | None = None,
    regular: bool = True,
    bender_keepalive_s: int = BENDER_KEEPALIVE_S,
) -> list[SizeResult]:
    """Measure every (chargers, steps) size in turn; with ``reference``, each size first with
    the reference edge, then with this one (same machine, same minutes: a fair ratio)."""
    results = []
    for chargers, steps in sizes:
        for source in (reference, None) if reference is not None else (None,):
            t0 = time.perf_counter()
            keep = keep_logs / ("reference" if source else "this") if keep_logs else None
            try:
                result = await measure_size(
                    chargers,
                    steps,
                    keep_dir=keep,
                    source=source,
                    regular=regular,
                    bender_keepalive_s=bender_keepalive_s,
                )
            except RuntimeError as err:
                if reference is None:
                    raise
                print(f"{'reference' if source else 'this'} {chargers} FAILED: {err}", flush=True)
                continue  # an A/B run goes on with the other edge and the other sizes
            if source is not None:
                result.edge = "reference"
            if keep is not None:
                steps_json = json.dumps([vars(st) for st in result.steps], indent=1)
                (keep / f"steps-{chargers}.json").write_text(steps_json + "\n")
            row = result.row()
            print(
                f"{result.edge:>9} {chargers:4d} chargers: reaction p50"
                f" {_fmt(row['reaction_p50_ms'])} ms p99 {_fmt(row['reaction_p99_ms'])} ms,"
                f" controller p50 {_fmt(row['controller_p50_ms'])} ms, RSS {row['rss_mb']} MB,"
                f" CPU {row['cpu_pct']} %, {result.modbus_reads_per_s:.0f} Modbus reads/s, load"
                f" {result.load_avg:.1f} ({len(result.values('reaction_ms', 'down'))}/{steps}"
                f" steps, {time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
            results.append(result)
    return results


def write_ab(results: list[SizeResult], path: Path, meter: str = "regular") -> None:
    """Every row of an A/B run (``--reference``) with its edge label and load average."""
    rows = [
        {
            "edge": r.edge,
            **r.row(),
            "load_avg": round(r.load_avg, 1),
            "modbus_reads_per_s": round(r.modbus_reads_per_s, 1),
            "decide_write_p50_ms": _pct(r.values("decide_write_ms", "down"), 50),
            "write_spread_p50_ms": _pct(r.values("write_spread_ms", "down"), 50),
            "poll_wait_p50_ms": _pct(r.values("poll_wait_ms", "down"), 50),
            "poll_wait_p99_ms": _pct(r.values("poll_wait_ms", "down"), 99),
            "controller_p99_ms": _pct(r.values("controller_ms", "down"), 99),
            "steps": f"{len(r.values('reaction_ms', 'down'))}/"
            f"{sum(1 for s in r.steps if s.direction == 'down')}",
            "sim_cpu_pct": round(r.sim_cpu_pct, 1),
            "meter": meter,
        }
        for r in results
    ]
    path.write_text(json.dumps(rows, indent=2) + "\n")


def profile(
    out_dir: Path,
    chargers: int = FOOTPRINT_CHARGERS,
    steps: int = 20,
    bender_keepalive_s: int = BENDER_KEEPALIVE_S,
) -> None:
    """Run the edge under cProfile over the stepping window and print where its time goes.

    Not a benchmark result (cProfile slows the edge several times); the stats file
    ``edge-<chargers>.prof`` and the edge log stay in ``out_dir``.
    """
    import pstats

    out_dir.mkdir(parents=True, exist_ok=True)
    stats_path = out_dir / f"edge-{chargers}.prof"
    stats_path.unlink(missing_ok=True)
    result = asyncio.run(
        measure_size(
            chargers,
            steps,
            keep_dir=out_dir,
            profile=stats_path,
            bender_keepalive_s=bender_keepalive_s,
        )
    )
    print(f"under cProfile: {result.row()} (load average {result.load_avg:.1f})")
    stats = pstats.Stats(str(stats_path))
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats(40)


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few steps, under a minute")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    parser.add_argument("--keep-logs", type=Path, default=None, help="copy the edge logs here")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="instead of the benchmark: run the edge under cProfile (first --chargers size,"
        " 100 by default), stats and log here",
    )
    parser.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="a fuseguard source tree's src directory: measure its edge before this one at"
        " every size (A/B in the same run; rows in edge-ab.json)",
    )
    parser.add_argument(
        "--meter",
        choices=("regular", "irregular"),
        default="regular",
        help="regular (default): the CEMM publishes every 1 s on its own clock, re-phased before"
        " each step; irregular: the step's telegram itself comes at a random phase",
    )
    parser.add_argument(
        "--bender-keepalive-s",
        type=int,
        default=BENDER_KEEPALIVE_S,
        help="how long each virtual Bender's REST server keeps an idle connection (default 5,"
        " uvicorn's; the edge fetches full_state every 10-20 s per charger)",
    )
    parser.add_argument(
        "--chargers",
        default="10,100",
        help="comma-separated sizes (default 10,100; issue 18 adds 300)",
    )
    args = parser.parse_args()
    # the simulators log warnings only: their per-request debug lines cost this process more
    # CPU than answering (the edge under test logs at info to its own file)
    configure_logging("warning", "json")
    counts = [int(n) for n in args.chargers.split(",") if n.strip()]
    if args.profile is not None:
        sizes_given = any(a.startswith("--chargers") for a in sys.argv)
        chargers = counts[0] if sizes_given else FOOTPRINT_CHARGERS
        profile(args.profile, chargers, bender_keepalive_s=args.bender_keepalive_s)
        return
    sizes = [(n, 6 if args.quick else 36) for n in counts]
    t0 = time.perf_counter()
    regular = args.meter == "regular"
    results = asyncio.run(
        run(
            sizes,
            keep_logs=args.keep_logs,
            reference=args.reference,
            regular=regular,
            bender_keepalive_s=args.bender_keepalive_s,
        )
    )
    if args.reference is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        write_ab(results, args.out / "edge-ab.json", args.meter)
        results = [r for r in results if r.edge == "this"]
    write_results(results, args.out, quick=args.quick)
    print(f"wrote {args.out / 'edge.json'} and edge.md in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
