"""Driver for the CEMM energy monitor's Local Open API (cemm.nl), plus UDP discovery.

* :class:`CemmClient` – async client (``@dataclass(kw_only=True)``, injected aiohttp session, the
  one HTTP transport of :mod:`fuseguard.devices.http`) returning typed models.
* :func:`discover` – broadcast ``cemm_query`` to UDP 9777 and collect the JSON replies.
* :class:`CemmGridMeter` – the controller's :class:`~fuseguard.control.ports.GridMeter` on one
  alias (``p1`` by default).

Wire shapes (paths, channels, JSON models) live in :mod:`fuseguard.wire.cemm`, shared with the
virtual CEMM. Errors are :mod:`fuseguard.control.ports` exceptions: connection refused/reset ->
:class:`DeviceConnectionError`, no answer in time -> :class:`DeviceTimeoutError`, error status,
non-JSON, NaN or a wrong shape -> :class:`DeviceResponseError` (404 -> :class:`CemmNotFoundError`).
Garbage never comes back as numbers.
"""

from fuseguard.devices.cemm.client import (
    CemmClient,
    CemmGridMeter,
    CemmNotFoundError,
    HistoryPeriod,
)
from fuseguard.devices.cemm.discovery import discover
from fuseguard.devices.cemm.models import (
    CemmConnection,
    CemmDeviceInfo,
    CemmDiscovery,
    CemmHistory,
    CemmHistoryPoint,
    CemmReading,
    CemmRealtime,
    parse_connections,
    parse_device_info,
    parse_discovery,
    parse_history,
    parse_realtime,
)
from fuseguard.wire.cemm import API, DISCOVERY_PORT

__all__ = [
    "API",
    "DISCOVERY_PORT",
    "CemmClient",
    "CemmConnection",
    "CemmDeviceInfo",
    "CemmDiscovery",
    "CemmGridMeter",
    "CemmHistory",
    "CemmHistoryPoint",
    "CemmNotFoundError",
    "CemmReading",
    "CemmRealtime",
    "HistoryPeriod",
    "discover",
    "parse_connections",
    "parse_device_info",
    "parse_discovery",
    "parse_history",
    "parse_realtime",
]
