"""One connector of an OCPP charge point as the controller sees it: a ``Charger``.

Reads come from what the charge point last reported (StatusNotification, MeterValues): they never
wait on the network. ``set_current_limit`` installs (or renews) the lease profile and waits for the
charge point's answer. ``start``/``close`` share the one central system among all connectors
(``SupportsLifecycle``): the server must listen before the controller's first read.
"""

from __future__ import annotations

from fuseguard.devices.ocpp.server import OcppCentralSystem
from fuseguard.devices.ocpp.station import Station
from fuseguard.model.samples import ChargerSample


class OcppConnector:
    """``Charger`` + ``SupportsLifecycle`` for connector ``connector_id`` of ``station``."""

    def __init__(self, server: OcppCentralSystem, station: Station, connector_id: int) -> None:
        if connector_id not in station.connectors:
            msg = f"{station.name} has no connector {connector_id}"
            raise ValueError(msg)
        self.server = server
        self.station = station
        self.connector_id = connector_id
        self._started = False

    @property
    def name(self) -> str:
        """For logs."""
        return f"{self.station.name}/{self.connector_id}"

    async def start(self) -> None:
        """Start the shared central system (once for all connectors)."""
        if not self._started:
            await self.server.acquire()
            self._started = True

    async def close(self) -> None:
        """Release the shared central system (the last connector stops it). Never raises."""
        if self._started:
            self._started = False
            await self.server.release()

    async def read(self) -> ChargerSample:
        """State and measurements as last reported; DeviceConnectionError when not connected."""
        return self.station.sample(self.connector_id)

    async def set_current_limit(self, current_a: int) -> None:
        """The live limit in A per phase (0 pauses), as the lease profile."""
        await self.station.set_limit(self.connector_id, current_a)


__all__ = ["OcppConnector"]
