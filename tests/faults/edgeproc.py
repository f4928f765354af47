"""``fuseguard run`` as a real subprocess against virtual Bender chargers and a virtual CEMM.

The simulators (site model, CEMM, one REST + Modbus port per Bender, a car on each) run in the
test's process on loopback, in real time; the edge is a separate process that a test may
``kill -9``. Ports come from the edge's ``edge_started`` log line (everything binds port 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fuseguard.model.clock import RealClock
from fuseguard.model.phases import Phases, Rotation
from fuseguard.sim.bender import BenderConnector, BenderController, BenderDeviceConfig
from fuseguard.sim.bender_serve import BenderServerHandle, serve_bender
from fuseguard.sim.cemm_model import CemmModel
from fuseguard.sim.cemm_server import serve_cemm
from fuseguard.sim.site import BaseLoad, SiteModel
from fuseguard.sim.vehicle import SimVehicle

EDGE_ID = "kill9-edge"
PASSWORD = "kill9-Secret-password-1"
USER = "ems"
SAFE_CURRENT_A = 6
MAX_CURRENT_A = 16
EVSES = [("1a2b3c4d5e6f40718293a4b5c6d7e8f9", "2a2b3c4d5e6f40718293a4b5c6d7e8f9"),
         ("3a2b3c4d5e6f40718293a4b5c6d7e8f9", "4a2b3c4d5e6f40718293a4b5c6d7e8f9")]  # fmt: skip


@dataclass
class VirtualSite:
    """The simulators: site model, CEMM and the Benders (connector 1 of each)."""

    site: SiteModel
    cemm_port: int
    connectors: list[BenderConnector]
    ports: list[tuple[int, int]]
    closers: list[Any] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        for close in reversed(self.closers):
            with contextlib.suppress(Exception):
                await close()


async def start_site(clock: RealClock) -> VirtualSite:
    site = SiteModel(clock, period_s=0.5)
    site.add(BaseLoad(lambda _t: Phases(6, 6, 6)))
    cemm = await serve_cemm(CemmModel.for_site(site), "127.0.0.1", 0, discovery_port=None)
    vs = VirtualSite(site, cemm.port, [], [], [cemm.close])
    for rot in (Rotation.L1L2L3, Rotation.L2L3L1):
        ctrl = BenderController(
            clock=clock,
            config=BenderDeviceConfig(max_current_a=MAX_CURRENT_A, free_charging=True),
            rotations=(rot,),
        )
        site.add(ctrl.connector(1))
        handle: BenderServerHandle = await serve_bender(
            ctrl, "127.0.0.1", rest_port=0, modbus_port=0
        )
        vs.closers.append(handle.close)
        vs.connectors.append(ctrl.connector(1))
        vs.ports.append((handle.rest_port, handle.modbus_port))
        ctrl.connector(1).plug_in(SimVehicle(phases=3, max_current_a=16, response_delay_s=0.2))
    vs.task = asyncio.create_task(site.run())
    return vs


def edge_toml(vs: VirtualSite, data_dir: Path, *, safe_timeout_s: int) -> str:
    lines = [
        f'data_dir = "{data_dir}"',
        "[site]",
        f'edge_id = "{EDGE_ID}"',
        "main_fuse_a = 32",
        "[meter]",
        'driver = "cemm"',
        'host = "127.0.0.1"',
        f"port = {vs.cemm_port}",
        "stale_after_s = 3",
        'phase_assumption = "balanced"',
        "[control]",
        "charger_timeout_s = 3",
        "[api.local]",
        'host = "127.0.0.1"',
        "port = 0",
        f'user = "{USER}"',
        "keepalive_timeout_s = 3600",
        "[api.modbus]",
        'host = "127.0.0.1"',
        "port = 0",
        "[api.evse]",
        'host = "127.0.0.1"',
        "port = 0",
        "[logging]",
        'level = "info"',
        'format = "json"',
    ]
    for i, ((evse, plug), (rest, mb)) in enumerate(zip(EVSES, vs.ports, strict=True)):
        lines += [
            "[[chargers]]",
            f'id = "cp{i + 1}"',
            f'evse_uuid = "{evse}"',
            'host = "127.0.0.1"',
            f"rest_port = {rest}",
            f"modbus_port = {mb}",
            f'rotation = "{["L1L2L3", "L2L3L1"][i]}"',
            f"max_current_a = {MAX_CURRENT_A}",
            f"safe_current_a = {SAFE_CURRENT_A}",
            f"safe_timeout_s = {safe_timeout_s}",
            "[[chargers.plugs]]",
            f'uuid = "{plug}"',
            'label = "Plug 1"',
        ]
    return "\n".join(lines) + "\n"


#: ``fuseguard <args>`` in a process that does its imports at once but starts only when told to
#: (``go`` on stdin): :func:`spawn_edge` lets a restart's interpreter start-up and imports (a few
#: seconds of a loaded CI machine) overlap with the wait for the chargers' fallback.
_SPARE_CODE = """
import sys
import fuseguard.api.local, fuseguard.config, fuseguard.edge, fuseguard.logging, fuseguard.serving
from fuseguard.cli import main
if sys.stdin.readline() != "go\\n":
    sys.exit(3)
sys.stdin.close()
sys.argv[0] = "fuseguard"
main()
"""


@dataclass
class SpareEdge:
    """A ``fuseguard run`` process that has imported fuseguard and waits for its go."""

    proc: asyncio.subprocess.Process
    log_path: Path

    async def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        await self.proc.wait()


@dataclass
class EdgeProcess:
    """One ``fuseguard run`` process and the URLs it logged."""

    proc: asyncio.subprocess.Process
    log_path: Path
    urls: dict[str, str]

    async def kill9(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGINT)
            try:
                async with asyncio.timeout(10):
                    await self.proc.wait()
            except TimeoutError:
                await self.kill9()


def _started_line(log_path: Path) -> dict[str, Any] | None:
    for line in log_path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict) and entry.get("event") == "edge_started":
                return entry
    return None


async def spawn_edge(config: Path, log_path: Path) -> SpareEdge:
    """``fuseguard run --config <config>`` logging to ``log_path`` (a new file per start), in a
    new process that imports now and runs when :func:`start_edge` says go."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUSEGUARD_")}
    env["FUSEGUARD_API__LOCAL__PASSWORD"] = PASSWORD
    with log_path.open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _SPARE_CODE, "run", "--config", str(config),
            stdin=asyncio.subprocess.PIPE, stdout=log_file, stderr=log_file, env=env,
        )  # fmt: skip
    return SpareEdge(proc, log_path)


async def start_edge(
    config: Path, log_path: Path, timeout_s: float = 30.0, *, spare: SpareEdge | None = None
) -> EdgeProcess:
    """Start ``fuseguard run`` (``spare``'s, if given: its config and log); wait for it."""
    if spare is None:
        spare = await spawn_edge(config, log_path)
    proc, log_path = spare.proc, spare.log_path
    assert proc.stdin is not None
    with contextlib.suppress(ConnectionError):  # it died early: the wait below says how
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
        proc.stdin.close()
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while True:
        entry = _started_line(log_path)
        if entry is not None:
            urls = {k: str(v) for k, v in entry.items() if k in ("local_api", "evse_api")}
            return EdgeProcess(proc, log_path, urls)
        if proc.returncode is not None or loop.time() > end:
            tail = log_path.read_text(errors="replace")[-3000:]
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            msg = f"fuseguard run did not start (rc={proc.returncode}):\n{tail}"
            raise AssertionError(msg)
        await asyncio.sleep(0.1)
