"""CEMM answers in domain terms: typed, finite, built from the wire models of ``wire.cemm``.

The ``parse_*`` functions take a decoded JSON value (what ``json.loads`` returns) and raise
``ValueError`` (pydantic's ``ValidationError``) for anything that is not device data; the client
validates raw bodies through the same wire models and maps failures onto ``DeviceResponseError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fuseguard.wire.cemm import (
    EXPORT_CHANNELS,
    IMPORT_CHANNELS,
    POWER_CHANNEL,
    DiscoveryReply,
    HistoryBody,
    IoBody,
    Pair,
    RealtimeBody,
    RootBody,
)


def ms_to_datetime(ms: int) -> datetime:
    """A CEMM millisecond timestamp as an aware UTC datetime."""
    return datetime.fromtimestamp(ms / 1000.0, UTC)


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
        return ms_to_datetime(self.timestamp_ms) if self.has_data else None


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
        reading = self.channel(POWER_CHANNEL)
        return None if reading is None else reading.value

    @property
    def timestamp(self) -> datetime | None:
        """Time of the newest telegram in ``data``."""
        stamps = [r.timestamp_ms for r in self.data.values() if r.has_data]
        return ms_to_datetime(max(stamps)) if stamps else None

    def _register_sum_kwh(self, names: tuple[str, ...]) -> float | None:
        readings = [self.channel(n) for n in names]
        values = [r.value for r in readings if r is not None]
        return sum(values) if values else None

    @property
    def energy_import_kwh(self) -> float | None:
        """t1 + t2 (kWh), None when the alias has neither."""
        return self._register_sum_kwh(IMPORT_CHANNELS)

    @property
    def energy_export_kwh(self) -> float | None:
        """t3 + t4 (kWh), None when the alias has neither."""
        return self._register_sum_kwh(EXPORT_CHANNELS)


@dataclass(frozen=True, slots=True)
class CemmHistoryPoint:
    """One history sample; ``value`` None only for the day's 23:59:59 sentinel."""

    timestamp_ms: int
    value: float | None

    @property
    def timestamp(self) -> datetime:
        """Sample time (UTC)."""
        return ms_to_datetime(self.timestamp_ms)


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


# --- from the wire models ---------------------------------------------------------------------


def device_info_of(body: RootBody) -> CemmDeviceInfo:
    """The root body in domain terms."""
    d = body.data
    return CemmDeviceInfo(mac=d.mac, name=d.name, type=d.type, version=d.version, core=d.core)


def connections_of(body: IoBody) -> list[CemmConnection]:
    """The ``/io`` body in domain terms."""
    return [CemmConnection(e.io_id, e.port, e.type, e.alias) for e in body.data]


def _readings(block: dict[str, Pair]) -> dict[str, CemmReading]:
    return {name: CemmReading(ts, float(value)) for name, (ts, value) in block.items()}


def realtime_of(alias: str, body: RealtimeBody) -> CemmRealtime:
    """A realtime body in domain terms."""
    return CemmRealtime(alias=alias, data=_readings(body.data), totals=_readings(body.totals))


def history_of(body: HistoryBody) -> CemmHistory:
    """A day/month/year body in domain terms."""
    channels = {
        name: tuple(
            CemmHistoryPoint(ts, None if value is None else float(value)) for ts, value in series
        )
        for name, series in body.data.items()
    }
    return CemmHistory(io_id=str(body.io_id), time_s=body.time, channels=channels)


# --- from decoded JSON (fixtures, tests) ---------------------------------------------------------


def parse_device_info(body: Any) -> CemmDeviceInfo:
    """Parse the root body."""
    return device_info_of(RootBody.model_validate(body))


def parse_connections(body: Any) -> list[CemmConnection]:
    """Parse the ``/io`` body."""
    return connections_of(IoBody.model_validate(body))


def parse_realtime(alias: str, body: Any) -> CemmRealtime:
    """Parse a realtime body (``totals`` optional, as in the doc example)."""
    return realtime_of(alias, RealtimeBody.model_validate(body))


def parse_history(body: Any) -> CemmHistory:
    """Parse a day/month/year body."""
    return history_of(HistoryBody.model_validate(body))


def parse_discovery(payload: bytes, source: tuple[str, int]) -> CemmDiscovery:
    """Parse one discovery datagram (raw bytes; ``ValueError`` when it is not a reply)."""
    reply = DiscoveryReply.model_validate_json(payload)
    return CemmDiscovery(
        ip=reply.ip,
        mac=reply.mac,
        version=reply.version,
        type=reply.type,
        init_state=reply.init_state,
        source=source,
    )


__all__ = [
    "CemmConnection",
    "CemmDeviceInfo",
    "CemmDiscovery",
    "CemmHistory",
    "CemmHistoryPoint",
    "CemmReading",
    "CemmRealtime",
    "connections_of",
    "device_info_of",
    "history_of",
    "ms_to_datetime",
    "parse_connections",
    "parse_device_info",
    "parse_discovery",
    "parse_history",
    "parse_realtime",
    "realtime_of",
]
