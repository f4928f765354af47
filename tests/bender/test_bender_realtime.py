"""The demo path: RealClock, SiteModel.run, serve_bender, the driver; and the CLI registration."""

from __future__ import annotations

import asyncio
import contextlib

import typer
from typer.testing import CliRunner

from fuseguard.cli.sim_charger import register
from fuseguard.devices.bender import BenderCharger
from fuseguard.model.clock import RealClock
from fuseguard.model.phases import Phases
from fuseguard.model.status import OcppState
from fuseguard.sim.bender import BenderController, BenderDeviceConfig
from fuseguard.sim.bender_serve import serve_bender
from fuseguard.sim.site import SiteModel
from fuseguard.sim.vehicle import SimVehicle


async def test_wall_clock_site_with_driver() -> None:
    clock = RealClock()
    controller = BenderController(clock, BenderDeviceConfig(free_charging=True))
    site = SiteModel(clock, period_s=0.05)
    site.add(controller.connector(1))
    runner = asyncio.create_task(site.run())
    handle = await serve_bender(controller, "127.0.0.1", 0, 0)
    try:
        async with BenderCharger(
            host="127.0.0.1",
            rest_port=handle.rest_port,
            modbus_port=handle.modbus_port,
            request_timeout_s=2.0,
        ) as drv:
            await drv.set_current_limit(10)
            controller.connector(1).plug_in(SimVehicle(phases=3, response_delay_s=0.1))
            sample = await drv.read()
            for _ in range(100):
                if sample.ocpp_state is OcppState.CHARGING:
                    break
                await asyncio.sleep(0.02)
                sample = await drv.read()
            assert sample.ocpp_state is OcppState.CHARGING
            assert sample.current_a == Phases.uniform(10.0)
            assert site.current_a() == Phases.uniform(10.0)
    finally:
        await handle.close()
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


def test_cli_registers_charger_command() -> None:
    app = typer.Typer()
    sim = typer.Typer()
    register(sim)
    app.add_typer(sim, name="sim")
    result = CliRunner().invoke(app, ["sim", "charger", "--help"])
    assert result.exit_code == 0
    for option in ("--rest-port", "--modbus-port", "--firmware", "--max-current", "--host"):
        assert option in result.output
