"""The policy under test: the real edge controller, on the in-process adapters."""

from __future__ import annotations

from typing import Any

from fuseguard.scenario.baselines import PolicyContext
from fuseguard.scenario.config import MAIN


class FuseguardPolicy:
    """Runs :class:`fuseguard.control.controller.Controller` exactly as the edge does."""

    name = "fuseguard"

    def __init__(self, ctx: PolicyContext, *, flex: Any, targets: Any) -> None:
        from fuseguard.control.controller import (
            ChargerSpec,
            CircuitSpec,
            Controller,
            ControllerConfig,
        )

        sc = ctx.scenario
        circuits = [CircuitSpec(id=MAIN, parent=None, fuse_a=sc.site.fuse_a)]
        circuits += [CircuitSpec(id=c.id, parent=c.parent, fuse_a=c.fuse_a) for c in sc.circuits]
        chargers = [
            ChargerSpec(
                id=ch.id,
                circuit=ch.circuit,
                rotation=ch.rotation,
                min_a=6,
                max_a=ch.max_a,
                mode=ch.mode,
                priority=ch.priority,
                evse_uuid=ch.evse_uuid,
            )
            for ch in sc.chargers
        ]
        config = ControllerConfig(
            circuits=circuits,
            chargers=chargers,
            voltage_v=sc.site.voltage_v,
            meter_period_s=sc.site.meter_period_s,
            meter_phase_assumption=sc.site.meter_phase_assumption,
        )
        self.controller = Controller(
            clock=ctx.clock,
            config=config,
            meter=ctx.meter,
            chargers=ctx.chargers,
            flex=flex,
            targets=targets,
        )

    async def run(self) -> None:
        """Run the control loop until cancelled."""
        await self.controller.run()
