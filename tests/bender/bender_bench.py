"""Test bench: a virtual Bender on loopback, on virtual time, and drivers talking to it."""

from __future__ import annotations

from dataclasses import dataclass

from fuseguard.devices.bender import BenderCharger
from fuseguard.model.clock import VirtualClock
from fuseguard.sim.bender import BenderConnector, BenderController, BenderDeviceConfig, Firmware
from fuseguard.sim.bender_serve import BenderServerHandle, serve_bender
from fuseguard.sim.site import SiteModel


@dataclass
class Bench:
    """A served virtual controller whose model advances only when the test says so."""

    clock: VirtualClock
    controller: BenderController
    site: SiteModel
    handle: BenderServerHandle

    @property
    def c1(self) -> BenderConnector:
        return self.controller.connector(1)

    async def advance(self, seconds: float, step_s: float = 1.0) -> None:
        """Advance virtual time in ``step_s`` site ticks."""
        elapsed = 0.0
        while elapsed < seconds - 1e-9:
            dt = min(step_s, seconds - elapsed)
            await self.clock.advance(dt)
            self.site.tick()
            elapsed += dt

    def driver(self, **kwargs: object) -> BenderCharger:
        params: dict[str, object] = {
            "clock": self.clock,
            "request_timeout_s": 0.3,
            "retry_attempts": 2,
            "retry_backoff_s": 0.0,
        }
        params.update(kwargs)
        return BenderCharger(
            host="127.0.0.1",
            rest_port=self.handle.rest_port,
            modbus_port=self.handle.modbus_port,
            **params,  # type: ignore[arg-type]
        )


async def make_bench(
    firmware: Firmware = Firmware.V5_33, connectors: int = 1, **config: object
) -> Bench:
    clock = VirtualClock()
    cfg = BenderDeviceConfig(firmware=firmware, **config)  # type: ignore[arg-type]
    controller = BenderController(clock, cfg, connector_count=connectors)
    site = SiteModel(clock)
    for c in controller.connectors:
        site.add(c)
    handle = await serve_bender(controller, "127.0.0.1", 0, 0)
    return Bench(clock, controller, site, handle)


def count_writes(connector: BenderConnector) -> list[tuple[int, list[int]]]:
    """Record every Modbus write that reaches ``connector``."""
    writes: list[tuple[int, list[int]]] = []
    original = connector.write_registers

    def recording(address: int, values: list[int]) -> None:
        writes.append((address, list(values)))
        original(address, values)

    connector.write_registers = recording  # type: ignore[method-assign]
    return writes
