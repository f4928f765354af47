"""The policy under test: the real edge controller, on the in-process adapters."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

import structlog

from fuseguard.control.controller import Controller
from fuseguard.control.flex import FlexManagement
from fuseguard.control.plug_settings import PlugSettings
from fuseguard.control.ports import DeviceError, SupportsLifecycle
from fuseguard.control.targets import EvseTargets
from fuseguard.scenario.baselines import PolicyContext
from fuseguard.scenario.site import scenario_controller_config

log = structlog.get_logger(__name__)


class FuseguardPolicy:
    """Runs :class:`fuseguard.control.controller.Controller` exactly as the edge does: its config
    comes from the scenario's site through the edge's one config translation; runtime plug
    settings (a car's announced departure) go through the edge's one settings path; the drivers
    are started before the controller runs and closed after it, as ``edge.py`` does (a charger
    driver's start arms the charger-side watchdog)."""

    name = "fuseguard"

    def __init__(self, ctx: PolicyContext, *, flex: FlexManagement, targets: EvseTargets) -> None:
        config = scenario_controller_config(ctx.scenario)
        self._clock = ctx.clock
        self._drivers = list(ctx.chargers.values())
        self.plug_settings = PlugSettings(config.chargers)
        self.controller = Controller(
            clock=ctx.clock,
            config=config,
            meter=ctx.meter,
            chargers=ctx.chargers,
            flex=flex,
            targets=targets,
            circuit_meters=ctx.circuit_meters,
            pv_meter=ctx.pv_meter,
            plug_settings=self.plug_settings,
        )

    def announce(self, charger_id: str, depart_s: float, need_wh: float) -> None:
        """The driver of the car at ``charger_id`` announces its departure (site time) and
        energy need, as the web, MQTT or EVSE settings would."""
        now = self._clock.now()
        at = now + timedelta(seconds=depart_s - self._clock.monotonic())
        self.plug_settings.set_departure(charger_id, at, need_wh, now=now, source="scenario")

    async def run(self) -> None:
        """Start the drivers, then run the control loop until cancelled; close them after."""
        started = await start_drivers(self._drivers)
        try:
            await self.controller.run()
        finally:
            for drv in reversed(started):
                await drv.close()


async def start_drivers(drivers: Iterable[object]) -> list[SupportsLifecycle]:
    """Start every driver that needs it, in order (``edge.py``'s ``_start_drivers``); returns
    the ones started. A driver whose start fails (a charger faulty at start-up) is logged and
    left unstarted: its watchdog stays off, the edge runs on (a real edge would not start)."""
    started: list[SupportsLifecycle] = []
    for drv in drivers:
        if not isinstance(drv, SupportsLifecycle):
            continue
        try:
            await drv.start()
        except DeviceError as err:
            log.warning("driver_start_failed", device=getattr(drv, "name", "?"), reason=str(err))
            continue
        started.append(drv)
    return started
