"""What fuseguard knows about one charge point (identity), across its connections.

A :class:`Station` outlives the WebSocket sessions of its charge point: status, meter values, the
limit the controller wants per connector and the profiles installed. When a session is attached
(after the handshake) it waits briefly for BootNotification, then configures the charge point:

1. ``GetConfiguration`` of the keys smart charging depends on;
2. ``ChangeConfiguration`` of ``MeterValuesSampledData`` (per-phase current, offered current,
   power, energy register) and ``MeterValueSampleInterval``;
3. ``TriggerMessage`` StatusNotification and MeterValues, so control has a state at once;
4. per connector, the permanent **safe profile** (TxDefaultProfile, stack level 0,
   ``safe_current_a``) and the **lease profile** (TxDefaultProfile, stack level 1, the live limit,
   ``validTo`` = now + ``lease_s``); in local controller mode one pair of ChargePointMaxProfiles
   on connector 0 instead (``relay.py``).

A set-up that fails (no answer) is reported in ``ChargerSample.errors`` and retried.

**Triggers** after an offer (the OCPP start-up race): :mod:`.triggers`.

The lease is renewed every third of ``lease_s`` while fuseguard runs; when fuseguard, the
network or the edge dies, the charge point drops the lease at ``validTo`` and falls back to the
safe profile by itself. A charge point without SmartCharging, or one that rejects a profile, is
reported through ``ChargerSample.errors`` (the controller then treats it as uncontrollable).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import Any

import structlog
from ocpp.v16 import call

from fuseguard.control.ports import (
    DeviceConnectionError,
    DeviceError,
    DeviceResponseError,
    DeviceTimeoutError,
)
from fuseguard.devices.ocpp.reports import ConnectorState, StationConfig, phases_in_use
from fuseguard.devices.ocpp.triggers import (
    START_OFFER_A,
    OcppSession,
    TriggerBudget,
    Triggers,
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
    lease_end,
    parse_configuration,
    profile_problem,
    schedule_start,
    tx_default_profile,
)
from fuseguard.model.clock import Clock
from fuseguard.model.samples import ChargerSample
from fuseguard.model.status import OcppState

log = structlog.get_logger(__name__)

SAFE_STACK_LEVEL = 0
LEASE_STACK_LEVEL = 1
MAX_MEASURED_AGE_S = 86_400.0
OFFERED_MARGIN_A = 1.0  # Current.Offered above the limit by more than this is "ignored"
IGNORED_SAMPLES = 2  # ... in this many MeterValues in a row: it ignores the limit


class Station(Triggers):
    """One charge point identity: its state, its session, its profiles."""

    def __init__(
        self, config: StationConfig, clock: Clock, triggers: TriggerBudget | None = None
    ) -> None:
        super().__init__(config, clock)
        #: the trigger budget shared with the other charge points (None: this one's own)
        self.triggers = triggers if triggers is not None else TriggerBudget(clock)
        self.triggers.share(config.connectors)  # the budget grows with its connectors
        #: whether TriggerMessage may be used (RemoteTrigger, and no refusal since the boot)
        self.can_trigger = False
        #: trigger rounds sent to this charge point (each: one or two TriggerMessage calls)
        self.trigger_rounds = 0
        self._trigger_lock = asyncio.Lock()
        self._trigger_tasks: dict[int, asyncio.Task[None]] = {}
        #: local controller mode: the profile bookkeeping of the whole charge point (connector 0)
        self.whole = ConnectorState(connector_id=0)
        self.session: OcppSession | None = None
        self.cp_config: ChargePointConfig | None = None
        self.ready = asyncio.Event()
        self._booted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._side_tasks: set[asyncio.Task[None]] = set()
        #: why the charge point could not be configured (reported as an error, retried)
        self.setup_error: str | None = None

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
        self.setup_error = None
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
        for task in self._trigger_tasks.values():
            task.cancel()
        self._trigger_tasks.clear()

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
        while True:
            try:
                await self._setup(session)
                break
            except DeviceError as err:
                if isinstance(err, DeviceConnectionError) and not isinstance(
                    err, DeviceTimeoutError
                ):  # the connection is gone; the next session starts over
                    log.warning("ocpp_setup_failed", device=self.name, reason=str(err))
                    return
                # e.g. no answer to SetChargingProfile: report it, retry
                self.setup_error = f"{self.name}: set-up failed: {err}"
                log.warning("ocpp_setup_failed", device=self.name, reason=str(err))
                await self.clock.sleep(self.config.setup_retry_s)
        self.setup_error = None
        self.ready.set()
        while True:
            await self.clock.sleep(self.config.renew_every_s)
            await self._renew(session)

    # --- set-up (requests: Triggers._call) ----------------------------------------------

    async def _setup(self, session: OcppSession) -> None:
        cfg = await self._read_configuration(session)
        self.cp_config = cfg
        await self._configure_meter_values(session, cfg)
        await self._trigger_at_boot(session, cfg)
        problem = profile_problem(self.name, cfg, LEASE_STACK_LEVEL)
        for c in self._slots():
            c.profile_error = problem
            c.installed_a = None
        if problem is None:
            await self._install_profiles(session)
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
            what = "lease" if "validTo" in profile else "safe"
            c.profile_error = (
                f"{self.name} connector {c.connector_id}: {what} profile refused ({status})"
            )
            c.refused_at = self.clock.monotonic()
            log.warning("ocpp_profile_refused", device=self.name, reason=c.profile_error)
            raise DeviceResponseError(c.profile_error)
        if c.refused_at > -math.inf:  # it takes profiles again
            c.refused_at = -math.inf
            c.profile_error = None
            log.info("ocpp_profile_accepted", device=self.name, reason="refused before")

    def _slots(self) -> list[ConnectorState]:
        """Where profiles go: each connector, or connector 0 in local controller mode."""
        return [self.whole] if self.config.local_controller else list(self.connectors.values())

    def _slot(self, c: ConnectorState) -> ConnectorState:
        return self.whole if self.config.local_controller else c

    def _levels(self) -> tuple[int, int]:
        """Stack levels of the safe and the lease profile.

        Own central system: 0 and 1. Local controller mode: the two highest the charge point
        allows, so a backend's ChargePointMaxProfile at a lower level never replaces ours.
        """
        top = (self.cp_config.max_stack_level if self.cp_config else None) or LEASE_STACK_LEVEL
        if self.config.local_controller:
            return top - 1, top
        return SAFE_STACK_LEVEL, LEASE_STACK_LEVEL

    def _purpose(self) -> str:
        return "ChargePointMaxProfile" if self.config.local_controller else "TxDefaultProfile"

    async def _install_profiles(self, session: OcppSession) -> None:
        for c in self._slots():
            c.profile_error = None
            c.safe_installed = False
            await self._install_safe(session, c)
            if c.profile_error is None and c.desired_a is not None:
                with contextlib.suppress(DeviceResponseError):
                    await self._install_lease(session, c)

    def profiles_changed(self) -> None:
        """Local controller mode: the backend set or cleared profiles; put ours back."""
        session = self.session
        if session is None or not self.ready.is_set():
            return
        task = asyncio.create_task(self._reinstall(session), name=f"{self.name}-reinstall")
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def _reinstall(self, session: OcppSession) -> None:
        try:
            await self._install_profiles(session)
        except DeviceError as err:
            log.warning("ocpp_reinstall_failed", device=self.name, reason=str(err))

    async def _install_safe(self, session: OcppSession, c: ConnectorState) -> None:
        count = len(self.connectors) if c is self.whole else 1
        profile = tx_default_profile(
            profile_id=SAFE_PROFILE_ID_BASE + c.connector_id,
            stack_level=self._levels()[0],
            current_a=self.config.safe_current_a * count,
            unit=self._unit(),
            start=schedule_start(self.now()),
            purpose=self._purpose(),
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
            stack_level=self._levels()[1],
            current_a=current_a,
            unit=self._unit(),
            start=schedule_start(now),
            valid_to=until,
            purpose=self._purpose(),
        )
        await self._set_profile(session, c, profile)
        t = self.clock.monotonic()
        before = c.installed_a
        if current_a >= START_OFFER_A and (before is None or current_a > before):
            # an offer to a paused car (status too) or a raise: ask what the car takes
            self._trigger_after_offer(session, c, start=before is None or before < START_OFFER_A)
        if c.installed_a != current_a:
            c.installed_at = t
            log.info("ocpp_limit", device=self.name, connector=c.connector_id,
                     limit_a=current_a, reason="lease profile accepted")  # fmt: skip
        c.installed_a = current_a
        c.renewed_at = t
        c.lease_until = until

    async def _renew(self, session: OcppSession) -> None:
        for c in self._slots():
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
        if self.config.local_controller:  # one cap for the whole charge point: the sum
            safe = self.config.safe_current_a
            self.whole.desired_a = sum(
                x.desired_a if x.desired_a is not None else safe for x in self.connectors.values()
            )
            c = self.whole
        session = self._ready_session()
        retry = self.clock.monotonic() - c.refused_at >= self.config.setup_retry_s
        if c.profile_error is not None and not retry:
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
            limit_a=self._limit_of(c),
            phases_in_use=phases_in_use(c),
            errors=self._errors(c),
            firmware=self.firmware,
            measured_age_s=self._measured_age_s(c),
            uncontrollable=self._uncontrollable(c),
            id_tag=c.id_tag,
        )

    def _uncontrollable(self, c: ConnectorState) -> str | None:
        """Why fuseguard cannot set this connector's limit (None: it can): no SmartCharging, a
        refused profile, or Current.Offered above the limit in IGNORED_SAMPLES MeterValues."""
        slot = self._slot(c)
        if slot.profile_error is not None:
            return slot.profile_error
        if c.offered_over >= IGNORED_SAMPLES:
            return self._ignored(c, slot)
        return None

    def _ignored(self, c: ConnectorState, slot: ConnectorState) -> str:
        return (
            f"{self.name} connector {c.connector_id}: offers {c.offered_a:g} A above the "
            f"limit {slot.installed_a} A (ignores the charging profile)"
        )

    def on_meter_values(self, connector_id: int, meter_value: object) -> None:
        """MeterValues; counts the samples in a row that offer more than the limit."""
        try:
            c = self.connectors.get(connector_id_of(connector_id))
        except OcppValueError:
            c = None
        before = c.meter_at if c is not None else None
        super().on_meter_values(connector_id, meter_value)
        if c is None or c.meter_at == before:
            return
        slot = self._slot(c)
        grace_s = 2 * self.config.meter_interval_s + 5
        if (
            c.offered_a is not None
            and slot.installed_a is not None
            and c.meter_at - slot.installed_at > grace_s
            and c.offered_a > slot.installed_a + OFFERED_MARGIN_A
        ):
            c.offered_over += 1
        else:
            c.offered_over = 0

    def _measured_age_s(self, c: ConnectorState) -> float:
        """How old the connector's measurements are (0 outside Charging: no draw, as reported by
        StatusNotification; a day at most when no MeterValues came yet)."""
        if c.cp_state is None or not c.cp_state.charging:
            return 0.0
        return min(MAX_MEASURED_AGE_S, max(0.0, self.clock.monotonic() - c.meter_at))

    def _limit_of(self, c: ConnectorState) -> float | None:
        """The limit the charge point accepted for this connector (its share of the cap)."""
        slot = self._slot(c)
        if slot.installed_a is None:
            return None
        if slot.lease_until is not None and self.now() >= slot.lease_until:
            return float(self.config.safe_current_a)  # the lease ran out: it is on its safe profile
        return float(slot.installed_a if slot is c else (c.desired_a or 0))

    def _errors(self, c: ConnectorState) -> tuple[str, ...]:
        errors: list[str] = []
        slot = self._slot(c)
        if self.setup_error is not None:
            errors.append(self.setup_error)
        if slot.profile_error is not None:
            errors.append(slot.profile_error)
        if self.main_status is OcppState.FAULTED:
            errors.append(f"{self.name}: charge point faulted")
        if c.ocpp_state is OcppState.FAULTED:
            errors.append(f"{self.name} connector {c.connector_id}: faulted ({c.error_code})")
        if c.offered_over >= IGNORED_SAMPLES:
            errors.append(self._ignored(c, slot))
        return tuple(errors)


__all__ = ["ConnectorState", "OcppSession", "Station", "StationConfig", "TriggerBudget"]
