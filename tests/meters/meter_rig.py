"""A site with a settable load, metered by a virtual meter served on a loopback port."""

from __future__ import annotations

from dataclasses import dataclass, field

from fuseguard.devices.meters import ModbusMeter, ModbusTransport, SunSpecClient
from fuseguard.model.clock import RealClock
from fuseguard.model.phases import ZERO, Phases
from fuseguard.sim.meters import (
    MeterFaults,
    MeterModbusServer,
    PvInverterSource,
    SiteMeter,
    VirtualModbusMeter,
    VirtualSunSpecInverter,
    VirtualSunSpecMeter,
)
from fuseguard.sim.site import MAIN, SiteModel
from fuseguard.wire.meters import builtin_map


@dataclass
class SettableLoad:
    """A component drawing (positive) or feeding (negative) a set current per phase."""

    circuit: str = MAIN
    current: Phases = ZERO

    def tick(self, t_s: float, dt_s: float) -> None:
        """Nothing to advance."""

    def grid_current_a(self) -> Phases:
        """The set current."""
        return self.current


@dataclass
class Pv:
    """A PV plant whose output is set by the test."""

    circuit: str = MAIN
    power_w: float = 0.0
    voltage_v: float = 230.0

    def tick(self, t_s: float, dt_s: float) -> None:
        """Nothing to advance."""

    def grid_current_a(self) -> Phases:
        """Balanced feed-in."""
        return Phases.uniform(-self.power_w / (3 * self.voltage_v))


@dataclass
class Rig:
    site: SiteModel
    load: SettableLoad
    faults: MeterFaults
    server: MeterModbusServer
    device: VirtualModbusMeter | VirtualSunSpecMeter | VirtualSunSpecInverter
    source: SiteMeter | PvInverterSource
    transports: list[ModbusTransport] = field(default_factory=list)
    pv: Pv | None = None

    def set_load(self, current: Phases) -> None:
        self.load.current = current
        self.site.tick()

    def transport(self, timeout_s: float = 1.0) -> ModbusTransport:
        t = ModbusTransport("127.0.0.1", self.server.port, 1, request_timeout_s=timeout_s)
        self.transports.append(t)
        return t

    async def close(self) -> None:
        for t in self.transports:
            await t.close()
        await self.server.close()


def _site() -> tuple[SiteModel, SettableLoad]:
    site = SiteModel(RealClock())
    load = SettableLoad()
    site.add(load)
    site.tick()
    return site, load


async def modbus_rig(model: str) -> Rig:
    site, load = _site()
    faults = MeterFaults(f"virtual-{model}", site.clock, slow_delay_s=1.0)
    source = SiteMeter(site)
    device = VirtualModbusMeter(builtin_map(model), source, faults)
    server = MeterModbusServer(device, port=0)
    await server.start()
    return Rig(site, load, faults, server, device, source)


async def sunspec_meter_rig(base_address: int = 40000, model_id: int = 203) -> Rig:
    site, load = _site()
    faults = MeterFaults("virtual-sunspec-meter", site.clock, slow_delay_s=1.0)
    source = SiteMeter(site)
    device = VirtualSunSpecMeter(source, faults, model_id=model_id, base_address=base_address)
    server = MeterModbusServer(device, port=0)
    await server.start()
    return Rig(site, load, faults, server, device, source)


async def sunspec_inverter_rig(*, with_701: bool = True, base_address: int = 40000) -> Rig:
    site, load = _site()
    pv = Pv()
    site.add(pv)
    faults = MeterFaults("virtual-sunspec-inverter", site.clock, slow_delay_s=1.0)
    source = PvInverterSource(site, pv)
    device = VirtualSunSpecInverter(source, faults, with_701=with_701, base_address=base_address)
    server = MeterModbusServer(device, port=0)
    await server.start()
    return Rig(site, load, faults, server, device, source, pv=pv)


def meter(rig: Rig, model: str, **kwargs: float) -> ModbusMeter:
    return ModbusMeter(rig.transport(kwargs.pop("timeout_s", 1.0)), builtin_map(model), **kwargs)  # type: ignore[arg-type]


def sunspec_client(rig: Rig, timeout_s: float = 1.0) -> SunSpecClient:
    return SunSpecClient(rig.transport(timeout_s))
