"""A virtual OCPP 1.6J charge point over the one charge-point core.

One :class:`VirtualOcppStation` is one charge point identity with ``connectors``
:class:`~fuseguard.sim.chargepoint.ChargePoint` cores (one per connector, like the Bender device).
It connects as a client to ``{url}/{identity}`` (subprotocol ``ocpp1.6``, HTTP Basic = security
profile 1 when a password is given), reconnecting with backoff (doubling up to
``backoff_max_s``), and behaves as docs/devices/ocpp.md expects a charge point to:

- BootNotification (retried at the answered interval until Accepted), Heartbeat at the interval,
  StatusNotification per connector on every state change (connector 0 at boot), MeterValues at
  ``MeterValueSampleInterval`` with the measurands of ``MeterValuesSampledData``
  (``Current.Import`` per phase, ``Current.Offered``, ``Power.Active.Import``,
  ``Energy.Active.Import.Register``), Start/StopTransaction when the core's session starts/ends;
- GetConfiguration / ChangeConfiguration, TriggerMessage, RemoteStart/StopTransaction;
- SetChargingProfile / ClearChargingProfile / GetCompositeSchedule on a
  :class:`~fuseguard.sim.ocpp.schedule.ProfileStack` (OCPP 1.6 section 3.13). The composite limit
  is written to the core whenever it changes (a profile arrives or ends, a period starts); the
  core applies it ``profile_delay_s`` later (its limit delay).

Faults (:class:`~fuseguard.model.faults.DeviceFault`): ``offline`` (drops the connection and stays
away), ``rejects_profiles`` (SetChargingProfile -> Rejected), ``ignores_limit`` (the core accepts
limits but never applies them), ``reboots`` (drops the connection, stops its transactions with
reason Reboot and boots again; profiles survive, as the specification requires; one-shot),
``slow`` (every answer ``slow_s`` late). ``stuck_contactor`` and ``rcd_trip`` act on the core.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from ocpp.v16 import call, call_result
from websockets.asyncio.client import ClientConnection, connect

from fuseguard.model.clock import Clock
from fuseguard.model.faults import DeviceFault
from fuseguard.model.tasks import reap
from fuseguard.sim.chargepoint import ChargePoint
from fuseguard.sim.ocpp.link import Link
from fuseguard.sim.ocpp.schedule import ProfileError, ProfileStack, Purpose, profile_from_wire
from fuseguard.sim.ocpp.wire import (
    INT_KEYS,
    MEASURANDS,
    READONLY_KEYS,
    STATUS_16,
    TRIGGERS,
    OcppSimConfig,
    initial_keys,
    iso,
    sampled_values,
)
from fuseguard.sim.vehicle import SimVehicle

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class _Tx:
    transaction_id: int
    start_posix_s: float
    meter_start_wh: float


@dataclass(eq=False)
class VirtualOcppStation:
    """One virtual OCPP 1.6J charge point; see the module docstring."""

    config: OcppSimConfig
    clock: Clock
    #: the cores' time (a site's ``t_s`` when the cores are on a :class:`SiteModel`); default
    #: the clock's monotonic seconds
    site_time: Callable[[], float] | None = None
    cores: list[ChargePoint] = field(init=False)
    stack: ProfileStack = field(init=False)
    keys: dict[str, str] = field(init=False)
    faults: set[DeviceFault] = field(default_factory=set, init=False)
    boots: int = field(default=0, init=False)
    connected: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    link: Link | None = field(default=None, init=False)
    _tx: dict[int, _Tx] = field(default_factory=dict, init=False)
    _stops: list[tuple[int, str, float, float]] = field(default_factory=list, init=False)
    _sent_status: dict[int, str] = field(default_factory=dict, init=False)
    _written_a: dict[int, float] = field(default_factory=dict, init=False)
    _heartbeat_s: float = field(default=300.0, init=False)

    def __post_init__(self) -> None:
        cfg = self.config
        now_s = self.mono_s()
        self.cores = [
            ChargePoint(
                name=f"{cfg.identity}/{n}",
                max_current_a=cfg.max_current_a,
                limit_delay_s=cfg.profile_delay_s,
                start_s=now_s,
            )
            for n in range(1, cfg.connectors + 1)
        ]
        self.stack = ProfileStack(
            connectors=cfg.connectors,
            max_current_a=cfg.max_current_a,
            max_stack_level=cfg.max_stack_level,
            max_profiles=cfg.max_profiles,
        )
        self.keys = initial_keys(cfg)

    # --- the hardware ------------------------------------------------------------------------

    def connector(self, connector_id: int) -> ChargePoint:
        """The core of connector ``connector_id`` (1-based)."""
        return self.cores[connector_id - 1]

    def plug_in(self, connector_id: int, car: SimVehicle) -> None:
        self.connector(connector_id).plug_in(car, self.mono_s())

    def unplug(self, connector_id: int) -> None:
        self.connector(connector_id).unplug(self.mono_s())

    def set_fault(self, fault: DeviceFault | str) -> None:
        kind = DeviceFault(fault)
        self.faults.add(kind)
        log.warning("fault injected", device=self.config.identity, reason=kind.value)
        if kind not in (DeviceFault.OFFLINE, DeviceFault.SLOW, DeviceFault.REJECTS_PROFILES):
            for core in self.cores:
                if kind is not DeviceFault.REBOOTS:
                    core.set_fault(kind, self.mono_s())
        if kind in (DeviceFault.OFFLINE, DeviceFault.REBOOTS) and self.link is not None:
            self._drop_link("offline" if kind is DeviceFault.OFFLINE else "reboot")

    def clear_fault(self, fault: DeviceFault | str | None = None) -> None:
        if fault is None:
            self.faults.clear()
        else:
            self.faults.discard(DeviceFault(fault))
        for core in self.cores:
            core.clear_fault(fault, self.mono_s())

    @property
    def identity(self) -> str:
        return self.config.identity

    def mono_s(self) -> float:
        """The cores' time."""
        return self.site_time() if self.site_time is not None else self.clock.monotonic()

    def posix_s(self) -> float:
        return self.clock.now().timestamp()

    def limit_a(self, connector_id: int) -> float:
        """The composite limit the profiles give connector ``connector_id`` now."""
        tx = self._tx.get(connector_id)
        return self.stack.limit_a(
            connector_id,
            self.posix_s(),
            None if tx is None else tx.start_posix_s,
            None if tx is None else tx.transaction_id,
        )

    def apply_profiles(self) -> None:
        """Write each connector's composite limit to its core when it changed."""
        posix = self.posix_s()
        self.stack.drop_expired(posix)
        now_s = self.mono_s()
        for n, core in enumerate(self.cores, start=1):
            limit = self.limit_a(n)
            if self._written_a.get(n) != limit:
                self._written_a[n] = limit
                log.info("limit changed", device=core.name, reason="profile", limit_a=limit)
                core.write_limit(limit, now_s)
            core.advance(now_s)

    # --- answers (called by the link) --------------------------------------------------------

    async def answer_delay(self) -> None:
        if DeviceFault.SLOW in self.faults:
            await self.clock.sleep(self.config.slow_s)

    def get_configuration(self, keys: list[str] | None) -> tuple[list[dict[str, Any]], list[str]]:
        wanted = keys or list(self.keys)
        known = [
            {"key": k, "readonly": k in READONLY_KEYS, "value": self.keys[k]}
            for k in wanted
            if k in self.keys
        ]
        return known, [k for k in wanted if k not in self.keys]

    def change_configuration(self, key: str, value: str) -> str:
        if key not in self.keys:
            return "NotSupported"
        if key in READONLY_KEYS:
            return "Rejected"
        if key in INT_KEYS and not (value.isdigit() and int(value) <= 86_400):
            return "Rejected"
        if key == "MeterValuesSampledData" and any(
            m.strip() not in MEASURANDS for m in value.split(",")
        ):
            return "Rejected"
        self.keys[key] = value
        log.info("configuration changed", device=self.config.identity, reason=key, value=value)
        return "Accepted"

    def set_charging_profile(self, connector_id: int, raw: dict[str, Any]) -> str:
        ident = self.config.identity
        if DeviceFault.REJECTS_PROFILES in self.faults:
            log.warning("profile rejected", device=ident, reason="rejects_profiles fault")
            return "Rejected"
        active = {n: tx.transaction_id for n, tx in self._tx.items()}
        try:
            self.stack.install(profile_from_wire(connector_id, raw), active)
        except (ProfileError, ValueError) as err:
            log.warning("profile rejected", device=ident, reason=str(err))
            return "Rejected"
        self.apply_profiles()
        return "Accepted"

    def clear_charging_profile(
        self, pid: int | None, connector_id: int | None, purpose: str | None, level: int | None
    ) -> str:
        try:
            kind = None if purpose is None else Purpose(purpose)
        except ValueError:
            return "Unknown"
        removed = self.stack.clear(
            profile_id=pid, connector_id=connector_id, purpose=kind, stack_level=level
        )
        self.apply_profiles()
        return "Accepted" if removed else "Unknown"

    def composite_schedule(self, connector_id: int, duration: int, unit: str | None) -> Any:
        if not 0 <= connector_id <= len(self.cores) or unit == "W":
            return call_result.GetCompositeSchedule(status="Rejected")
        tx = self._tx.get(connector_id)
        now = self.clock.now()
        periods = self.stack.composite(
            connector_id,
            now.timestamp(),
            float(duration),
            None if tx is None else tx.start_posix_s,
            None if tx is None else tx.transaction_id,
        )
        schedule = {
            "duration": duration,
            "start_schedule": iso(now),
            "charging_rate_unit": "A",
            "charging_schedule_period": [
                {"start_period": int(start), "limit": round(limit, 1)} for start, limit in periods
            ],
        }
        return call_result.GetCompositeSchedule(
            status="Accepted",
            connector_id=connector_id,
            schedule_start=iso(now),
            charging_schedule=schedule,
        )

    def trigger_status(self, message: str, connector_id: int | None) -> str:
        if message not in TRIGGERS:
            return "NotImplemented"
        if connector_id is not None and not 0 <= connector_id <= len(self.cores):
            return "Rejected"
        return "Accepted"

    async def triggered(self, link: Link, message: str, connector_id: int | None) -> None:
        if message not in TRIGGERS:
            return
        ids = [connector_id] if connector_id else list(range(1, len(self.cores) + 1))
        with contextlib.suppress(Exception):
            if message == "BootNotification":
                await self._boot(link)
            elif message == "Heartbeat":
                await link.call(call.Heartbeat())
            elif message == "StatusNotification":
                for n in ids:
                    await self._send_status(link, n, force=True)
            else:
                for n in ids:
                    if n > 0:
                        await self._send_meter_values(link, n, "Trigger")

    def remote_start(self, id_tag: str, connector_id: int | None) -> str:
        n = connector_id or 1
        if not 1 <= n <= len(self.cores):
            return "Rejected"
        self.connector(n).authorize(self.mono_s(), id_tag)
        return "Accepted"

    def remote_stop(self, transaction_id: int) -> str:
        for n, tx in self._tx.items():
            if tx.transaction_id == transaction_id:
                self.connector(n).stop_session(self.mono_s())
                return "Accepted"
        return "Rejected"

    # --- the connection ----------------------------------------------------------------------

    def _drop_link(self, reason: str) -> None:
        link = self.link
        if link is not None:
            log.info("connection dropped", device=self.config.identity, reason=reason)
            task = asyncio.ensure_future(link._connection.close(1001, reason))
            task.add_done_callback(lambda _: None)

    async def run(self) -> None:
        """Connect, converse, reconnect with backoff; until cancelled."""
        cfg = self.config
        backoff = cfg.backoff_min_s
        while True:
            if DeviceFault.OFFLINE in self.faults:
                self.apply_profiles()
                await self.clock.sleep(cfg.tick_s)
                continue
            try:
                await self._connect_once()
                backoff = cfg.backoff_min_s
            except asyncio.CancelledError:
                raise
            except Exception as err:  # any failure: reconnect later
                log.info(
                    "central system unreachable",
                    device=cfg.identity,
                    reason=f"{type(err).__name__}: {err}",
                    retry_s=backoff,
                )
            await self._idle(backoff)
            backoff = min(backoff * 2.0, cfg.backoff_max_s)

    async def _idle(self, duration_s: float) -> None:
        """Keep the hardware running while not connected."""
        end = self.clock.monotonic() + duration_s
        while self.clock.monotonic() < end:
            self.apply_profiles()
            await self.clock.sleep(min(self.config.tick_s, duration_s))

    def _headers(self) -> dict[str, str]:
        cfg = self.config
        if cfg.password is None:
            return {}
        token = base64.b64encode(f"{cfg.identity}:{cfg.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    async def _connect_once(self) -> None:
        cfg = self.config
        url = f"{cfg.url.rstrip('/')}/{cfg.identity}"
        async with connect(
            url,
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            additional_headers=self._headers(),
            open_timeout=10,
            max_size=65_536,
        ) as ws:
            await self._converse(ws)

    async def _converse(self, ws: ClientConnection) -> None:
        link = Link(self, ws)
        self.link = link
        reader = asyncio.create_task(link.start())
        try:
            self.connected.set()
            log.info("connected", device=self.config.identity, reason="handshake accepted")
            await self._boot(link)
            self._sent_status.clear()
            await self._send_status(link, 0, force=True)
            await self._loop(link, reader)
        finally:
            self.connected.clear()
            self.link = None
            reader.cancel()
            failed = await reap(reader)  # a cancel of this task meanwhile is raised (model/tasks)
            if failed is not None:  # the reader's own failure: the connection is gone anyway
                log.debug("reader ended", device=self.config.identity, reason=repr(failed))
            if DeviceFault.REBOOTS in self.faults:
                self._reboot()

    async def _boot(self, link: Link) -> None:
        cfg = self.config
        while True:
            result = await link.call(
                call.BootNotification(charge_point_model=cfg.model, charge_point_vendor=cfg.vendor)
            )
            if result.interval:
                self._heartbeat_s = float(result.interval)
                self.keys["HeartbeatInterval"] = str(result.interval)
            if result.status == "Accepted":
                self.boots += 1
                log.info("booted", device=cfg.identity, reason="Accepted", boots=self.boots)
                return
            await self.clock.sleep(max(1.0, float(result.interval or 10)))

    def _reboot(self) -> None:
        self.faults.discard(DeviceFault.REBOOTS)
        posix = self.posix_s()
        for n, tx in self._tx.items():
            self._stops.append((tx.transaction_id, "Reboot", posix, self.connector(n).meter_wh))
            self.stack.end_transaction(n)
        self._tx.clear()
        log.warning("rebooted", device=self.config.identity, reason="reboots fault")

    async def _loop(self, link: Link, reader: asyncio.Task[Any]) -> None:
        clock = self.clock
        next_heartbeat = clock.monotonic() + self._heartbeat_s
        last_meter: dict[int, float] = {}  # the interval may change at any time: from the last
        while not reader.done():
            if self.faults & {DeviceFault.OFFLINE, DeviceFault.REBOOTS}:
                return
            self.apply_profiles()
            await self._sync_transactions(link)
            now_s = clock.monotonic()
            interval = int(self.keys["MeterValueSampleInterval"] or 0)
            for n in range(1, len(self.cores) + 1):
                await self._send_status(link, n)
                if interval > 0 and now_s >= last_meter.get(n, -math.inf) + interval:
                    await self._send_meter_values(link, n, "Sample.Periodic")
                    last_meter[n] = now_s
            if now_s >= next_heartbeat:
                await link.call(call.Heartbeat())
                next_heartbeat = now_s + self._heartbeat_s
            await clock.sleep(self.config.tick_s)

    async def _send_status(self, link: Link, connector_id: int, *, force: bool = False) -> None:
        if connector_id == 0:
            status, error = "Available", "NoError"
        else:
            core = self.connector(connector_id)
            status = STATUS_16[core.ocpp_state]
            error = "GroundFailure" if core.tripped else "NoError"
        if not force and self._sent_status.get(connector_id) == status:
            return
        self._sent_status[connector_id] = status
        await link.call(
            call.StatusNotification(
                connector_id=connector_id,
                error_code=error,
                status=status,
                timestamp=iso(self.clock.now()),
            )
        )

    async def _send_meter_values(self, link: Link, connector_id: int, context: str) -> None:
        values = sampled_values(
            self.connector(connector_id), self.keys["MeterValuesSampledData"], context
        )
        if not values:
            return
        tx = self._tx.get(connector_id)
        await link.call(
            call.MeterValues(
                connector_id=connector_id,
                meter_value=[{"timestamp": iso(self.clock.now()), "sampled_value": values}],
                transaction_id=None if tx is None else tx.transaction_id,
            )
        )

    async def _sync_transactions(self, link: Link) -> None:
        """StopTransaction for what ended (and was left over from a reboot), StartTransaction
        for sessions that started."""
        while self._stops:
            tx_id, reason, at_s, meter_wh = self._stops[0]
            await link.call(
                call.StopTransaction(
                    meter_stop=int(meter_wh),
                    timestamp=iso(datetime.fromtimestamp(at_s, UTC)),
                    transaction_id=tx_id,
                    reason=reason,
                )
            )
            self._stops.pop(0)
        for n, core in enumerate(self.cores, start=1):
            session = core.session
            tx = self._tx.get(n)
            if session.active and tx is None:
                meter = core.meter_wh
                result = await link.call(
                    call.StartTransaction(
                        connector_id=n,
                        id_tag=(session.uid or "FUSEGUARD-SIM")[:20],
                        meter_start=int(meter),
                        timestamp=iso(self.clock.now()),
                    )
                )
                self._tx[n] = _Tx(int(result.transaction_id), self.posix_s(), meter)
            elif not session.active and tx is not None:
                del self._tx[n]
                self.stack.end_transaction(n)
                reason = "EVDisconnected" if core.car is None else "Local"
                self._stops.append((tx.transaction_id, reason, self.posix_s(), core.meter_wh))


__all__ = ["OcppSimConfig", "VirtualOcppStation"]
