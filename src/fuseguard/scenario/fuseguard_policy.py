"""The policy under test: the real edge controller, on the in-process adapters."""

from __future__ import annotations

from fuseguard.control.controller import Controller
from fuseguard.control.flex import FlexManagement
from fuseguard.control.targets import EvseTargets
from fuseguard.scenario.baselines import PolicyContext
from fuseguard.scenario.site import scenario_controller_config


class FuseguardPolicy:
    """Runs :class:`fuseguard.control.controller.Controller` exactly as the edge does: its config
    comes from the scenario's site through the edge's one config translation."""

    name = "fuseguard"

    def __init__(self, ctx: PolicyContext, *, flex: FlexManagement, targets: EvseTargets) -> None:
        self.controller = Controller(
            clock=ctx.clock,
            config=scenario_controller_config(ctx.scenario),
            meter=ctx.meter,
            chargers=ctx.chargers,
            flex=flex,
            targets=targets,
            circuit_meters=ctx.circuit_meters,
            pv_meter=ctx.pv_meter,
        )

    async def run(self) -> None:
        """Run the control loop until cancelled."""
        await self.controller.run()
