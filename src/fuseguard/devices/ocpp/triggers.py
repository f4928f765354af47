"""TriggerMessage after an offer: the charge point tells control sooner (OCPP 1.6 RemoteTrigger).

**Triggers** (the OCPP start-up race, docs/devices/ocpp.md): when the lease raises a connector
from a pause (below 6 A) to an offer, the car starts a few seconds later, and the charge point
tells only with its next StatusNotification and MeterValues (every 10-60 s); after a raise of a
charging car, what it takes shows only in the next MeterValues. Until then control counts the
start or the raise only as far as the grid meter rises (docs/safety.md, "Start window"). If the
charge point supports RemoteTrigger, fuseguard asks it (``TriggerMessage`` MeterValues of that
connector, and StatusNotification after a start) :data:`TRIGGER_AFTER_OFFER_S` after the
profile was accepted, and for MeterValues once more :data:`TRIGGER_AFTER_CHARGING_S` after the
connector reports Charging. Bounded: at most those rounds per offer, one round at a time per
charge point, none when MeterValues of the charging car came within :data:`FRESH_METER_S`, and
a token bucket shared by every charge point of the central system (:class:`TriggerBudget`): a
round the bucket cannot pay for is skipped, never queued. The bucket grows with the connectors
that share it (one round at once per connector, refilled one per
:data:`TRIGGER_REFILL_S_PER_CONNECTOR` each): a site that offers every car current at once (100
charge points after a load drop) asks every one of them, where a fixed bucket of 20 asked a
fifth and left the others to their next MeterValues (bench/ocpp.py, round 11). A charge point
that answers a trigger with anything but ``Accepted`` (or a CALLERROR) is asked no more until it
boots again.

:class:`Triggers` is the part of :class:`~fuseguard.devices.ocpp.station.Station` that does this
(split from ``station.py``).
"""

from __future__ import annotations

import asyncio
import functools
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
from fuseguard.devices.ocpp.reports import ConnectorState, Reports
from fuseguard.devices.ocpp.wire import ChargePointConfig
from fuseguard.model.clock import Clock
from fuseguard.wire.ocpp_triggers import (
    FRESH_METER_S,
    START_OFFER_A,
    TRIGGER_AFTER_CHARGING_S,
    TRIGGER_AFTER_OFFER_S,
)

log = structlog.get_logger("fuseguard.devices.ocpp.station")

#: the central system's trigger budget at least (few connectors): rounds per second on
#: average, and the burst
TRIGGER_ROUNDS_PER_S = 10.0
TRIGGER_BURST = 20
#: with more connectors: one round at once per connector, one more every this many seconds
#: (an offer asks at most len(TRIGGER_AFTER_OFFER_S) = 2 rounds within 5 s)
TRIGGER_REFILL_S_PER_CONNECTOR = 5.0


class OcppSession(Protocol):
    """What a station needs from the session of its charge point (``session.OcppSession``)."""

    async def call(self, payload: Any, suppress: bool = True) -> Any:
        """Send a request, wait for its answer (``suppress=False``: raise CALLERRORs)."""

    async def close(self, reason: str) -> None:
        """Close the connection."""


class TriggerBudget:
    """A token bucket shared by the charge points of one central system: at most ``burst``
    trigger rounds at once, refilled at ``per_s`` rounds per second, and more for the
    connectors that :meth:`share` it: a burst of one round per connector, refilled at one per
    connector every ``refill_s_per_connector`` (module docstring)."""

    def __init__(
        self,
        clock: Clock,
        per_s: float = TRIGGER_ROUNDS_PER_S,
        burst: int = TRIGGER_BURST,
        refill_s_per_connector: float = TRIGGER_REFILL_S_PER_CONNECTOR,
    ) -> None:
        self._clock = clock
        self._min_per_s = per_s
        self._min_burst = float(burst)
        self._refill_s = refill_s_per_connector
        self._per_s = per_s
        self._burst = float(burst)
        self._tokens = float(burst)
        self._at = clock.monotonic()
        self.connectors = 0
        self.spent = 0
        self.refused = 0

    def share(self, connectors: int) -> None:
        """``connectors`` more connectors use this budget: it grows to one round at once per
        connector and one more per connector every ``refill_s_per_connector`` (never below the
        ``burst`` and ``per_s`` it was made with); the new rounds are available at once."""
        self.connectors += max(0, connectors)
        burst = max(self._min_burst, float(self.connectors))
        self._tokens += burst - self._burst
        self._burst = burst
        self._per_s = max(self._min_per_s, self.connectors / self._refill_s)

    def take(self) -> bool:
        """One round, if the bucket holds a token (else False: skip the round)."""
        now = self._clock.monotonic()
        self._tokens = min(self._burst, self._tokens + max(0.0, now - self._at) * self._per_s)
        self._at = now
        if self._tokens < 1.0:
            self.refused += 1
            return False
        self._tokens -= 1.0
        self.spent += 1
        return True


class Triggers(Reports):
    """A station's requests to its charge point (:meth:`_call`, every failure mapped onto the
    device error tree) and its trigger rounds (module docstring); its state is set by
    :class:`~fuseguard.devices.ocpp.station.Station`."""

    triggers: TriggerBudget
    can_trigger: bool
    trigger_rounds: int
    session: OcppSession | None
    ready: asyncio.Event
    whole: ConnectorState
    _trigger_lock: asyncio.Lock
    _trigger_tasks: dict[int, asyncio.Task[None]]

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

    # --- triggers ----------------------------------------------

    async def _trigger_at_boot(self, session: OcppSession, cfg: ChargePointConfig) -> None:
        """After the boot: whether triggers may be used (RemoteTrigger), and status and meter
        values of every connector at once, so control has a state. Best effort: no failure of
        a trigger ends the set-up but a lost connection."""
        profiles = cfg.feature_profiles
        self.can_trigger = profiles is not None and "RemoteTrigger" in profiles
        for c in self.connectors.values():
            for trigger in (MessageTrigger.status_notification, MessageTrigger.meter_values):
                try:
                    await self._call(
                        session,
                        call.TriggerMessage(requested_message=trigger, connector_id=c.connector_id),
                    )
                except DeviceConnectionError as err:
                    if not isinstance(err, DeviceTimeoutError):
                        raise  # the connection is gone: the set-up ends (station._serve)
                    log.debug("ocpp_boot_trigger_failed", device=self.name, reason=str(err))
                except Exception as err:  # a refusal or a garbage answer ends nothing
                    reason = f"{type(err).__name__}: {str(err)[:80]}"
                    log.debug("ocpp_boot_trigger_failed", device=self.name, reason=reason)

    def _trigger_after_offer(self, session: OcppSession, c: ConnectorState, *, start: bool) -> None:
        """An offer to a paused connector (``start``) or a raise was accepted: ask for the
        meter values (and after a start the status) a few seconds later, when the car has
        taken it (replaces the rounds of an earlier offer still waiting)."""
        targets = (
            list(self.connectors.values()) if c is self.whole else [c]
        )  # local controller mode: the cap is on connector 0, the cars on the connectors
        for target in targets:
            state = target.cp_state
            if state is not None and (state.charging if not start else state.vehicle_connected):
                self._schedule_triggers(session, target, TRIGGER_AFTER_OFFER_S, status=start)

    def on_status(self, connector_id: int, status: str, error_code: str, extra: object) -> None:
        """StatusNotification; a connector that starts charging with no MeterValues since gets
        one MeterValues trigger :data:`TRIGGER_AFTER_CHARGING_S` later."""
        c = self.connectors.get(connector_id) if isinstance(connector_id, int) else None
        was = c.cp_state.charging if c is not None and c.cp_state is not None else False
        super().on_status(connector_id, status, error_code, extra)
        if c is None or was or c.cp_state is None or not c.cp_state.charging:
            return
        session = self.session
        if session is not None and connector_id not in self._trigger_tasks:
            self._schedule_triggers(session, c, (TRIGGER_AFTER_CHARGING_S,), status=False)

    def _schedule_triggers(
        self, session: OcppSession, c: ConnectorState, after_s: tuple[float, ...], *, status: bool
    ) -> None:
        if not self.can_trigger or not self.ready.is_set():
            return
        old = self._trigger_tasks.pop(c.connector_id, None)
        if old is not None:
            old.cancel()
        task = asyncio.create_task(
            self._trigger_rounds(session, c, after_s, status=status),
            name=f"{self.name}-trigger-{c.connector_id}",
        )
        self._trigger_tasks[c.connector_id] = task
        task.add_done_callback(functools.partial(self._trigger_done, c.connector_id))

    def _trigger_done(self, connector_id: int, task: asyncio.Task[None]) -> None:
        if self._trigger_tasks.get(connector_id) is task:
            del self._trigger_tasks[connector_id]

    async def _trigger_rounds(
        self, session: OcppSession, c: ConnectorState, after_s: tuple[float, ...], *, status: bool
    ) -> None:
        """The rounds of one offer (or one start): each at its time after the offer, skipped
        when the charging car was measured within FRESH_METER_S or the budget is spent; none
        after the car left, the session changed or the charge point refused a trigger."""
        started = self.clock.monotonic()
        for at_s in after_s:
            await self.clock.sleep(max(0.0, started + at_s - self.clock.monotonic()))
            if not self.can_trigger or session is not self.session:
                return
            if c.cp_state is not None and not c.cp_state.vehicle_connected:
                return  # the car left
            now = self.clock.monotonic()
            if c.cp_state is not None and c.cp_state.charging and c.meter_at > now - FRESH_METER_S:
                continue  # measured charging a moment ago: nothing to ask now
            if not self.triggers.take():
                continue
            messages = [MessageTrigger.meter_values]
            if status:
                messages.insert(0, MessageTrigger.status_notification)
            async with self._trigger_lock:  # one round at a time per charge point
                self.trigger_rounds += 1
                for message in messages:
                    if not await self._trigger(session, message, c.connector_id):
                        return

    async def _trigger(self, session: OcppSession, message: MessageTrigger, connector: int) -> bool:
        """One TriggerMessage; False (and no more triggers until the next boot) unless the
        answer is Accepted. Never raises but for cancellation."""
        try:
            result = await self._call(
                session, call.TriggerMessage(requested_message=message, connector_id=connector)
            )
        except DeviceError as err:
            reason = str(err)
        except Exception as err:  # best effort: nothing a trigger does may crash
            reason = f"TriggerMessage failed: {type(err).__name__}"
        else:
            status = getattr(result, "status", None)
            if status == "Accepted":
                return True
            reason = f"TriggerMessage answered {str(status)[:40]!r}"
        if isinstance(reason, str) and "connection lost" in reason:
            return False
        self.can_trigger = False
        log.warning("ocpp_trigger_refused", device=self.name, reason=reason)
        return False


__all__ = [
    "FRESH_METER_S",
    "START_OFFER_A",
    "TRIGGER_AFTER_CHARGING_S",
    "TRIGGER_AFTER_OFFER_S",
    "TRIGGER_BURST",
    "TRIGGER_REFILL_S_PER_CONNECTOR",
    "TRIGGER_ROUNDS_PER_S",
    "OcppSession",
    "TriggerBudget",
    "Triggers",
]
