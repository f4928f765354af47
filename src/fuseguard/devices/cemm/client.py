"""The CEMM Local Open API client and the grid meter on one alias."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

import structlog
from pydantic import BaseModel

from fuseguard.control.ports import DeviceResponseError, GridMeter
from fuseguard.devices.cemm.models import (
    CemmConnection,
    CemmDeviceInfo,
    CemmHistory,
    CemmRealtime,
    connections_of,
    device_info_of,
    history_of,
    ms_to_datetime,
    realtime_of,
)
from fuseguard.devices.http import DeviceHttpClient, DeviceNotFoundError, DeviceResponse
from fuseguard.devices.meters.checks import checked, required
from fuseguard.model.samples import MeterSample
from fuseguard.wire.cemm import (
    API,
    POWER_CHANNEL,
    HistoryBody,
    IoBody,
    Period,
    RealtimeBody,
    RootBody,
    electric_alias,
)
from fuseguard.wire.meters import Quantity

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=BaseModel)

#: Resolution of ``/<alias>/data/<period>/`` (the wire enum, under the driver's old name).
HistoryPeriod = Period


class CemmNotFoundError(DeviceNotFoundError):
    """404: the alias, channel or path does not exist on this CEMM."""


@dataclass(kw_only=True, eq=False)
class CemmClient(DeviceHttpClient):
    """Async client of one CEMM's Local Open API (plain HTTP, no auth).

    ``trailing_slash`` spells paths as the documentation does (``/io/``); the PyPI client calls
    them without, and a CEMM serves both.
    """

    host: str
    port: int = 80
    trailing_slash: bool = True

    _not_found = CemmNotFoundError

    @property
    def device(self) -> str:
        """``cemm host:port``, used in log events and error messages."""
        return f"cemm {self.host}:{self.port}"

    def _base_url(self) -> str:
        return f"http://{self.host}:{self.port}{API}"

    def _headers(self) -> dict[str, str]:
        return {"Accept": "application/json"}

    async def request(self, path: str, params: dict[str, str] | None = None) -> DeviceResponse:
        """GET ``/open-api/v1/<path>``; the answer's body is read but not yet parsed."""
        url_path = f"/{path}"
        if self.trailing_slash and not url_path.endswith("/"):
            url_path += "/"
        return await self._request("GET", url_path, params=params)

    async def _get(
        self, path: str, model: type[M], what: str, params: dict[str, str] | None = None
    ) -> M:
        response = await self.request(path, params)
        return response.parse(model, what, require_json_type=True)

    async def device_info(self) -> CemmDeviceInfo:
        """Root: MAC, name, type, firmware ``version`` and ``core``."""
        return device_info_of(await self._get("", RootBody, "device info"))

    async def connections(self) -> list[CemmConnection]:
        """``/io``: the configured connections (aliases)."""
        return connections_of(await self._get("io", IoBody, "io"))

    async def realtime(self, alias: str) -> CemmRealtime:
        """Latest telegram of ``alias``."""
        return realtime_of(alias, await self._get(f"{alias}/realtime", RealtimeBody, "realtime"))

    async def history(
        self, alias: str, period: Period | str, time_s: int | None = None
    ) -> CemmHistory:
        """Day/month/year history of ``alias``; ``time_s`` None = the current period."""
        per = Period(period)
        params = None if time_s is None else {"time": str(int(time_s))}
        body = await self._get(f"{alias}/data/{per.value}", HistoryBody, "history", params)
        return history_of(body)


@dataclass(eq=False)
class CemmGridMeter(GridMeter):
    """:class:`~fuseguard.control.ports.GridMeter` on one CEMM electricity alias.

    Any family: ``p1``, ``p1-usb``, ``emucs``, ``emucs-usb``, ``han``, ``dlms-usb``,
    ``s01``-``s03``, ``mb1``-``mb247`` or ``usage`` (ValueError for ``pulse-N``, ``p1-gas`` and
    unknown names).

    A CEMM has no per-phase currents: samples carry ``current_a=None`` and the controller applies
    its phase assumption. ``stale`` is True when the telegram timestamp of ``electric_power`` did
    not advance since the previous read.
    """

    client: CemmClient
    alias: str = "p1"
    _last_ts_ms: int | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        """Every electricity alias family is accepted; water/gas and unknown names are not."""
        electric_alias(self.alias)

    async def read(self) -> MeterSample:
        """One sample from ``<alias>/realtime``."""
        realtime = await self.client.realtime(self.alias)
        power = realtime.data.get(POWER_CHANNEL)
        device = self.client.device
        if power is None or not power.has_data:
            msg = f"{device}: alias {self.alias!r} has no electric_power data"
            log.warning("cemm_no_power", device=device, reason="no electric_power")
            raise DeviceResponseError(msg)
        imported = realtime.energy_import_kwh
        exported = realtime.energy_export_kwh
        # the plausibility bounds of every meter driver (the wire model only ensures finite):
        # -1e15 W read as a feed-in of 1e15 W, i.e. no building load, before
        power_w = required(device, Quantity.ACTIVE_POWER_W, POWER_CHANNEL, power.value)
        import_wh = checked(
            device, Quantity.ENERGY_IMPORT_WH, "t1+t2", None if imported is None else imported * 1e3
        )
        export_wh = checked(
            device, Quantity.ENERGY_EXPORT_WH, "t3+t4", None if exported is None else exported * 1e3
        )
        stale = self._last_ts_ms is not None and power.timestamp_ms <= self._last_ts_ms
        if stale:  # expected: the edge polls faster than the meter publishes
            log.debug(
                "cemm_stale",
                device=device,
                reason="telegram timestamp did not advance",
                timestamp_ms=power.timestamp_ms,
            )
        else:
            self._last_ts_ms = power.timestamp_ms
        return MeterSample(
            timestamp=ms_to_datetime(power.timestamp_ms),
            power_w=power_w,
            current_a=None,
            energy_import_wh=import_wh,
            energy_export_wh=export_wh,
            stale=stale,
        )


__all__ = ["CemmClient", "CemmGridMeter", "CemmNotFoundError", "HistoryPeriod"]
