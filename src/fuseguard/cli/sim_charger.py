"""``fuseguard sim charger``: a virtual Bender CC612/613 on the real wire protocols.

Serves the legacy REST text API (plus the ``/sim`` admin API) and Modbus TCP (connector 2 on
``--modbus-port + 1``) with its own :class:`~fuseguard.sim.site.SiteModel` on wall-clock time,
until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated

import typer

from fuseguard.sim.bender import Firmware, RestAuth


def register(app: typer.Typer) -> None:
    """Add the ``charger`` command to ``app`` (the ``fuseguard sim`` group)."""
    app.command("charger")(charger)


def charger(
    rest_port: Annotated[int, typer.Option(help="legacy REST port (device: 80)")] = 8080,
    modbus_port: Annotated[int, typer.Option(help="Modbus TCP base port (device: 502)")] = 5020,
    firmware: Annotated[Firmware, typer.Option(help="REST key set")] = Firmware.V5_33,
    max_current: Annotated[int, typer.Option(help="configured maximum current, A")] = 32,
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    connectors: Annotated[int, typer.Option(min=1, max=2, help="1, or 2 (twin)")] = 1,
    auth: Annotated[RestAuth, typer.Option(help="REST credential check")] = RestAuth.NONE,
    username: Annotated[str, typer.Option(help="REST user (operator/manufacturer)")] = "operator",
    password: Annotated[str, typer.Option(help="REST password")] = "fuseguard",  # noqa: S107
    free_charging: Annotated[bool, typer.Option(help="no authorisation needed")] = False,
    socket: Annotated[bool, typer.Option(help="Type 2 socket instead of a fixed cable")] = False,
    plug: Annotated[bool, typer.Option(help="plug a vehicle into connector 1 at start")] = False,
    phases: Annotated[int, typer.Option(min=1, max=3, help="phases of that vehicle")] = 3,
    soc: Annotated[float, typer.Option(min=0.0, max=1.0, help="its state of charge")] = 0.5,
) -> None:
    """Run a virtual Bender CC612/613 charge controller (REST + Modbus TCP)."""
    from fuseguard.model.clock import RealClock
    from fuseguard.sim.bender import BenderController, BenderDeviceConfig
    from fuseguard.sim.bender_serve import serve_bender
    from fuseguard.sim.site import SiteModel
    from fuseguard.sim.vehicle import SimVehicle

    async def run() -> None:
        clock = RealClock()
        config = BenderDeviceConfig(
            firmware=firmware,
            max_current_a=max_current,
            rest_auth=auth,
            rest_username=username,
            rest_password=password,
            free_charging=free_charging,
        )
        controller = BenderController(
            clock, config, connector_count=connectors, fixed_cable=not socket
        )
        site = SiteModel(clock)
        for connector in controller.connectors:
            site.add(connector)
        if plug:
            controller.connector(1).plug_in(SimVehicle(phases=phases, soc=soc))
        handle = await serve_bender(controller, host, rest_port, modbus_port)
        typer.echo(
            f"virtual Bender {firmware.value}: REST http://{host}:{handle.rest_port}/rest/full_state"
            f" · Modbus {host}:{','.join(str(p) for p in handle.modbus_ports)}"
            f" · admin http://{host}:{handle.rest_port}/sim/state"
        )
        try:
            await site.run()
        finally:
            await handle.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
