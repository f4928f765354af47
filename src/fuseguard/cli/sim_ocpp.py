"""``fuseguard sim ocpp``: a virtual OCPP 1.6J charge point that connects to a central system.

``fuseguard sim ocpp --url ws://127.0.0.1:9000/ocpp --id CP1 [--password P] [--connectors 2]``
connects to ``{url}/{id}`` (HTTP Basic when a password is given), boots, and answers the central
system like a smart-charging charge point (:mod:`fuseguard.sim.ocpp.station`). A car is plugged
into each of the first ``--cars`` connectors and charges at what the profiles allow.
"""

from __future__ import annotations

import typer

from fuseguard.model.faults import CHARGER_FAULTS

_FAULT_HELP = f"Inject a fault (repeatable): {', '.join(sorted(CHARGER_FAULTS))}."


async def run_standalone(
    *,
    url: str,
    identity: str,
    password: str | None,
    connectors: int,
    cars: int,
    max_current_a: float,
    profile_delay_s: float,
    meter_interval_s: int,
    faults: list[str],
    duration_s: float | None = None,
) -> None:
    """Run the virtual charge point until cancelled (or for ``duration_s``)."""
    import asyncio

    from fuseguard.model.clock import RealClock
    from fuseguard.sim.ocpp.station import OcppSimConfig, VirtualOcppStation
    from fuseguard.sim.vehicle import SimVehicle

    station = VirtualOcppStation(
        OcppSimConfig(
            url=url,
            identity=identity,
            password=password,
            connectors=connectors,
            max_current_a=max_current_a,
            profile_delay_s=profile_delay_s,
            meter_interval_s=meter_interval_s,
        ),
        RealClock(),
    )
    for n in range(1, min(cars, connectors) + 1):
        station.plug_in(n, SimVehicle(name=f"ev{n}", max_current_a=min(32.0, max_current_a)))
    for fault in faults:
        station.set_fault(fault)
    task = asyncio.get_running_loop().create_task(station.run())
    try:
        if duration_s is None:
            await task
        else:
            await asyncio.sleep(duration_s)
    finally:
        task.cancel()


def register(app: typer.Typer) -> None:
    """Add ``ocpp`` to the ``sim`` command group."""

    @app.command("ocpp")
    def ocpp(
        url: str = typer.Option(
            "ws://127.0.0.1:9000/ocpp", "--url", help="Central system URL (the id is appended)."
        ),
        identity: str = typer.Option("CP1", "--id", help="Charge point identity."),
        password: str | None = typer.Option(
            None, "--password", help="HTTP Basic password (security profile 1/2)."
        ),
        connectors: int = typer.Option(1, "--connectors", help="Number of connectors (1..8)."),
        cars: int = typer.Option(1, "--cars", help="Connectors with a car plugged in."),
        max_current_a: float = typer.Option(32.0, "--max-current", help="Hardware maximum (A)."),
        profile_delay_s: float = typer.Option(
            0.0, "--profile-delay", help="Seconds before a new limit takes effect."
        ),
        meter_interval_s: int = typer.Option(
            60, "--meter-interval", help="Initial MeterValueSampleInterval (s)."
        ),
        fault: list[str] | None = typer.Option(None, "--fault", help=_FAULT_HELP),  # noqa: B008
        duration: float | None = typer.Option(None, "--duration", help="Stop after seconds."),
    ) -> None:
        """Virtual OCPP 1.6J charge point (smart charging, meter values, faults)."""
        import asyncio

        if not url.startswith(("ws://", "wss://")):
            raise typer.BadParameter("ws:// or wss://", param_hint="--url")
        if not 1 <= connectors <= 8:
            raise typer.BadParameter("1..8", param_hint="--connectors")
        if not 6.0 <= max_current_a <= 80.0:
            raise typer.BadParameter("6..80 A", param_hint="--max-current")
        fault = fault or []
        for kind in fault:
            if kind not in {f.value for f in CHARGER_FAULTS}:
                raise typer.BadParameter(f"unknown fault {kind!r}", param_hint="--fault")
        try:
            asyncio.run(
                run_standalone(
                    url=url,
                    identity=identity,
                    password=password,
                    connectors=connectors,
                    cars=cars,
                    max_current_a=max_current_a,
                    profile_delay_s=max(0.0, profile_delay_s),
                    meter_interval_s=max(0, meter_interval_s),
                    faults=fault,
                    duration_s=duration,
                )
            )
        except KeyboardInterrupt:
            typer.echo("virtual charge point stopped")
