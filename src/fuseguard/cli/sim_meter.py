"""``fuseguard sim meter``: a virtual Modbus meter (any mapped model) or SunSpec meter/inverter.

The device meters a small simulated house (the same household load and PV day as
``fuseguard sim cemm``): a Modbus meter or the SunSpec meter sits at the grid connection, the
SunSpec inverter is the house's PV plant.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import typer

from fuseguard.cli.sim_cemm import LocalTimePv, house_load_a
from fuseguard.model.clock import Clock
from fuseguard.sim.cemm_model import DEFAULT_TZ
from fuseguard.sim.meters import (
    MeterFaults,
    MeterModbusServer,
    PvInverterSource,
    RegisterDevice,
    SiteMeter,
    VirtualModbusMeter,
    VirtualSunSpecInverter,
    VirtualSunSpecMeter,
)
from fuseguard.sim.site import SiteModel
from fuseguard.wire.meters import builtin_map, builtin_map_names

SUNSPEC_MODELS = ("sunspec-meter", "sunspec-inverter")


def model_names() -> tuple[str, ...]:
    """Every model ``--model`` accepts."""
    return (*builtin_map_names(), *SUNSPEC_MODELS)


def build_virtual_meter(
    clock: Clock,
    model: str,
    *,
    tz: str = DEFAULT_TZ,
    pv_peak_w: float = 5000.0,
    base_address: int = 40000,
    period_s: float = 1.0,
) -> tuple[SiteModel, RegisterDevice]:
    """A house with load and PV, and the virtual ``model`` metering it."""
    if model not in model_names():
        msg = f"unknown model {model!r}; one of {', '.join(model_names())}"
        raise ValueError(msg)
    local: datetime = clock.now().astimezone(ZoneInfo(tz))
    offset_s = local.hour * 3600.0 + local.minute * 60.0 + local.second
    site = SiteModel(clock, period_s=period_s)
    site.add(house_load_a(offset_s))
    pv = LocalTimePv(peak_w=pv_peak_w, offset_s=offset_s)
    site.add(pv)
    site.tick()
    faults = MeterFaults(f"virtual-{model}", clock)
    if model == "sunspec-inverter":
        inverter = PvInverterSource(site, pv)
        return site, VirtualSunSpecInverter(inverter, faults, base_address=base_address)
    source = SiteMeter(site)
    if model == "sunspec-meter":
        return site, VirtualSunSpecMeter(source, faults, base_address=base_address)
    return site, VirtualModbusMeter(builtin_map(model), source, faults)


async def run_standalone(
    *,
    host: str,
    port: int,
    unit_id: int,
    model: str,
    tz: str = DEFAULT_TZ,
    pv_peak_w: float = 5000.0,
    base_address: int = 40000,
    duration_s: float | None = None,
) -> None:
    """Serve the virtual meter until cancelled (or for ``duration_s``)."""
    import asyncio

    import structlog

    from fuseguard.model.clock import RealClock

    site, device = build_virtual_meter(
        RealClock(), model, tz=tz, pv_peak_w=pv_peak_w, base_address=base_address
    )
    server = MeterModbusServer(device, host=host, port=port, unit_id=unit_id)
    await server.start()
    structlog.get_logger(__name__).info(
        "virtual meter ready",
        device=device.name,
        reason="serving",
        model=model,
        address=f"{host}:{server.port}",
        unit_id=unit_id or "any",
    )
    runner = asyncio.get_running_loop().create_task(site.run())
    try:
        if duration_s is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(duration_s)
    finally:
        runner.cancel()
        await server.close()


def register(app: typer.Typer) -> None:
    """Add ``meter`` to the ``sim`` command group."""

    @app.command("meter")
    def meter(
        model: str = typer.Option(..., "--model", help=f"One of: {', '.join(model_names())}."),
        port: int = typer.Option(..., "--port", help="Modbus TCP port."),
        unit: int = typer.Option(1, "--unit", help="Modbus unit id answered (0 = every unit)."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to bind."),
        base_address: int = typer.Option(
            40000, "--base-address", help="SunSpec base address (40000, 0 or 50000)."
        ),
        pv_peak_w: float = typer.Option(5000.0, "--pv-peak-w", help="PV peak power."),
        tz: str = typer.Option(DEFAULT_TZ, "--tz", help="Local time zone of the PV day."),
        duration: float | None = typer.Option(None, "--duration", help="Stop after seconds."),
    ) -> None:
        """Virtual Modbus meter or SunSpec meter/inverter on a simulated house."""
        import asyncio

        if model not in model_names():
            msg = f"unknown model {model!r}; one of {', '.join(model_names())}"
            raise typer.BadParameter(msg, param_hint="--model")
        if not 0 <= unit <= 247:
            raise typer.BadParameter("a Modbus unit id is 0..247", param_hint="--unit")
        ZoneInfo(tz)  # fail fast on an unknown zone
        try:
            asyncio.run(
                run_standalone(
                    host=host,
                    port=port,
                    unit_id=unit,
                    model=model,
                    tz=tz,
                    pv_peak_w=pv_peak_w,
                    base_address=base_address,
                    duration_s=duration,
                )
            )
        except KeyboardInterrupt:
            typer.echo("virtual meter stopped")
