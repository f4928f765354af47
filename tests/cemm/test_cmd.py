"""``fuseguard sim cemm``: the Typer command and the standalone site it serves."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime

import aiohttp
import typer
from tests.ports import free_port
from typer.testing import CliRunner

from fuseguard.cli.sim_cemm import build_standalone, register, run_standalone
from fuseguard.devices.cemm import CemmClient, CemmGridMeter, discover
from fuseguard.model.clock import VirtualClock


def test_register_adds_the_cemm_command():
    app = typer.Typer()
    register(app)

    @app.command("other")
    def other() -> None:
        """Keep Typer in multi-command mode."""

    result = CliRunner().invoke(app, ["cemm", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--port", "--discovery-port", "--tz", "--host"):
        assert option in result.output


async def test_standalone_site_is_plausible_over_a_day():
    # 2026-06-21 00:00 CEST
    clock = VirtualClock(datetime(2026, 6, 20, 22, 0, tzinfo=UTC))
    site, model = build_standalone(clock, period_s=30.0)
    task = asyncio.create_task(site.run())
    powers = {}
    for hour in range(24):
        await clock.advance(3600 if hour else 0)
        powers[hour] = model.realtime_body("p1")["data"]["electric_power"][1]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert 100 < powers[3] < 1000  # night base load
    assert powers[13] < 0  # summer noon: PV exports
    assert powers[19] > 2000  # evening peak
    body = model.realtime_body("p1")["data"]
    assert body["t1"][1] > 5120.412  # imported on the low tariff overnight
    assert body["gas"][1] > 0


async def test_run_standalone_serves_over_loopback():
    port, udp_port = free_port(), free_port(socket.SOCK_DGRAM)
    task = asyncio.create_task(
        run_standalone(
            host="127.0.0.1",
            port=port,
            discovery_port=udp_port,
            tz="Europe/Amsterdam",
            pv_peak_w=4000.0,
        )
    )
    try:
        async with aiohttp.ClientSession() as session:
            client = CemmClient(host="127.0.0.1", port=port, session=session, request_timeout_s=1.0)
            for _ in range(100):
                try:
                    info = await client.device_info()
                    break
                except Exception:
                    await asyncio.sleep(0.05)
            assert info.core == "1.24"
            sample = await CemmGridMeter(client).read()
            assert sample.current_a is None
            assert abs((sample.timestamp - datetime.now(UTC)).total_seconds()) < 5
            found = await discover(
                address="127.0.0.1",
                port=udp_port,
                duration_s=1.0,
                bind_host="127.0.0.1",
                max_replies=1,
            )
            assert [f.mac for f in found] == [info.mac]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
