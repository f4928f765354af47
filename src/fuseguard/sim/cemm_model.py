"""The virtual CEMM's state: aliases, meter registers, tariff, minute history, faults (no I/O).

One :class:`CemmModel` is one CEMM box. Every alias is a meter that samples a power (or flow)
source on each :class:`~fuseguard.sim.site.SiteModel` tick, like a meter publishing one telegram
per period:

* a **smart meter** alias (``p1``, ``p1-usb``, ``emucs``, ``emucs-usb``, ``han``, ``dlms-usb``)
  reads ``site.power_w()`` (signed: negative = feed-in) and integrates import into t1/t2 and
  feed-in into t3/t4 by the tariff ``rate`` (1 = low, 2 = normal/high);
* a **Modbus** alias ``mbX`` or a pulse electricity alias ``s01..s03`` reads any signed power
  source, e.g. a PV plant as ``-pv.power_w`` (production negative, as the site sign convention);
* ``usage`` is the household consumption: grid power plus the PV production bound to the CEMM;
* ``pulse-1..3`` are water/gas pulse meters (flow L/min, volume m³);
* ``p1-gas``/``emucs-gas`` carry only the gas register.

Every answer is built through the wire models of :mod:`fuseguard.wire.cemm` (the same models
the driver parses with) and handed out as a plain JSON-ready dict.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import structlog

from fuseguard.model.clock import Clock
from fuseguard.sim.cemm_connections import (
    DEFAULT_CONNECTIONS,
    Role,
    Sources,
    WaterDraw,
    parse_connections,
)
from fuseguard.sim.cemm_faults import Fault, FaultState, GarbageVariant
from fuseguard.sim.cemm_history import (
    MinuteStore,
    Sample,
    day_series,
    month_series,
    period_start_s,
    year_series,
)
from fuseguard.sim.site import SiteModel
from fuseguard.wire.cemm import (
    CHANNELS,
    HISTORY_CHANNEL,
    IO_TYPE,
    PERIOD_CHANNEL,
    AliasKind,
    DeviceInfo,
    HistoryBody,
    IoBody,
    IoEntry,
    Pair,
    Period,
    RealtimeBody,
    RootBody,
    alias_kind,
)

log = structlog.get_logger(__name__)

FIXTURE_CORE = "1.24"
DEFAULT_TZ = "Europe/Amsterdam"


@dataclass(frozen=True, slots=True)
class CemmIdentity:
    """What ``GET /open-api/v1/`` and the discovery reply say about the box."""

    mac: str
    name: str
    type: str
    version: str
    core: str
    discovery_type: str = "CEMM_basic"

    @classmethod
    def from_fixture(cls, core: str = FIXTURE_CORE) -> CemmIdentity:
        """The identity recorded in the packaged fixture ``<core>/root.json``."""
        d = RootBody.model_validate(load_fixture(core, "root.json")).data
        return cls(mac=d.mac, name=d.name, type=d.type, version=d.version, core=d.core)

    def root_body(self) -> dict[str, Any]:
        """The ``/open-api/v1/`` body."""
        info = DeviceInfo(
            mac=self.mac, name=self.name, type=self.type, version=self.version, core=self.core
        )
        return RootBody(data=info).model_dump(mode="json")


def load_fixture(core: str, name: str) -> Any:
    """A packaged fixture file ``fixtures/cemm/<core>/<name>`` as parsed JSON."""
    ref = resources.files("fuseguard.sim").joinpath("fixtures", "cemm", core, name)
    return json.loads(ref.read_text(encoding="utf-8"))


class PowerSource(Protocol):
    """Anything with a signed ``power_w`` attribute (e.g. ``sim.site.PvPlant``)."""

    power_w: float


def nl_rate(local: datetime) -> int:
    """Dutch DSMR tariff index: 1 (low) 23:00-07:00 and all weekend, else 2 (normal)."""
    if local.weekday() >= 5 or local.hour >= 23 or local.hour < 7:
        return 1
    return 2


@dataclass(slots=True)
class AliasConfig:
    """One connection of the virtual CEMM."""

    alias: str
    io_id: int
    port: int
    source: Callable[[], float] | None = None  # signed W (electric) or L/min (pulse)
    gas_m3_per_h: float = 0.0  # smart meter / gas alias: constant gas draw (0 = no gas meter)
    initial_kwh: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    initial_volume_m3: float = 0.0  # pulse meters
    initial_gas_m3: float = 0.0  # smart meter with gas / gas alias

    @property
    def kind(self) -> AliasKind:
        """Kind derived from the alias name."""
        return alias_kind(self.alias)


def aliases_from_fixture(core: str = FIXTURE_CORE) -> list[AliasConfig]:
    """The connections of the packaged ``<core>/io.json`` as alias configs (no sources yet)."""
    return [
        AliasConfig(e.alias, io_id=e.io_id, port=e.port)
        for e in IoBody.model_validate(load_fixture(core, "io.json")).data
    ]


@dataclass(slots=True)
class _Meter:
    cfg: AliasConfig
    kind: AliasKind
    registers_kwh: list[float]
    volume_m3: float
    gas_m3: float
    value: float = 0.0  # last power W / flow L/min
    rate: int = 1
    last_ms: int = 0  # timestamp of the last telegram
    gas_ms: int = 0
    history: MinuteStore = field(default_factory=MinuteStore)
    energy: MinuteStore = field(default_factory=MinuteStore)  # signed power for net kWh
    published: RealtimeBody | None = None


class UnknownAliasError(LookupError):
    """The alias is not configured on this CEMM."""


class CemmModel:
    """State of one virtual CEMM; see the module docstring."""

    def __init__(
        self,
        clock: Clock,
        aliases: Iterable[AliasConfig],
        *,
        identity: CemmIdentity | None = None,
        tz: str | ZoneInfo = DEFAULT_TZ,
        rate_schedule: Callable[[datetime], int] = nl_rate,
        history_retention_days: int = 400,
    ) -> None:
        self.clock = clock
        self.identity = identity or CemmIdentity.from_fixture()
        self.tz = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
        self.rate_schedule = rate_schedule
        self.history_retention_s = history_retention_days * 86400
        self._meters: dict[str, _Meter] = {}
        for cfg in aliases:
            kind = cfg.kind
            if cfg.alias in self._meters:
                msg = f"alias {cfg.alias!r} configured twice"
                raise ValueError(msg)
            self._meters[cfg.alias] = _Meter(
                cfg=cfg,
                kind=kind,
                registers_kwh=list(cfg.initial_kwh),
                volume_m3=cfg.initial_volume_m3,
                gas_m3=cfg.initial_gas_m3,
            )
        self._last_tick_s: float | None = None
        self._fault = FaultState()
        self._fault_listeners: list[Callable[[FaultState], None]] = []
        self._ticks = 0

    # --- configuration -------------------------------------------------------------------------

    @classmethod
    def for_site(
        cls,
        site: SiteModel,
        *,
        pv: PowerSource | None = None,
        connections: str | Iterable[str] = DEFAULT_CONNECTIONS,
        gas_m3_per_h: float = 0.0,
        initial_kwh: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0),
        initial_gas_m3: float = 0.0,
        attach: bool = True,
        **kwargs: Any,
    ) -> CemmModel:
        """A CEMM metering ``site`` with the connection set ``connections``.

        The default (``p1,pulse-1,mb1,usage``) is a P1 meter on the grid connection, a water
        pulse meter, a PV meter on Modbus address 1 and ``usage``; see
        :mod:`fuseguard.sim.cemm_connections` for every alias family and role. The first
        ``grid`` connection carries the gas register and ``initial_kwh``. With ``attach`` the
        model registers itself with ``site.on_tick``, so each site tick is one meter telegram.
        """
        tz = kwargs.get("tz", DEFAULT_TZ)
        zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
        pv_src = pv
        sources = Sources(
            grid_w=site.power_w,
            pv_w=lambda: pv_src.power_w if pv_src is not None else 0.0,
            water_l_min=WaterDraw(site.clock, zone).flow_l_min,
            gas_m3_per_h=gas_m3_per_h,
        )
        aliases: list[AliasConfig] = []
        grid_seen = False
        for io_id, conn in enumerate(parse_connections(connections), start=1):
            cfg = AliasConfig(
                conn.alias,
                io_id=io_id,
                port=conn.port,
                source=sources.for_role(conn.role, conn.kind),
            )
            if conn.kind is AliasKind.GAS:
                cfg.gas_m3_per_h, cfg.initial_gas_m3 = gas_m3_per_h, initial_gas_m3
            elif conn.role is Role.GRID and not grid_seen:
                grid_seen = True
                cfg.gas_m3_per_h, cfg.initial_gas_m3 = gas_m3_per_h, initial_gas_m3
                cfg.initial_kwh = initial_kwh
            aliases.append(cfg)
        model = cls(site.clock, aliases, **kwargs)
        if attach:
            site.on_tick(model.on_site_tick)
        return model

    @property
    def aliases(self) -> list[str]:
        """Configured aliases in ``/io`` order."""
        return list(self._meters)

    def kind_of(self, alias: str) -> AliasKind:
        """Kind of a configured alias; UnknownAliasError otherwise."""
        return self._meter(alias).kind

    def _meter(self, alias: str) -> _Meter:
        meter = self._meters.get(alias)
        if meter is None:
            raise UnknownAliasError(alias)
        return meter

    # --- faults --------------------------------------------------------------------------------

    @property
    def fault(self) -> FaultState:
        """The active fault (expired timed faults read as healthy)."""
        f = self._fault
        if f.until_monotonic_s is not None and self.clock.monotonic() >= f.until_monotonic_s:
            self.clear_fault()
            return self._fault
        return f

    def set_fault(
        self,
        kind: Fault | str,
        *,
        delay_s: float = 2.0,
        variant: GarbageVariant | str = GarbageVariant.TRUNCATED,
        duration_s: float | None = None,
    ) -> None:
        """Switch a fault on (replacing any other); ``duration_s`` ends it automatically."""
        fault = Fault(kind)
        until = None if duration_s is None else self.clock.monotonic() + duration_s
        self._fault = FaultState(fault, max(0.0, delay_s), GarbageVariant(variant), until)
        log.info("cemm_fault_set", device=self.identity.mac, reason=fault.value, delay_s=delay_s)
        if duration_s is not None:
            self.clock.call_later(duration_s, lambda: self._expire(until))
        self._notify()

    def clear_fault(self) -> None:
        """Back to healthy."""
        if self._fault.kind is None:
            return
        log.info("cemm_fault_cleared", device=self.identity.mac, reason=self._fault.kind.value)
        self._fault = FaultState()
        self._notify()

    def _expire(self, until: float | None) -> None:
        if self._fault.until_monotonic_s == until:
            self.clear_fault()

    def on_fault_change(self, listener: Callable[[FaultState], None]) -> None:
        """Call ``listener`` whenever the fault changes (the server gates its listener)."""
        self._fault_listeners.append(listener)

    def remove_fault_listener(self, listener: Callable[[FaultState], None]) -> None:
        """Undo :meth:`on_fault_change`."""
        if listener in self._fault_listeners:
            self._fault_listeners.remove(listener)

    def _notify(self) -> None:
        for listener in list(self._fault_listeners):
            listener(self._fault)

    # --- physics -------------------------------------------------------------------------------

    def on_site_tick(self, t_s: float) -> None:
        """``SiteModel.on_tick`` listener: one telegram per alias at ``clock.now()``."""
        self.tick()

    def tick(self) -> None:
        """Sample every source, integrate registers and history, publish a telegram."""
        now = self.clock.now()
        now_s = now.timestamp()
        dt_s = 0.0 if self._last_tick_s is None else max(0.0, now_s - self._last_tick_s)
        self._last_tick_s = now_s
        rate = self.rate_schedule(now.astimezone(self.tz))
        now_ms = math.floor(now_s) * 1000  # telegrams carry whole seconds
        frozen = self._fault.kind is Fault.FROZEN
        for meter in self._meters.values():
            self._tick_meter(meter, now_s, dt_s, rate)
            meter.last_ms = now_ms
            if meter.cfg.gas_m3_per_h > 0:
                meter.gas_ms = (now_ms // 300_000) * 300_000  # gas telegram every 5 min
            if not frozen:
                meter.published = self._snapshot(meter)
        self._ticks += 1
        if self._ticks % 3600 == 0:
            horizon = int(now_s) - self.history_retention_s
            for meter in self._meters.values():
                meter.history.prune_before(horizon)
                meter.energy.prune_before(horizon)

    def _tick_meter(self, meter: _Meter, now_s: float, dt_s: float, rate: int) -> None:
        value = float(meter.cfg.source()) if meter.cfg.source is not None else 0.0
        if not math.isfinite(value):
            log.warning("cemm_source_not_finite", device=meter.cfg.alias, reason="NaN/inf source")
            value = 0.0
        meter.value = value
        meter.rate = rate
        meter.gas_m3 += meter.cfg.gas_m3_per_h * dt_s / 3600.0
        if meter.kind is AliasKind.PULSE:
            meter.volume_m3 += value * dt_s / 60.0 / 1000.0
            meter.history.add(now_s, dt_s, value)
            meter.energy.add(now_s, dt_s, value / 60.0 / 1000.0)  # m³ per s -> integral m³
            return
        if meter.kind is AliasKind.GAS:
            meter.history.add(now_s, dt_s, meter.cfg.gas_m3_per_h)
            meter.energy.add(now_s, dt_s, meter.cfg.gas_m3_per_h / 3600.0)
            return
        kwh = abs(value) * dt_s / 3_600_000.0
        low = rate == 1
        if value >= 0:
            meter.registers_kwh[0 if low else 1] += kwh
        else:
            meter.registers_kwh[2 if low else 3] += kwh
        meter.history.add(now_s, dt_s, value)
        meter.energy.add(now_s, dt_s, value / 3_600_000.0)  # W·s -> kWh

    # --- wire bodies ---------------------------------------------------------------------------

    def _snapshot(self, meter: _Meter) -> RealtimeBody:
        ts = meter.last_ms
        t1, t2, t3, t4 = (round(v, 3) for v in meter.registers_kwh)
        gas: Pair = (meter.gas_ms, round(meter.gas_m3, 3)) if meter.cfg.gas_m3_per_h > 0 else (0, 0)
        power = meter.value
        p_wire: float = round(power) if meter.kind is AliasKind.SMART_METER else round(power, 1)
        values: dict[str, Pair] = {
            "t1": (ts, t1),
            "t2": (ts, t2),
            "t3": (ts, t3),
            "t4": (ts, t4),
            "electric_power": (ts, p_wire),
            "rate": (ts, meter.rate),
            "gas": gas,
            "electric_energy": (ts, round(t1 - t3, 3)),
            "electric_energy_high": (ts, round(t2 - t4, 3)),
            "flow": (ts, round(power, 2)) if meter.kind is AliasKind.PULSE else (0, 0),
            "volume": (ts, round(meter.volume_m3, 3)),
        }
        if meter.kind is AliasKind.USAGE:
            values["electric_energy"] = (ts, round(sum(meter.registers_kwh[:2]), 3))
        if meter.kind is AliasKind.S0:
            values["t1"] = (ts, round(t1 + t2, 3))
            values["electric_energy"] = (ts, round(t1 + t2, 3))
        data_keys, total_keys = CHANNELS[meter.kind]
        return RealtimeBody(
            data={k: values[k] for k in data_keys}, totals={k: values[k] for k in total_keys}
        )

    def realtime_body(self, alias: str) -> dict[str, Any]:
        """``/<alias>/realtime/``: the last published telegram (``[0, 0]`` before the first)."""
        meter = self._meter(alias)
        body = meter.published
        if body is None:
            data_keys, total_keys = CHANNELS[meter.kind]
            body = RealtimeBody(
                data=dict.fromkeys(data_keys, (0, 0)), totals=dict.fromkeys(total_keys, (0, 0))
            )
        return body.model_dump(mode="json")  # a fresh copy every time

    def io_body(self) -> dict[str, Any]:
        """``/io``: the configured connections."""
        entries = [
            IoEntry(io_id=m.cfg.io_id, port=m.cfg.port, type=IO_TYPE[m.kind], alias=m.cfg.alias)
            for m in self._meters.values()
        ]
        return IoBody(data=entries).model_dump(mode="json")

    def history_body(self, alias: str, period: Period, time_s: int | None) -> dict[str, Any]:
        """``/<alias>/data/<period>/``; ``time_s`` None = the current period.

        ``time`` selects the period that contains it and is answered (and echoed) as that
        period's start in the device's time zone: a mid-day ``time`` gives the whole local day
        and ``"time"`` = its midnight (seed 004: "the start timestamp of the requested period").
        """
        meter = self._meter(alias)
        now_s = self.clock.now().timestamp()
        time_s = period_start_s(period, now_s if time_s is None else time_s, self.tz)
        series: list[Sample]
        if period is Period.DAY:
            decimals = 2 if meter.kind in (AliasKind.PULSE, AliasKind.GAS) else None

            def minute_value(minute_s: int) -> float | None:
                avg = meter.history.average(minute_s)
                if avg is None:
                    return None
                return round(avg, decimals) if decimals is not None else round(avg)

            series = day_series(minute_value, time_s, now_s, self.tz)
            channel = HISTORY_CHANNEL[meter.kind]
        else:

            def energy(start_s: int, end_s: int) -> float:
                return round(meter.energy.integral(start_s, end_s), 3)

            build = month_series if period is Period.MONTH else year_series
            series = build(energy, time_s, now_s, self.tz)
            channel = PERIOD_CHANNEL[meter.kind]
        body = HistoryBody.model_validate(
            {"io_id": str(meter.cfg.io_id), "time": time_s, "data": {channel: series}}
        )
        return body.model_dump(mode="json")


__all__ = [
    "DEFAULT_TZ",
    "FIXTURE_CORE",
    "AliasConfig",
    "CemmIdentity",
    "CemmModel",
    "PowerSource",
    "UnknownAliasError",
    "aliases_from_fixture",
    "load_fixture",
    "nl_rate",
]
