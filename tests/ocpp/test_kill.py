"""``kill -9`` of the central system: the charge point keeps a lease that ends by itself and a
permanent safe profile below it, so it falls back to the safe current with no one telling it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from datetime import UTC, datetime
from typing import Any

from .conftest import PASSWORD, charge_point, wait_for

CENTRAL = f"""
import asyncio
from fuseguard.devices.ocpp import OcppCentralSystem, OcppConnector, Station, StationConfig
from fuseguard.model.clock import RealClock

async def main():
    st = Station(StationConfig(identity="CP1", password={PASSWORD!r}, phases=3, safe_current_a=6,
                               lease_s=3, boot_wait_s=0.5), RealClock())
    server = OcppCentralSystem({{"CP1": st}}, host="127.0.0.1", port=0)
    conn = OcppConnector(server, st, 1)
    await conn.start()
    print("PORT", server.port, flush=True)
    await st.ready.wait()
    await conn.set_current_limit(16)
    print("LEASED", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def _line(stream: asyncio.StreamReader, prefix: str, timeout_s: float) -> str:
    """The next output line starting with ``prefix`` (structlog also writes to stdout)."""
    async with asyncio.timeout(timeout_s):
        while True:
            line = (await stream.readline()).decode()
            if not line:
                raise EOFError(prefix)
            if line.startswith(prefix):
                return line


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def composite_limit(installed: dict[int, dict[str, Any]], at: datetime) -> float:
    """OCPP 1.6 section 3.13.2 for TxDefaultProfiles: the valid one with the highest stack level."""
    valid = [
        p
        for p in installed.values()
        if ("valid_from" not in p or _ts(p["valid_from"]) <= at)
        and ("valid_to" not in p or at < _ts(p["valid_to"]))
    ]
    best = max(valid, key=lambda p: p["stack_level"])
    return float(best["charging_schedule"]["charging_schedule_period"][0]["limit"])


async def test_kill_9_leaves_the_charge_point_on_its_safe_profile() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CENTRAL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        port = int((await _line(proc.stdout, "PORT", 20)).split()[1])
        async with charge_point(f"ws://127.0.0.1:{port}/ocpp/CP1") as (cp, ws):
            await _line(proc.stdout, "LEASED", 10)
            await wait_for(lambda: len(cp.leases()) >= 1)
            installed = {p["charging_profile_id"]: p for _, p in cp.profiles}
            assert composite_limit(installed, datetime.now(UTC)) == 16.0
            os.kill(proc.pid, signal.SIGKILL)
            await proc.wait()
            await asyncio.wait_for(ws.wait_closed(), 10)
            installed = {p["charging_profile_id"]: p for _, p in cp.profiles}
            lease = max(cp.leases(), key=lambda p: p["valid_to"])
            end = _ts(lease["valid_to"])
            assert (end - datetime.now(UTC)).total_seconds() <= 3.5  # at most one lease away
            await asyncio.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()) + 0.1)
            # no renewal came from a dead central system; the charge point is on its own
            assert composite_limit(installed, datetime.now(UTC)) == 6.0
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
