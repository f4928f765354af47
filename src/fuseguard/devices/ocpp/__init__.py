"""OCPP 1.6J: fuseguard as the central system of smart-charging charge points.

See ``docs/devices/ocpp.md``.

``server`` (WebSocket server, handshake security), ``session`` (one connection: the ``ocpp``
library's ChargePoint with fuseguard's handlers), ``station`` (one charge point across its
connections: configuration, safe and lease profiles), ``connector`` (the controller's ``Charger``),
``wire`` (OCPP values <-> domain values, profile shapes).
"""

from fuseguard.devices.ocpp.connector import OcppConnector
from fuseguard.devices.ocpp.server import OcppCentralSystem
from fuseguard.devices.ocpp.station import Station, StationConfig

__all__ = ["OcppCentralSystem", "OcppConnector", "Station", "StationConfig"]
