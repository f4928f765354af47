"""A connector of the virtual OCPP charge point as the other virtual chargers' plugs."""

from __future__ import annotations

from fuseguard.sim.ocpp.station import VirtualOcppStation
from fuseguard.sim.vehicle import SimVehicle


class OcppPlug:
    """One connector of a virtual OCPP charge point with the ``plug_in(car)`` / ``unplug()``
    of the other virtual chargers (the demo's car traffic)."""

    def __init__(self, station: VirtualOcppStation, connector_id: int) -> None:
        self.station = station
        self.connector_id = connector_id

    def plug_in(self, car: SimVehicle) -> None:
        self.station.plug_in(self.connector_id, car)

    def unplug(self) -> None:
        self.station.unplug(self.connector_id)


__all__ = ["OcppPlug"]
