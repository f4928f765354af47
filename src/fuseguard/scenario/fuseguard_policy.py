"""The policy under test: the real edge controller, on the in-process adapters."""

from __future__ import annotations

from datetime import timedelta

from fuseguard.control.controller import Controller
from fuseguard.control.flex import FlexManagement
from fuseguard.control.plug_settings import PlugSettings
from fuseguard.control.targets import EvseTargets
from fuseguard.scenario.baselines import PolicyContext
from fuseguard.scenario.site import scenario_controller_config


class FuseguardPolicy:
    """Runs :class:`fuseguard.control.controller.Controller` exactly as the edge does: its config
    comes from the scenario's site through the edge's one config translation; runtime plug
    settings (a car's announced departure) go through the edge's one settings path."""

    name = "fuseguard"

    def __init__(self, ctx: PolicyContext, *, flex: FlexManagement, targets: EvseTargets) -> None:
        config = scenario_controller_config(ctx.scenario)
        self._clock = ctx.clock
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
        """Run the control loop until cancelled."""
        await self.controller.run()
