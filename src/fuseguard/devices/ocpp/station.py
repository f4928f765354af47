"""What fuseguard knows about one charge point (identity), across its connections.

A :class:`Station` outlives the WebSocket sessions of its charge point: status, meter values, the
limit the controller wants per connector and the profiles installed. When a session is attached
(after the handshake) it waits briefly for BootNotification, then configures the charge point:

1. ``GetConfiguration`` of the keys smart charging depends on;
2. ``ChangeConfiguration`` of ``MeterValuesSampledData`` (per-phase current, offered current,
   power, energy register) and ``MeterValueSampleInterval``;
3. per connector, the permanent **safe profile** (TxDefaultProfile, stack level 0,
   ``safe_current_a``) and the **lease profile** (TxDefaultProfile, stack level 1, the live limit,
   ``validTo`` = now + ``lease_s``);
4. ``TriggerMessage`` StatusNotification and MeterValues, so control has a state at once.

The lease is renewed every third of ``lease_s`` while fuseguard runs; when fuseguard, the
network or the edge dies, the charge point drops the lease at ``validTo`` and falls back to the
safe profile by itself. A charge point without SmartCharging, or one that rejects a profile, is
reported through ``ChargerSample.errors`` (the controller then treats it as uncontrollable).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import structlog
from ocpp.exceptions import OCPPError
from ocpp.v16 import call
from ocpp.v16.enums import MessageTrigger
from websockets.exceptions import ConnectionClosed

from fuseguard.control.ports import (
    DeviceConnectionError,
    DeviceError,
    DeviceResponseError,
    DeviceTimeoutError,
)
from fuseguard.devices.ocpp.wire import (
    CONFIG_KEYS,
    LEASE_PROFILE_ID_BASE,
    MEASURANDS,
    SAFE_PROFILE_ID_BASE,
    ChargePointConfig,
    OcppValueError,
    ProfileUnit,
    connector_id_of,
    energy_wh_of,
    lease_end,
    parse_configuration,
    parse_meter_values,
    status_of,
    tx_default_profile,
)
from fuseguard.model.clock import Clock
from fuseguard.model.phases import Phases
from fuseguard.model.samples import ChargerSample
from fuseguard.model.status import CpState, OcppState

log = structlog.get_logger(__name__)

SAFE_STACK_LEVEL = 0
LEASE_STACK_LEVEL = 1
OFFERED_MARGIN_A = 1.0  # Current.Offered above the limit by more than this is "ignored"


class OcppSession(Protocol):
    """What a station needs from the session of its charge point (``session.OcppSession``)."""

    async def call(self, payload: Any, suppress: bool = True) -> Any:
        """Send a request, wait for its answer (``suppress=False``: raise CALLERRORs)."""

    async def close(self, reason: str) -> None:
        """Close the connection."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StationConfig:
    """How fuseguard drives one charge point."""

    identity: str
    password: str | None
    connectors: int = 1
    safe_current_a: int = 6
    phases: int | None = None
    voltage_v: float = 230.0
    lease_s: float = 60.0
    meter_interval_s: int = 10
    heartbeat_s: int = 60
    boot_wait_s: float = 5.0
    call_timeout_s: float = 10.0
    #: id tags accepted locally (None: accept every id tag)
    allowed_id_tags: frozenset[str] | None = None

    @property
    def renew_every_s(self) -> float:
        """The lease is renewed this often (a third of it: two renewals may fail)."""
        return max(1.0, self.lease_s / 3)


@dataclass(kw_only=True)
class ConnectorState:
    """One connector as the charge point reported it, and the profiles on it."""

    connector_id: int
    ocpp_state: OcppState | None = None
    cp_state: CpState | None = None
    error_code: str = "NoError"
    current_a: Phases = field(default_factory=Phases)
    offered_a: float | None = None
    power_w: float | None = None
    energy_wh: float | None = None
    meter_at: float = -math.inf
    transaction_id: int | None = None
    meter_start_wh: float | None = None
    desired_a: int | None = None
    installed_a: int | None = None
    installed_at: float = -math.inf
    renewed_at: float = -math.inf
    lease_until: datetime | None = None
    safe_installed: bool = False
    profile_error: str | None = None


class Station:
    """One charge point identity: its state, its session, its profiles."""

    def __init__(self, config: StationConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.connectors = {
            n: ConnectorState(connector_id=n) for n in range(1, config.connectors + 1)
        }
        self.session: OcppSession | None = None
        self.cp_config: ChargePointConfig | None = None
        self.vendor: str | None = None
        self.model: str | None = None
        self.firmware: str | None = None
        self.main_status: OcppState | None = None
        self.ready = asyncio.Event()
        self._booted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._next_tx = int(clock.now().timestamp()) % 1_000_000_000

    @property
    def name(self) -> str:
        """For logs."""
        return f"ocpp:{self.config.identity}"

    @property
    def heartbeat_s(self) -> int:
        """The heartbeat interval given at boot."""
        return self.config.heartbeat_s

    def now(self) -> datetime:
        """The injected clock's UTC time."""
        return self.clock.now()

    # --- sessions --------------------------------------------------------------------------

    def attach(self, session: OcppSession) -> OcppSession | None:
        """Make ``session`` the current one; return the one it replaces (to be closed)."""
        old = self.session
        self._stop_task()
        self.session = session
        self.ready.clear()
        self._booted = asyncio.Event()
        self._task = asyncio.create_task(self._serve(session), name=f"{self.name}-setup")
        log.info("ocpp_connected", device=self.name, reason="handshake accepted")
        return old

    def detach(self, session: OcppSession) -> None:
        """The connection of ``session`` ended."""
        if self.session is not session:
            return
        self._stop_task()
        self.session = None
        self.ready.clear()
        log.warning("ocpp_disconnected", device=self.name, reason="connection closed")

    async def close(self) -> None:
        """Stop the setup/renewal task."""
        task = self._task
        self._stop_task()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _stop_task(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def on_boot(self, vendor: str, model: str, extra: dict[str, Any]) -> None:
        """BootNotification: remember who it is."""
        self.vendor, self.model = vendor[:20], model[:20]
        firmware = extra.get("firmware_version")
        self.firmware = firmware[:50] if isinstance(firmware, str) else None
        log.info("ocpp_boot", device=self.name, reason="BootNotification", vendor=self.vendor,
                 model=self.model, firmware=self.firmware)  # fmt: skip

    def after_boot(self, session: OcppSession) -> None:
        """BootNotification was answered: (re)configure the charge point."""
        if session is not self.session:
            return
        if self._booted.is_set():  # a second boot on one connection: it rebooted, start over
            self._stop_task()
            self.ready.clear()
            self._booted = asyncio.Event()
            self._task = asyncio.create_task(self._serve(session), name=f"{self.name}-setup")
        self._booted.set()

    async def _serve(self, session: OcppSession) -> None:
        """Wait for the boot (a reconnecting charge point may not send one), set up, renew."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.config.boot_wait_s):  # network wait: loop clock
                await self._booted.wait()
        try:
            await self._setup(session)
        except DeviceError as err:
            log.warning("ocpp_setup_failed", device=self.name, reason=str(err))
            return
        self.ready.set()
        while True:
            await self.clock.sleep(self.config.renew_every_s)
            await self._renew(session)

    # --- calls -----------------------------------------------------------------------------

    async def _call(self, session: OcppSession, payload: Any) -> Any:
        """One request to the charge point, every failure mapped onto the device error tree."""
        action = type(payload).__name__
        try:
            return await session.call(payload, suppress=False)
        except OCPPError as err:
            msg = f"{self.name}: {action} answered CALLERROR {err.code}"
            raise DeviceResponseError(msg) from err
        except TimeoutError as err:
            msg = f"{self.name}: no answer to {action} within {self.config.call_timeout_s:g} s"
            raise DeviceTimeoutError(msg) from err
        except (ConnectionClosed, OSError) as err:
            msg = f"{self.name}: connection lost during {action}"
            raise DeviceConnectionError(msg) from err

    async def _setup(self, session: OcppSession) -> None:
        cfg = await self._read_configuration(session)
        self.cp_config = cfg
        await self._configure_meter_values(session, cfg)
        problem = self._profile_problem(cfg)
        for c in self.connectors.values():
            c.profile_error = problem
            c.safe_installed = False
            c.installed_a = None
            if problem is None:
                await self._install_safe(session, c)
            if c.profile_error is None and c.desired_a is not None:
                with contextlib.suppress(DeviceResponseError):
                    await self._install_lease(session, c)
        for c in self.connectors.values():
            for trigger in (MessageTrigger.status_notification, MessageTrigger.meter_values):
                with contextlib.suppress(DeviceResponseError, DeviceTimeoutError):
                    await self._call(
                        session,
                        call.TriggerMessage(requested_message=trigger, connector_id=c.connector_id),
                    )
        log.info("ocpp_ready", device=self.name, reason="configured",
                 smart_charging=problem is None, problem=problem)  # fmt: skip

    async def _read_configuration(self, session: OcppSession) -> ChargePointConfig:
        try:
            result = await self._call(session, call.GetConfiguration(key=list(CONFIG_KEYS)))
        except (DeviceResponseError, DeviceTimeoutError) as err:
            log.warning("ocpp_get_configuration_failed", device=self.name, reason=str(err))
            return ChargePointConfig()
        return parse_configuration(result.configuration_key)

    async def _configure_meter_values(self, session: OcppSession, cfg: ChargePointConfig) -> None:
        wanted = {
            "MeterValuesSampledData": ",".join(MEASURANDS),
            "MeterValueSampleInterval": str(self.config.meter_interval_s),
        }
        have = {
            "MeterValuesSampledData": ",".join(cfg.sampled_data or ()),
            "MeterValueSampleInterval": str(cfg.sample_interval_s),
        }
        for key, value in wanted.items():
            if have[key] == value:
                continue
            try:
                result = await self._call(session, call.ChangeConfiguration(key=key, value=value))
                status = str(result.status)
            except (DeviceResponseError, DeviceTimeoutError) as err:
                status = str(err)
            if status != "Accepted":
                log.warning("ocpp_change_configuration", device=self.name, key=key, value=value,
                            reason=status)  # fmt: skip

    def _profile_problem(self, cfg: ChargePointConfig) -> str | None:
        if not cfg.smart_charging:
            return f"{self.name}: no SmartCharging feature profile: cannot be controlled"
        if cfg.max_stack_level is not None and cfg.max_stack_level < LEASE_STACK_LEVEL:
            return f"{self.name}: ChargeProfileMaxStackLevel 0 leaves no room for a lease"
        if cfg.rate_units is not None and not (cfg.amps or "Power" in cfg.rate_units):
            return f"{self.name}: no usable ChargingScheduleAllowedChargingRateUnit"
        return None

    def _unit(self) -> ProfileUnit:
        cfg = self.cp_config or ChargePointConfig()
        return ProfileUnit(
            amps=cfg.amps, phases=self.config.phases, voltage_v=self.config.voltage_v
        )

    async def _set_profile(self, session: OcppSession, c: ConnectorState, profile: Any) -> None:
        try:
            result = await self._call(
                session,
                call.SetChargingProfile(connector_id=c.connector_id, cs_charging_profiles=profile),
            )
            status = str(result.status)
        except DeviceResponseError as err:
            status = str(err)
        if status != "Accepted":
            what = "safe" if profile["stackLevel"] == SAFE_STACK_LEVEL else "lease"
            c.profile_error = (
                f"{self.name} connector {c.connector_id}: {what} profile refused ({status})"
            )
            log.warning("ocpp_profile_refused", device=self.name, reason=c.profile_error)
            raise DeviceResponseError(c.profile_error)

    async def _install_safe(self, session: OcppSession, c: ConnectorState) -> None:
        profile = tx_default_profile(
            profile_id=SAFE_PROFILE_ID_BASE + c.connector_id,
            stack_level=SAFE_STACK_LEVEL,
            current_a=self.config.safe_current_a,
            unit=self._unit(),
            start=self.now(),
        )
        with contextlib.suppress(DeviceResponseError):
            await self._set_profile(session, c, profile)
            c.safe_installed = True

    async def _install_lease(self, session: OcppSession, c: ConnectorState) -> None:
        if c.desired_a is None:
            return
        current_a = c.desired_a
        now = self.now()
        until = lease_end(now, self.config.lease_s)
        profile = tx_default_profile(
            profile_id=LEASE_PROFILE_ID_BASE + c.connector_id,
            stack_level=LEASE_STACK_LEVEL,
            current_a=current_a,
            unit=self._unit(),
            start=now,
            valid_to=until,
        )
        await self._set_profile(session, c, profile)
        t = self.clock.monotonic()
        if c.installed_a != current_a:
            c.installed_at = t
            log.info("ocpp_limit", device=self.name, connector=c.connector_id,
                     limit_a=current_a, reason="lease profile accepted")  # fmt: skip
        c.installed_a = current_a
        c.renewed_at = t
        c.lease_until = until

    async def _renew(self, session: OcppSession) -> None:
        for c in self.connectors.values():
            if c.profile_error is not None or c.desired_a is None:
                continue
            if self.clock.monotonic() - c.renewed_at < self.config.renew_every_s * 0.9:
                continue
            try:
                await self._install_lease(session, c)
            except DeviceError as err:
                log.warning("ocpp_lease_renewal_failed", device=self.name, reason=str(err))

    # --- the controller's side -------------------------------------------------------------

    def _ready_session(self) -> OcppSession:
        if self.session is None:
            msg = f"{self.name}: not connected"
            raise DeviceConnectionError(msg)
        if not self.ready.is_set():
            msg = f"{self.name}: connected, profiles not installed yet"
            raise DeviceConnectionError(msg)
        return self.session

    async def set_limit(self, connector_id: int, current_a: int) -> None:
        """The live limit of one connector (0 pauses): install or renew the lease profile."""
        c = self.connectors[connector_id]
        c.desired_a = max(0, int(current_a))
        session = self._ready_session()
        if c.profile_error is not None:
            raise DeviceResponseError(c.profile_error)
        if c.installed_a == c.desired_a and (
            self.clock.monotonic() - c.renewed_at < self.config.renew_every_s
        ):
            return
        await self._install_lease(session, c)

    def sample(self, connector_id: int) -> ChargerSample:
        """The connector's state as the controller reads it."""
        c = self.connectors[connector_id]
        if self.session is None:
            msg = f"{self.name}: not connected"
            raise DeviceConnectionError(msg)
        if c.cp_state is None:
            msg = f"{self.name} connector {connector_id}: no StatusNotification yet"
            raise DeviceConnectionError(msg)
        session_wh = None
        if c.energy_wh is not None and c.meter_start_wh is not None:
            session_wh = max(0.0, c.energy_wh - c.meter_start_wh)
        return ChargerSample(
            cp_state=c.cp_state,
            ocpp_state=c.ocpp_state,
            current_a=c.current_a,
            power_w=c.power_w or 0.0,
            energy_wh=c.energy_wh,
            session_energy_wh=session_wh,
            signalled_current_a=c.offered_a,
            limit_a=float(c.installed_a) if c.installed_a is not None else None,
            phases_in_use=_phases_in_use(c),
            errors=self._errors(c),
            firmware=self.firmware,
        )

    def _errors(self, c: ConnectorState) -> tuple[str, ...]:
        errors: list[str] = []
        if c.profile_error is not None:
            errors.append(c.profile_error)
        if self.main_status is OcppState.FAULTED:
            errors.append(f"{self.name}: charge point faulted")
        if c.ocpp_state is OcppState.FAULTED:
            errors.append(f"{self.name} connector {c.connector_id}: faulted ({c.error_code})")
        grace_s = 2 * self.config.meter_interval_s + 5
        if (
            c.offered_a is not None
            and c.installed_a is not None
            and c.meter_at - c.installed_at > grace_s
            and c.offered_a > c.installed_a + OFFERED_MARGIN_A
        ):
            errors.append(
                f"{self.name} connector {c.connector_id}: offers {c.offered_a:g} A above the "
                f"limit {c.installed_a} A (ignores the charging profile)"
            )
        return tuple(errors)

    # --- what the charge point reports -----------------------------------------------------

    def _connector(self, connector_id: object, what: str) -> ConnectorState | None:
        try:
            n = connector_id_of(connector_id)
        except OcppValueError as err:
            log.warning("ocpp_value_refused", device=self.name, reason=f"{what}: {err}")
            return None
        return self.connectors.get(n)

    def on_status(self, connector_id: int, status: str, error_code: str, _: object) -> None:
        """StatusNotification."""
        try:
            ocpp_state, cp = status_of(status)
        except OcppValueError as err:
            log.warning("ocpp_value_refused", device=self.name, reason=str(err))
            return
        if connector_id == 0:
            self.main_status = ocpp_state
            return
        c = self._connector(connector_id, "StatusNotification")
        if c is None:
            return
        if c.ocpp_state is not ocpp_state:
            log.info("ocpp_status", device=self.name, connector=c.connector_id, reason=status,
                     error_code=error_code)  # fmt: skip
        if not cp.charging:
            c.current_a, c.power_w = Phases(), 0.0  # no draw outside Charging
        c.ocpp_state, c.cp_state, c.error_code = ocpp_state, cp, error_code[:30]

    def on_meter_values(self, connector_id: int, meter_value: object) -> None:
        """MeterValues: the newest value of each measurand control needs."""
        c = self._connector(connector_id, "MeterValues")
        if c is None:
            return
        reading = parse_meter_values(meter_value)
        for reason in reading.refused:
            log.warning("ocpp_value_refused", device=self.name, reason=reason)
        if reading.current_a is not None:
            c.current_a = reading.current_a
        if reading.offered_a is not None:
            c.offered_a = reading.offered_a
        if reading.power_w is not None:
            c.power_w = reading.power_w
        if reading.energy_wh is not None:
            c.energy_wh = reading.energy_wh
        c.meter_at = self.clock.monotonic()

    def on_start_transaction(self, connector_id: int, id_tag: str, meter_start: int) -> int:
        """StartTransaction: a new transaction id."""
        self._next_tx = self._next_tx % 2_000_000_000 + 1
        c = self._connector(connector_id, "StartTransaction")
        if c is not None:
            c.transaction_id = self._next_tx
            try:
                c.meter_start_wh = energy_wh_of(meter_start, "meterStart")
            except OcppValueError as err:
                log.warning("ocpp_value_refused", device=self.name, reason=str(err))
                c.meter_start_wh = None
        return self._next_tx

    def on_stop_transaction(self, transaction_id: int, meter_stop: int) -> None:
        """StopTransaction."""
        for c in self.connectors.values():
            if c.transaction_id == transaction_id:
                c.transaction_id = None
                with contextlib.suppress(OcppValueError):
                    c.energy_wh = energy_wh_of(meter_stop, "meterStop")

    def authorize(self, id_tag: str) -> str:
        """Local authorisation policy: accept all, or only the allow-list."""
        allowed = self.config.allowed_id_tags
        return "Accepted" if allowed is None or id_tag in allowed else "Invalid"


def _phases_in_use(c: ConnectorState) -> int | None:
    """Phases a charging car draws on (> 1 A), when per-phase currents are known."""
    if c.cp_state is None or not c.cp_state.charging:
        return None
    count = sum(1 for a in c.current_a if a > 1.0)
    return count or None


__all__ = ["ConnectorState", "Station", "StationConfig"]
