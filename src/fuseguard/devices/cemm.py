"""Driver for the CEMM energy monitor's Local Open API (cemm.nl), plus UDP discovery.

* :class:`CemmClient` – async client (injected aiohttp session, one :meth:`CemmClient.request`,
  ``asyncio.timeout`` on every call) returning typed models.
* :func:`discover` – broadcast ``cemm_query`` to UDP 9777 and collect the JSON replies.
* :class:`CemmGridMeter` – the controller's :class:`~fuseguard.control.ports.GridMeter` on one
  alias (``p1`` by default).

Errors are :mod:`fuseguard.control.ports` exceptions: connection refused/reset ->
:class:`DeviceConnectionError`, no answer in time -> :class:`DeviceTimeoutError`, error status,
non-JSON, NaN or a wrong shape -> :class:`DeviceResponseError` (404 ->
:class:`CemmNotFoundError`). Garbage never comes back as numbers.
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from types import TracebackType
from typing import Any, Self, TypeVar

import aiohttp
import structlog

from fuseguard.control.ports import (
    DeviceConnectionError,
    DeviceResponseError,
    DeviceTimeoutError,
)
from fuseguard.model.samples import MeterSample

log = structlog.get_logger(__name__)

_T = TypeVar("_T")

API = "/open-api/v1"
DISCOVERY_PORT = 9777


class CemmNotFoundError(DeviceResponseError):
    """404: the alias, channel or path does not exist on this CEMM."""


class HistoryPeriod(StrEnum):
    """Resolution of ``/<alias>/data/<period>/``."""

    DAY = "day"
    MONTH = "month"
    YEAR = "year"


# --- models ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CemmDeviceInfo:
    """``GET /open-api/v1/``."""

    mac: str
    name: str
    type: str
    version: str
    core: str


@dataclass(frozen=True, slots=True)
class CemmConnection:
    """One entry of ``GET /open-api/v1/io``."""

    io_id: int
    port: int
    type: str
    alias: str


@dataclass(frozen=True, slots=True)
class CemmReading:
    """One realtime channel ``[timestamp_ms, value]``; ``[0, 0]`` means *no data*."""

    timestamp_ms: int
    value: float

    @property
    def has_data(self) -> bool:
        """False for the ``[0, 0]`` placeholder of a channel without data."""
        return self.timestamp_ms > 0

    @property
    def timestamp(self) -> datetime | None:
        """Telegram time (UTC), None without data."""
        return _ms_to_dt(self.timestamp_ms) if self.has_data else None


@dataclass(frozen=True, slots=True)
class CemmRealtime:
    """``GET /open-api/v1/<alias>/realtime/``: ``data`` and ``totals`` (may be empty)."""

    alias: str
    data: dict[str, CemmReading]
    totals: dict[str, CemmReading]

    def channel(self, name: str) -> CemmReading | None:
        """A channel with data, from ``data`` first, else ``totals``; None when absent."""
        for source in (self.data, self.totals):
            reading = source.get(name)
            if reading is not None and reading.has_data:
                return reading
        return None

    @property
    def power_w(self) -> float | None:
        """``electric_power`` in W (negative = feed-in), None without data."""
        reading = self.channel("electric_power")
        return None if reading is None else reading.value

    @property
    def timestamp(self) -> datetime | None:
        """Time of the newest telegram in ``data``."""
        stamps = [r.timestamp_ms for r in self.data.values() if r.has_data]
        return _ms_to_dt(max(stamps)) if stamps else None

    def _register_sum_kwh(self, names: tuple[str, str]) -> float | None:
        readings = [self.channel(n) for n in names]
        values = [r.value for r in readings if r is not None]
        return sum(values) if values else None

    @property
    def energy_import_kwh(self) -> float | None:
        """t1 + t2 (kWh), None when the alias has neither."""
        return self._register_sum_kwh(("t1", "t2"))

    @property
    def energy_export_kwh(self) -> float | None:
        """t3 + t4 (kWh), None when the alias has neither."""
        return self._register_sum_kwh(("t3", "t4"))


@dataclass(frozen=True, slots=True)
class CemmHistoryPoint:
    """One history sample; ``value`` None only for the day's 23:59:59 sentinel."""

    timestamp_ms: int
    value: float | None

    @property
    def timestamp(self) -> datetime:
        """Sample time (UTC)."""
        return _ms_to_dt(self.timestamp_ms)


@dataclass(frozen=True, slots=True)
class CemmHistory:
    """``GET /open-api/v1/<alias>/data/<period>/``; series newest first, as sent."""

    io_id: str
    time_s: int
    channels: dict[str, tuple[CemmHistoryPoint, ...]]

    def values(self, channel: str) -> list[CemmHistoryPoint]:
        """The samples that carry a value (drops the day sentinel), oldest first."""
        return sorted(
            (p for p in self.channels.get(channel, ()) if p.value is not None),
            key=lambda p: p.timestamp_ms,
        )


@dataclass(frozen=True, slots=True)
class CemmDiscovery:
    """One discovery reply."""

    ip: str
    mac: str
    version: str
    type: str
    init_state: int
    source: tuple[str, int]


# --- parsing (pure; raises ValueError, the client maps it) -------------------------------------


def _ms_to_dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000.0, UTC)


def _reject_constant(name: str) -> Any:
    msg = f"{name} is not a number"
    raise ValueError(msg)


def loads_strict(text: str) -> Any:
    """``json.loads`` that refuses NaN/Infinity."""
    return json.loads(text, parse_constant=_reject_constant)


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        msg = f"{what} is {type(value).__name__}, expected an object"
        raise ValueError(msg)
    return value


def _num(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        msg = f"{what} is {value!r}, expected a number"
        raise ValueError(msg)
    result = float(value)
    if not math.isfinite(result):
        msg = f"{what} is not finite"
        raise ValueError(msg)
    return result


def _ts(value: Any, what: str) -> int:
    ts = _num(value, what)
    if ts < 0 or ts != int(ts):
        msg = f"{what} {value!r} is not a millisecond timestamp"
        raise ValueError(msg)
    return int(ts)


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        msg = f"{what} is {value!r}, expected a string"
        raise ValueError(msg)
    return value


def _int(value: Any, what: str) -> int:
    number = _num(value, what)
    if number != int(number):
        msg = f"{what} is {value!r}, expected an integer"
        raise ValueError(msg)
    return int(number)


def parse_device_info(body: Any) -> CemmDeviceInfo:
    """Parse the root body."""
    data = _obj(_obj(body, "body").get("data"), "data")
    return CemmDeviceInfo(
        **{k: _str(data.get(k), k) for k in ("mac", "name", "type", "version", "core")}
    )


def parse_connections(body: Any) -> list[CemmConnection]:
    """Parse the ``/io`` body."""
    data = _obj(body, "body").get("data")
    if not isinstance(data, list):
        msg = "io data is not a list"
        raise ValueError(msg)
    out = []
    for i, item in enumerate(data):
        entry = _obj(item, f"io[{i}]")
        out.append(
            CemmConnection(
                io_id=_int(entry.get("io_id"), f"io[{i}].io_id"),
                port=_int(entry.get("port"), f"io[{i}].port"),
                type=_str(entry.get("type"), f"io[{i}].type"),
                alias=_str(entry.get("alias"), f"io[{i}].alias"),
            )
        )
    return out


def _readings(block: Any, what: str) -> dict[str, CemmReading]:
    out: dict[str, CemmReading] = {}
    for name, pair in _obj(block, what).items():
        if not isinstance(pair, list) or len(pair) != 2:
            msg = f"{what}.{name} is {pair!r}, expected [timestamp_ms, value]"
            raise ValueError(msg)
        out[name] = CemmReading(
            _ts(pair[0], f"{what}.{name} timestamp"), _num(pair[1], f"{what}.{name}")
        )
    return out


def parse_realtime(alias: str, body: Any) -> CemmRealtime:
    """Parse a realtime body (``totals`` optional, as in the doc example)."""
    obj = _obj(body, "body")
    if "data" not in obj:
        msg = "realtime body has no data"
        raise ValueError(msg)
    totals = _readings(obj["totals"], "totals") if "totals" in obj else {}
    return CemmRealtime(alias=alias, data=_readings(obj["data"], "data"), totals=totals)


def parse_history(body: Any) -> CemmHistory:
    """Parse a day/month/year body."""
    obj = _obj(body, "body")
    io_id = obj.get("io_id")
    if isinstance(io_id, bool) or not isinstance(io_id, str | int):
        msg = f"io_id is {io_id!r}"
        raise ValueError(msg)
    channels: dict[str, tuple[CemmHistoryPoint, ...]] = {}
    for name, series in _obj(obj.get("data"), "data").items():
        if not isinstance(series, list):
            msg = f"data.{name} is not a list"
            raise ValueError(msg)
        points = []
        for i, pair in enumerate(series):
            if not isinstance(pair, list) or len(pair) != 2:
                msg = f"data.{name}[{i}] is {pair!r}, expected [timestamp_ms, value]"
                raise ValueError(msg)
            ts = _ts(pair[0], f"data.{name}[{i}] timestamp")
            value = None if pair[1] is None else _num(pair[1], f"data.{name}[{i}]")
            points.append(CemmHistoryPoint(ts, value))
        channels[name] = tuple(points)
    return CemmHistory(io_id=str(io_id), time_s=_int(obj.get("time"), "time"), channels=channels)


def parse_discovery(payload: bytes, source: tuple[str, int]) -> CemmDiscovery:
    """Parse one discovery datagram."""
    obj = _obj(loads_strict(payload.decode("utf-8")), "discovery reply")
    return CemmDiscovery(
        ip=_str(obj.get("ip"), "ip"),
        mac=_str(obj.get("mac"), "mac"),
        version=_str(obj.get("version"), "version"),
        type=_str(obj.get("type"), "type"),
        init_state=_int(obj.get("init_state", 0), "init_state"),
        source=source,
    )


# --- client ------------------------------------------------------------------------------------


class CemmClient:
    """Async client of one CEMM's Local Open API (plain HTTP, no auth)."""

    def __init__(
        self,
        host: str,
        port: int = 80,
        *,
        session: aiohttp.ClientSession | None = None,
        request_timeout_s: float = 5.0,
        trailing_slash: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.request_timeout_s = request_timeout_s
        self.trailing_slash = trailing_slash
        self._session = session
        self._close_session = False

    @property
    def device(self) -> str:
        """``host:port``, used in log events and error messages."""
        return f"cemm {self.host}:{self.port}"

    async def request(self, path: str, params: dict[str, str] | None = None) -> Any:
        """GET ``/open-api/v1/<path>`` and return the parsed JSON (NaN refused)."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self._close_session = True
        url = f"http://{self.host}:{self.port}{API}/{path}"
        if self.trailing_slash and not url.endswith("/"):
            url += "/"
        try:
            async with asyncio.timeout(self.request_timeout_s):
                async with self._session.get(
                    url, params=params, headers={"Accept": "application/json"}
                ) as response:
                    text = await response.text()
                    status = response.status
                    content_type = response.content_type
        except TimeoutError as exc:
            log.warning("cemm_timeout", device=self.device, reason="timeout", path=path)
            msg = f"{self.device}: no answer within {self.request_timeout_s} s for {path!r}"
            raise DeviceTimeoutError(msg) from exc
        except (aiohttp.ClientError, OSError) as exc:
            log.warning("cemm_connection_error", device=self.device, reason=str(exc), path=path)
            msg = f"{self.device}: connection failed for {path!r}: {exc}"
            raise DeviceConnectionError(msg) from exc
        if status >= 400:
            detail = _error_detail(text)
            log.warning("cemm_http_error", device=self.device, reason=detail, status=status)
            msg = f"{self.device}: HTTP {status} for {path!r}: {detail}"
            if status == 404:
                raise CemmNotFoundError(msg)
            raise DeviceResponseError(msg)
        if content_type != "application/json":
            log.warning("cemm_bad_content_type", device=self.device, reason=content_type)
            msg = f"{self.device}: {path!r} answered {content_type!r}, not application/json"
            raise DeviceResponseError(msg)
        try:
            return loads_strict(text)
        except ValueError as exc:
            log.warning("cemm_garbage", device=self.device, reason=str(exc), path=path)
            msg = f"{self.device}: {path!r} answered invalid JSON: {exc}"
            raise DeviceResponseError(msg) from exc

    def _parsed(self, what: str, parse: Callable[[Any], _T], body: Any) -> _T:
        try:
            result = parse(body)
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("cemm_bad_shape", device=self.device, reason=str(exc), what=what)
            msg = f"{self.device}: unexpected {what} response: {exc}"
            raise DeviceResponseError(msg) from exc
        return result

    async def device_info(self) -> CemmDeviceInfo:
        """Root: MAC, name, type, firmware ``version`` and ``core``."""
        body = await self.request("")
        return self._parsed("device info", parse_device_info, body)

    async def connections(self) -> list[CemmConnection]:
        """``/io``: the configured connections (aliases)."""
        body = await self.request("io")
        return self._parsed("io", parse_connections, body)

    async def realtime(self, alias: str) -> CemmRealtime:
        """Latest telegram of ``alias``."""
        body = await self.request(f"{alias}/realtime")
        return self._parsed("realtime", lambda b: parse_realtime(alias, b), body)

    async def history(
        self, alias: str, period: HistoryPeriod | str, time_s: int | None = None
    ) -> CemmHistory:
        """Day/month/year history of ``alias``; ``time_s`` None = the current period."""
        per = HistoryPeriod(period)
        params = None if time_s is None else {"time": str(int(time_s))}
        body = await self.request(f"{alias}/data/{per.value}", params)
        return self._parsed("history", parse_history, body)

    async def close(self) -> None:
        """Close the session if this client created it."""
        if self._session is not None and self._close_session:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def _error_detail(text: str) -> str:
    try:
        body = json.loads(text)
    except ValueError:
        return text[:120]
    if isinstance(body, dict) and "error" in body:
        return str(body["error"])
    return text[:120]


# --- grid meter --------------------------------------------------------------------------------


class CemmGridMeter:
    """:class:`~fuseguard.control.ports.GridMeter` on one CEMM alias.

    A CEMM has no per-phase currents: samples carry ``current_a=None`` and the controller applies
    its phase assumption. ``stale`` is True when the telegram timestamp of ``electric_power`` did
    not advance since the previous read.
    """

    def __init__(self, client: CemmClient, alias: str = "p1") -> None:
        self.client = client
        self.alias = alias
        self._last_ts_ms: int | None = None

    async def read(self) -> MeterSample:
        """One sample from ``<alias>/realtime``."""
        realtime = await self.client.realtime(self.alias)
        power = realtime.data.get("electric_power")
        if power is None or not power.has_data:
            msg = f"{self.client.device}: alias {self.alias!r} has no electric_power data"
            log.warning("cemm_no_power", device=self.client.device, reason="no electric_power")
            raise DeviceResponseError(msg)
        stale = self._last_ts_ms is not None and power.timestamp_ms <= self._last_ts_ms
        if stale:
            log.info(
                "cemm_stale",
                device=self.client.device,
                reason="telegram timestamp did not advance",
                timestamp_ms=power.timestamp_ms,
            )
        else:
            self._last_ts_ms = power.timestamp_ms
        imported = realtime.energy_import_kwh
        exported = realtime.energy_export_kwh
        return MeterSample(
            timestamp=_ms_to_dt(power.timestamp_ms),
            power_w=power.value,
            current_a=None,
            energy_import_wh=None if imported is None else imported * 1000.0,
            energy_export_wh=None if exported is None else exported * 1000.0,
            stale=stale,
        )


# --- discovery ---------------------------------------------------------------------------------


class _DiscoveryProtocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.replies: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.replies.put_nowait((data, (str(addr[0]), int(addr[1]))))


async def discover(
    *,
    address: str = "255.255.255.255",
    port: int = DISCOVERY_PORT,
    duration_s: float = 5.0,
    bind_host: str = "0.0.0.0",
    bind_port: int = 0,
    max_replies: int | None = None,
) -> list[CemmDiscovery]:
    """Send ``cemm_query`` to ``address:port`` and collect replies for ``duration_s``.

    The vendor client binds 9777 itself; the default here binds an ephemeral port (replies are
    unicast to the sender). Our own echoed query and unparsable datagrams are ignored; replies
    are de-duplicated by MAC. ``max_replies`` returns early once that many CEMMs answered.
    """
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        _DiscoveryProtocol,
        local_addr=(bind_host, bind_port),
        family=socket.AF_INET,
        allow_broadcast=True,
    )
    found: dict[str, CemmDiscovery] = {}
    try:
        transport.sendto(b"cemm_query", (address, port))
        try:
            async with asyncio.timeout(duration_s):
                while max_replies is None or len(found) < max_replies:
                    data, source = await protocol.replies.get()
                    if data.strip() == b"cemm_query":
                        continue
                    try:
                        reply = parse_discovery(data, source)
                    except (ValueError, UnicodeDecodeError) as exc:
                        log.info("cemm_discovery_garbage", device=source[0], reason=str(exc))
                        continue
                    found.setdefault(reply.mac, reply)
        except TimeoutError:
            pass
    finally:
        transport.close()
    return list(found.values())
