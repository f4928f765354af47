"""``fuseguard sim cemm``: a standalone virtual CEMM on a small simulated house.

The lead wires :func:`register` into the ``sim`` Typer group.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import typer

from fuseguard.model.clock import Clock
from fuseguard.model.phases import Phases
from fuseguard.sim.cemm_connections import DEFAULT_CONNECTIONS, parse_connections
from fuseguard.sim.cemm_model import DEFAULT_TZ, CemmModel
from fuseguard.sim.site import MAIN, BaseLoad, SiteModel

_DAY_S = 86400.0


@dataclass(slots=True)
class LocalTimePv:
    """A PV plant whose half-sine day follows local clock time (not site time since start)."""

    peak_w: float
    offset_s: float  # local seconds-of-day at site time 0
    sunrise_s: float = 7 * 3600.0
    sunset_s: float = 20 * 3600.0
    voltage_v: float = 230.0
    circuit: str = MAIN
    power_w: float = 0.0

    def tick(self, t_s: float, dt_s: float) -> None:
        """Follow the sun."""
        day_s = (self.offset_s + t_s) % _DAY_S
        if self.sunrise_s < day_s < self.sunset_s:
            x = (day_s - self.sunrise_s) / (self.sunset_s - self.sunrise_s)
            self.power_w = self.peak_w * math.sin(math.pi * x)
        else:
            self.power_w = 0.0

    def grid_current_a(self) -> Phases:
        """Balanced feed-in (negative current)."""
        return Phases.uniform(-self.power_w / (3.0 * self.voltage_v))


def house_load_a(offset_s: float) -> BaseLoad:
    """A plausible household base load: night ~1 A, morning and evening peaks, unbalanced."""

    def profile(t_s: float) -> Phases:
        h = ((offset_s + t_s) % _DAY_S) / 3600.0
        morning = 4.0 * math.exp(-(((h - 7.5) / 1.0) ** 2))
        evening = 9.0 * math.exp(-(((h - 19.0) / 2.0) ** 2))
        base = 1.2 + morning + evening
        return Phases(base * 1.2, base * 0.9, base * 0.7)

    return BaseLoad(profile=profile)


def build_standalone(
    clock: Clock,
    *,
    tz: str = DEFAULT_TZ,
    pv_peak_w: float = 5000.0,
    gas_m3_per_h: float = 0.05,
    period_s: float = 1.0,
    connections: str = ",".join(DEFAULT_CONNECTIONS),
) -> tuple[SiteModel, CemmModel]:
    """A site with house load and PV, metered by a CEMM with the connection set ``connections``.

    The default is p1 + water on ``pulse-1`` + PV on ``mb1`` + ``usage``
    (:mod:`fuseguard.sim.cemm_connections`).
    """
    zone = ZoneInfo(tz)
    local: datetime = clock.now().astimezone(zone)
    offset_s = local.hour * 3600.0 + local.minute * 60.0 + local.second
    site = SiteModel(clock, period_s=period_s)
    site.add(house_load_a(offset_s))
    pv = LocalTimePv(peak_w=pv_peak_w, offset_s=offset_s)
    site.add(pv)
    model = CemmModel.for_site(
        site,
        pv=pv,
        gas_m3_per_h=gas_m3_per_h,
        initial_kwh=(5120.412, 6033.871, 1410.223, 2987.505),
        initial_gas_m3=4211.38,
        connections=connections,
        tz=zone,
    )
    return site, model


async def run_standalone(
    *,
    host: str,
    port: int,
    discovery_port: int | None,
    tz: str,
    pv_peak_w: float,
    connections: str = ",".join(DEFAULT_CONNECTIONS),
) -> None:
    """Serve the standalone virtual CEMM until cancelled (Ctrl-C)."""
    import asyncio

    import structlog

    from fuseguard.model.clock import RealClock
    from fuseguard.sim.cemm_server import serve_cemm

    site, model = build_standalone(RealClock(), tz=tz, pv_peak_w=pv_peak_w, connections=connections)
    handle = await serve_cemm(model, host, port, discovery_port)
    structlog.get_logger(__name__).info(
        "cemm_standalone_ready",
        device=model.identity.mac,
        reason="serving",
        url=f"{handle.base_url}/open-api/v1/",
        discovery_port=handle.discovery_port,
    )
    runner = asyncio.get_running_loop().create_task(site.run())
    try:
        await handle.task
    finally:
        runner.cancel()
        await handle.close()


def register(app: typer.Typer) -> None:
    """Add ``cemm`` to the ``sim`` command group."""

    @app.command("cemm")
    def cemm(
        port: int = typer.Option(..., "--port", help="HTTP port of the Local Open API."),
        discovery_port: int = typer.Option(
            9777, "--discovery-port", help="UDP discovery port (0 = disabled)."
        ),
        tz: str = typer.Option(DEFAULT_TZ, "--tz", help="Local time zone of day/month/year."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to bind."),
        pv_peak_w: float = typer.Option(5000.0, "--pv-peak-w", help="PV peak power (W)."),
        connections: str = typer.Option(
            ",".join(DEFAULT_CONNECTIONS),
            "--connections",
            help="Comma-separated aliases, each optionally alias=role (grid, pv, usage, water, "
            "gas): p1, p1-usb, emucs, emucs-usb, han, dlms-usb, p1-gas, s01-s03, pulse-1 - "
            "pulse-3, mbX, usage.",
        ),
    ) -> None:
        """Virtual CEMM energy monitor (P1 + water + PV meter + usage) on a simulated house."""
        import asyncio

        ZoneInfo(tz)  # fail fast on an unknown zone
        try:
            parse_connections(connections)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--connections") from exc
        try:
            asyncio.run(
                run_standalone(
                    host=host,
                    port=port,
                    discovery_port=discovery_port or None,
                    tz=tz,
                    pv_peak_w=pv_peak_w,
                    connections=connections,
                )
            )
        except KeyboardInterrupt:
            typer.echo("virtual CEMM stopped")
