"""``fuseguard sim ocpp`` as a subprocess against the real central system."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from typer.testing import CliRunner

from fuseguard.cli import app
from fuseguard.devices.factory import build_ocpp_chargers
from fuseguard.devices.ocpp import OcppConnector
from fuseguard.model.clock import RealClock

from .test_end_to_end import PASSWORD, _cfg, wait_for


async def test_the_cli_charge_point_boots_and_takes_a_limit(tmp_path: Path) -> None:
    drivers = build_ocpp_chargers(_cfg(tmp_path), RealClock())
    conn = drivers["bay-1"]
    assert isinstance(conn, OcppConnector)
    await conn.start()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from fuseguard.cli import main; main()", "sim", "ocpp",
        "--url", conn.server.url, "--id", "CP1", "--password", PASSWORD,
        "--duration", "30",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await wait_for(conn.station.ready.is_set, 20)
        await conn.set_current_limit(10)
        # the car behind the virtual charge point follows; the meter values say so
        await wait_for(lambda: _current(conn) == 10.0, 20)
    finally:
        proc.kill()
        await proc.wait()
        await conn.close()


def _current(conn: OcppConnector) -> float | None:
    try:
        return conn.station.sample(1).current_a.l1
    except Exception:
        return None


def test_cli_refuses_bad_options() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["sim", "ocpp", "--url", "http://x", "--id", "CP1"])
    assert result.exit_code != 0
    result = runner.invoke(app, ["sim", "ocpp", "--fault", "melts"])
    assert result.exit_code != 0
