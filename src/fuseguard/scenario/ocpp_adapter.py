"""The in-process OCPP 1.6 charge point (``driver = "ocpp"``) and the adapter picker.

:class:`OcppConnectorCharger` stands in for an OCPP charge point behind fuseguard's central
system (``devices/ocpp/station.py``): control reads what the station would know, which is what
the charge point *reported*, not the connector's state of the moment.

- **StatusNotification** ``status_delay_s`` after every change of the connector's state
  (``[[chargers]] status_delay_s``, default 2 s: a charge point notices a change of its control
  pilot or contactor, debounces it and queues the notification; docs/scenarios.md). Until then
  the sample keeps the last state notified; a status outside Charging zeroes the currents (the
  station's ``on_status``).
- **MeterValues** (``Sample.Periodic``) every ``meter_interval_s`` from the start of the
  transaction (OCPP 1.6 ``MeterValueSampleInterval``), none outside a transaction; 0: a new
  value on every look. Their age is the sample's ``measured_age_s`` while the last status says
  Charging (0 outside Charging, as the station reports it).
- **TriggerMessage**, at the driver's times (``wire/ocpp_triggers.py``, the driver's constants):
  when a limit at or above 6 A is accepted that starts a paused connected car (status and
  MeterValues) or raises a charging one (MeterValues), ``TRIGGER_AFTER_OFFER_S`` after it; and
  MeterValues ``TRIGGER_AFTER_CHARGING_S`` after a Charging status when no rounds are waiting. A
  round is skipped when the charging car was metered within ``FRESH_METER_S``; the rounds stop
  when the car leaves. Not modelled: the central system's shared trigger budget (10 rounds/s,
  burst 20: never binding for the few OCPP chargers of a scenario) and the answer time of a
  trigger. ``triggers = false``: a charge point without RemoteTrigger (or the driver before
  round 9).
- At the start (the boot), the station triggers status and MeterValues of the connector: the
  adapter starts with both current; so it does when the charge point is back from ``offline``.

The charge point's own timeline runs in the core's time (``ChargePoint.now_s``): the adapter
looks at the connector after every site tick (:meth:`OcppConnectorCharger.on_tick`, a
``SiteModel.on_tick`` listener that :func:`charger_adapter` registers) and at every read, so
a notification, a periodic or a triggered MeterValues is taken at the first site tick at or
after its time.

The limits: a limit takes effect ``profile_delay_s`` after it was written (the core's limit
delay). The start installs what the OCPP driver installs: the permanent safe profile
(``safe_current_a``) and the live limit as a lease valid for ``safe_timeout_s`` (the driver's
``[api.ocpp] lease_s``), renewed by the adapter itself every third of it while the charge point
is reachable (the station's own renewal loop, not the writer); a lease that runs out leaves the
charge point on its safe profile.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections import deque

from fuseguard.control.ports import DeviceResponseError
from fuseguard.model.clock import Clock, TimerHandle
from fuseguard.model.faults import DeviceFault
from fuseguard.model.iec import MIN_CHARGE_CURRENT_A
from fuseguard.model.phases import ZERO
from fuseguard.model.samples import ChargerSample
from fuseguard.model.status import CpState, OcppState
from fuseguard.scenario.adapters import ConnectorCharger
from fuseguard.scenario.config import (
    OCPP_STATUS_DELAY_S,
    SCENARIO_CHARGER_FAULTS,
    ChargerSpec,
    SiteSpec,
)
from fuseguard.sim.chargepoint import ChargePoint
from fuseguard.sim.site import SiteModel
from fuseguard.wire.ocpp_triggers import (
    FRESH_METER_S,
    START_OFFER_A,
    TRIGGER_AFTER_CHARGING_S,
    TRIGGER_AFTER_OFFER_S,
)

#: faults under which a lease renewal does not reach the charge point (or is refused)
_NO_RENEWAL = frozenset({DeviceFault.OFFLINE, DeviceFault.GARBAGE, DeviceFault.REJECTS_PROFILES})
#: faults under which a TriggerMessage gets no answer (the round is lost)
_NO_TRIGGER = frozenset({DeviceFault.OFFLINE, DeviceFault.GARBAGE})
#: the station's cap on a measurement's age when no MeterValues came yet (a day)
_MAX_MEASURED_AGE_S = 86_400.0


@dataclasses.dataclass(frozen=True, slots=True)
class Status:
    """What one StatusNotification says."""

    cp_state: CpState
    ocpp_state: OcppState
    errors: tuple[str, ...]

    @classmethod
    def of(cls, cp: ChargePoint) -> Status:
        """The connector's state now."""
        return cls(cp.cp_state, cp.ocpp_state, cp.errors)


class OcppConnectorCharger(ConnectorCharger):
    """An OCPP 1.6 charge point in process (see the module docstring).

    ``safe_timeout_s`` is the lease of the live-limit profile (``[api.ocpp] lease_s`` of the
    driver); ``start()`` installs the safe profile and starts the lease renewal (every
    ``renew_every_s``, a third of the lease, at least 1 s: the station's ``renew_every_s``).
    """

    faults_simulated = SCENARIO_CHARGER_FAULTS

    def __init__(
        self,
        charge_point: ChargePoint,
        *,
        clock: Clock,
        meter_interval_s: float = 0.0,
        profile_delay_s: float = 0.0,
        status_delay_s: float = OCPP_STATUS_DELAY_S,
        triggers: bool = True,
        slow_delay_s: float = 5.0,
        safe_current_a: int = MIN_CHARGE_CURRENT_A,
        safe_timeout_s: int = 60,
    ) -> None:
        super().__init__(
            charge_point,
            clock=clock,
            slow_delay_s=slow_delay_s,
            safe_current_a=safe_current_a,
            safe_timeout_s=safe_timeout_s,
        )
        self.meter_interval_s = meter_interval_s
        self.status_delay_s = status_delay_s
        self.triggers = triggers
        charge_point.limit_delay_s = profile_delay_s
        self.rejected = 0
        self._refused: str | None = None  # the last limit was refused: why (the sample says so)
        self._written_s = 0.0
        self._offered_over = 0  # MeterValues in a row offering more than the limit
        #: the station renews the lease this often (``StationConfig.renew_every_s``)
        self.renew_every_s = max(1.0, safe_timeout_s / 3)
        self.renewals = 0
        self._renewed_s = -math.inf
        self._renewal: TimerHandle | None = None
        # the charge point's side: the state seen last, notifications on their way
        self._seen = Status.of(charge_point)
        self._outbox: deque[tuple[float, Status]] = deque()
        self._tx_start_s: float | None = None
        self._next_meter_s = math.inf
        # the central system's side: what was reported
        self._status = self._seen
        self._metered = charge_point.sample()
        self._metered_s = charge_point.now_s
        self._zeroed = False  # a status outside Charging came after the last MeterValues
        # trigger rounds waiting (core times), and whether they ask for the status too
        self._rounds: deque[float] = deque()
        self._rounds_status = False
        self._in_round = False
        self.trigger_rounds = 0
        self.status_notifications = 0
        self.meter_values = 0
        self._observe()  # a transaction running already runs on its own schedule

    # --- the charge point's timeline -----------------------------------------------------

    def on_tick(self, _t_s: float) -> None:
        """``SiteModel.on_tick`` listener: look at the connector after every site tick."""
        self._observe()

    def _observe(self) -> None:
        """What the charge point does up to now: notify state changes (late), send periodic
        and triggered MeterValues, in time order."""
        cp = self.charge_point
        now = cp.now_s
        seen = Status.of(cp)
        if seen != self._seen:
            self._seen = seen
            self._outbox.append((now + self.status_delay_s, seen))
        active = cp.car is not None and cp.session.active
        if not active:
            self._tx_start_s, self._next_meter_s = None, math.inf
        elif self._tx_start_s is None:
            self._tx_start_s = now
            self._next_meter_s = now + self.meter_interval_s if self.meter_interval_s > 0 else now
        while True:
            due = min(
                self._outbox[0][0] if self._outbox else math.inf,
                self._rounds[0] if self._rounds else math.inf,
                self._next_meter_s,
            )
            if due > now + 1e-9:
                return
            if self._outbox and self._outbox[0][0] <= due:
                self._notify(self._outbox.popleft()[1])
            elif self._rounds and self._rounds[0] <= due:
                self._round(self._rounds.popleft())
            else:
                self._send_meter_values()
                if self.meter_interval_s > 0:
                    self._next_meter_s += self.meter_interval_s
                else:  # a new value on every look
                    self._next_meter_s = now + 1e-6
                    return

    def _notify(self, status: Status) -> None:
        """A StatusNotification reaches the station (``Triggers.on_status``)."""
        if DeviceFault.OFFLINE in self.charge_point.faults:
            return  # lost; the boot after the outage reports the state again
        was = self._status.cp_state.charging
        self._status = status
        self.status_notifications += 1
        if not status.cp_state.charging:
            self._zeroed = True  # no draw outside Charging
        elif not was and not self._rounds and not self._in_round:
            self._schedule_rounds((TRIGGER_AFTER_CHARGING_S,), status=False)

    def _send_meter_values(self) -> None:
        """A MeterValues with the connector's measurements now reaches the station."""
        cp = self.charge_point
        if DeviceFault.OFFLINE in cp.faults:
            return
        live = cp.sample()
        if live.cp_state.charging:
            self._count_offered_over(live)
        self._metered, self._metered_s, self._zeroed = live, cp.now_s, False
        self.meter_values += 1

    def _boot(self) -> None:
        """The station's set-up triggers: status and MeterValues of the connector, now."""
        cp = self.charge_point
        self._seen = Status.of(cp)
        self._outbox.clear()
        self._notify(self._seen)
        self._send_meter_values()

    # --- trigger rounds (devices/ocpp/triggers.py) -------------------------------------

    def _schedule_rounds(self, after_s: tuple[float, ...], *, status: bool) -> None:
        """Rounds ``after_s`` from now (replacing any still waiting)."""
        if not self.triggers:
            return
        now = self.charge_point.now_s
        self._rounds = deque(now + a for a in after_s)
        self._rounds_status = status

    def _round(self, _at_s: float) -> None:
        """One trigger round: status (after an offer to a paused car) and MeterValues."""
        cp = self.charge_point
        if not self._status.cp_state.vehicle_connected:
            self._rounds.clear()  # the car left
            return
        charging = self._status.cp_state.charging
        if charging and self._metered_s > cp.now_s - FRESH_METER_S:
            return  # metered charging a moment ago
        if cp.faults & _NO_TRIGGER:
            return
        self.trigger_rounds += 1
        self._in_round = True
        try:
            if self._rounds_status:
                self._notify(Status.of(cp))
            self._send_meter_values()
        finally:
            self._in_round = False

    def _offer_accepted(self, current_a: int, before: int | None) -> None:
        """The lease profile was accepted: ask what the car takes (``Station._install_lease``)."""
        if current_a < START_OFFER_A or (before is not None and current_a <= before):
            return
        start = before is None or before < START_OFFER_A
        state = self._status.cp_state
        if state.vehicle_connected if start else state.charging:
            self._schedule_rounds(TRIGGER_AFTER_OFFER_S, status=start)

    # --- the lease -----------------------------------------------------------------------

    @property
    def watchdog_refresh_s(self) -> float:
        """No ``SupportsWatchdog`` duty for the writer: like the OCPP driver's station, the
        adapter renews the lease itself (``renew_every_s``)."""
        return math.inf

    @property
    def watchdog_cadence_s(self) -> float:
        """The lease renewal period (once started)."""
        return self.renew_every_s if self.safe_timeout_s > 0 else math.inf

    async def start(self) -> None:
        """Install the safe profile and the lease timeout, and start renewing the lease (the
        station's set-up after BootNotification, with its status and MeterValues triggers);
        refused under ``rejects_profiles``."""
        if DeviceFault.REJECTS_PROFILES in self.charge_point.faults:
            await self._io()
            msg = f"{self.name}: SetChargingProfile Rejected (simulated rejects_profiles)"
            raise DeviceResponseError(msg)
        await super().start()
        self._boot()
        self._renewed_s = self.clock.monotonic()
        if self._renewal is None and self.safe_timeout_s > 0:
            self._renewal = self.clock.call_later(self.renew_every_s, self._renew)

    async def close(self) -> None:
        """Stop renewing the lease."""
        if self._renewal is not None:
            self._renewal.cancel()
            self._renewal = None

    def set_fault(self, kind: DeviceFault | str | None) -> None:
        """As :meth:`ConnectorCharger.set_fault`; a charge point back from ``offline`` boots
        again (its status and MeterValues triggered at once)."""
        was_offline = DeviceFault.OFFLINE in self.charge_point.faults
        super().set_fault(kind)
        if was_offline and DeviceFault.OFFLINE not in self.charge_point.faults:
            self._boot()

    def _renew(self) -> None:
        """The station's renewal tick: re-install the lease of the last limit, unless it was
        (re)installed within 90 % of the period; it does not reach a charge point that is
        offline or answers garbage, and one that rejects profiles refuses it (the lease runs
        out: the charge point falls back to its safe profile). A ``slow`` one applies it
        ``slow_delay_s`` late."""
        self._renewal = self.clock.call_later(self.renew_every_s, self._renew)
        cp = self.charge_point
        limit = self.last_written_a
        if limit is None or cp.faults & _NO_RENEWAL:
            return
        if self.clock.monotonic() - self._renewed_s < self.renew_every_s * 0.9:
            return
        self._renewed_s = self.clock.monotonic()
        if DeviceFault.SLOW in cp.faults:
            self.clock.call_later(self.slow_delay_s, functools.partial(self._apply_renewal, limit))
        else:
            self._apply_renewal(limit)

    def _apply_renewal(self, limit_a: int) -> None:
        cp = self.charge_point
        if cp.faults & _NO_RENEWAL or self.last_written_a != limit_a:
            return  # lost on the way, or a newer limit was written meanwhile
        self.renewals += 1
        cp.write_limit(float(limit_a), cp.now_s)

    # --- the controller's side -------------------------------------------------------------

    async def read(self) -> ChargerSample:
        """What the station knows: the state last notified, the last MeterValues."""
        await self._io()
        self._observe()
        cp = self.charge_point
        status, metered = self._status, self._metered
        charging = status.cp_state.charging
        zeroed = self._zeroed
        sample = dataclasses.replace(
            cp.sample(),
            cp_state=status.cp_state,
            ocpp_state=status.ocpp_state,
            errors=status.errors,
            current_a=ZERO if zeroed else metered.current_a,
            power_w=0.0 if zeroed else metered.power_w,
            energy_wh=metered.energy_wh,
            signalled_current_a=metered.signalled_current_a,
            phases_in_use=metered.phases_in_use if charging and not zeroed else None,
            measured_age_s=(
                min(_MAX_MEASURED_AGE_S, cp.now_s - self._metered_s) if charging else 0.0
            ),
        )
        why = self._refused or self._ignored()
        if why is not None:
            sample = dataclasses.replace(sample, uncontrollable=why, errors=(*sample.errors, why))
        return sample

    def _count_offered_over(self, live: ChargerSample) -> None:
        """A new MeterValues: does Current.Offered exceed the limit (as the central system
        judges it, ``devices/ocpp/station.py``: + 1 A, two meter intervals + 5 s after a write)?"""
        offered, limit = live.signalled_current_a, self.last_written_a
        settled = self.charge_point.now_s - self._written_s > 2 * self.meter_interval_s + 5
        over = offered is not None and limit is not None and offered > limit + 1.0
        self._offered_over = self._offered_over + 1 if over and settled else 0

    def _ignored(self) -> str | None:
        if self._offered_over < 2:
            return None
        return f"{self.name}: offers more than the limit {self.last_written_a} A (ignores it)"

    async def set_current_limit(self, current_a: int) -> None:
        """A lease profile; refused under ``rejects_profiles``."""
        if DeviceFault.REJECTS_PROFILES in self.charge_point.faults:
            await self._io()
            self.rejected += 1
            msg = f"{self.name}: SetChargingProfile Rejected (simulated rejects_profiles)"
            self._refused = msg
            raise DeviceResponseError(msg)
        before = self.last_written_a
        if current_a != before:
            self._written_s = self.charge_point.now_s
        await super().set_current_limit(current_a)
        self._renewed_s = self.clock.monotonic()
        self._refused = None
        self._offer_accepted(int(current_a), before)


def charger_adapter(
    charge_point: ChargePoint,
    spec: ChargerSpec,
    site: SiteSpec,
    clock: Clock,
    model: SiteModel | None = None,
) -> ConnectorCharger:
    """The in-process driver of scenario charger ``spec`` (its ``driver``); an OCPP charge
    point looks at its connector after every tick of the site ``model``."""
    if spec.driver == "ocpp":
        ocpp = OcppConnectorCharger(
            charge_point,
            clock=clock,
            meter_interval_s=spec.meter_interval_s,
            profile_delay_s=spec.profile_delay_s,
            status_delay_s=spec.status_delay_s,
            triggers=spec.triggers,
            slow_delay_s=site.slow_delay_s,
            safe_current_a=site.charger_safe_current_a,
            safe_timeout_s=site.charger_safe_timeout_s,
        )
        if model is not None:
            model.on_tick(ocpp.on_tick)
        return ocpp
    return ConnectorCharger(
        charge_point,
        clock=clock,
        slow_delay_s=site.slow_delay_s,
        safe_current_a=site.charger_safe_current_a,
        safe_timeout_s=site.charger_safe_timeout_s,
    )


__all__ = ["OcppConnectorCharger", "Status", "charger_adapter"]
