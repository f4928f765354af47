"""OCPP 1.6 smart-charging profile stacking, as a charge point does it (pure, no I/O).

OCPP 1.6 edition 2, section 3.13 "Smart Charging" (and 5.16 SetChargingProfile, 5.5
ClearChargingProfile, 5.7 GetCompositeSchedule, 7.7-7.13 the profile types):

- **Purposes.** ``ChargePointMaxProfile`` (connector 0 only: a cap on the whole charge point),
  ``TxDefaultProfile`` (connector 0: default for every connector; on a connector: overrides the
  connector-0 default for that connector), ``TxProfile`` (one connector, only while a transaction
  runs there; removed when it ends).
- **Stack levels.** Within one purpose (and connector) the valid profile with the highest
  ``stackLevel`` that has a period at time t prevails. A new profile replaces an installed one
  with the same ``chargingProfileId``, or with the same ``stackLevel`` and purpose on the same
  connector.
- **Validity.** ``validFrom`` <= t < ``validTo`` (either may be absent).
- **Kinds.** ``Absolute`` (periods from ``startSchedule``), ``Relative`` (periods from the start
  of the transaction; without one, from now), ``Recurring`` (``Daily`` / ``Weekly`` from
  ``startSchedule``). A schedule with ``duration`` ends after it.
- **Composite.** limit(t) = min(ChargePointMaxProfile, TxProfile if the running transaction has one,
  else TxDefaultProfile); where no profile applies, the charge point's maximum. Limits in W are
  converted to A with the voltage and the period's ``numberPhases`` (3 when absent).

Times are POSIX seconds (floats, UTC). Wire payloads come in the ``ocpp`` library's snake_case
dicts and are validated here (bounded, finite) before anything is stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from fuseguard.model.numbers import finite

DAY_S = 86_400.0
WEEK_S = 7 * DAY_S
#: a profile above this limit is refused (A or W)
MAX_LIMIT = 1_000_000.0
#: the most periods a schedule (and a composite schedule) may have
MAX_PERIODS = 1024


class Purpose(StrEnum):
    CHARGE_POINT_MAX = "ChargePointMaxProfile"
    TX_DEFAULT = "TxDefaultProfile"
    TX = "TxProfile"


class ProfileError(ValueError):
    """A charging profile that is not acceptable (the charge point answers Rejected)."""


@dataclass(frozen=True, slots=True)
class Period:
    start_s: float  #: startPeriod, seconds from the schedule's start
    limit: float  #: in the schedule's unit
    phases: int | None = None


@dataclass(frozen=True, slots=True)
class Profile:
    """One installed charging profile."""

    profile_id: int
    connector_id: int
    stack_level: int
    purpose: Purpose
    kind: str  #: Absolute / Relative / Recurring
    periods: tuple[Period, ...]
    unit_amps: bool = True
    start_s: float | None = None  #: startSchedule
    duration_s: float | None = None
    recurrency: str | None = None  #: Daily / Weekly
    valid_from_s: float | None = None
    valid_to_s: float | None = None
    transaction_id: int | None = None

    def valid_at(self, t_s: float) -> bool:
        if self.valid_from_s is not None and t_s < self.valid_from_s:
            return False
        return self.valid_to_s is None or t_s < self.valid_to_s

    def schedule_origin(self, t_s: float, tx_start_s: float | None) -> float | None:
        """When the schedule's period 0 began, as seen at ``t_s`` (None: not started)."""
        if self.kind == "Relative":
            return tx_start_s if tx_start_s is not None else t_s
        start = self.start_s if self.start_s is not None else t_s
        if self.kind == "Recurring":
            cycle = WEEK_S if self.recurrency == "Weekly" else DAY_S
            return t_s - (t_s - start) % cycle
        return start

    def period_at(self, t_s: float, tx_start_s: float | None) -> Period | None:
        """The period in force at ``t_s`` (None: invalid, not started or ended)."""
        if not self.valid_at(t_s):
            return None
        origin = self.schedule_origin(t_s, tx_start_s)
        if origin is None:
            return None
        offset = t_s - origin
        if offset < 0.0 or (self.duration_s is not None and offset >= self.duration_s):
            return None
        found: Period | None = None
        for period in self.periods:
            if period.start_s <= offset:
                found = period
            else:
                break
        return found

    def breakpoints(self, t0_s: float, t1_s: float, tx_start_s: float | None) -> set[float]:
        """Times in [t0, t1) at which this profile's contribution may change."""
        points = {p for p in (self.valid_from_s, self.valid_to_s) if p is not None}
        origins: list[float] = []
        if self.kind == "Recurring":
            cycle = WEEK_S if self.recurrency == "Weekly" else DAY_S
            first = self.schedule_origin(t0_s, tx_start_s)
            if first is not None:
                n = min(int((t1_s - first) // cycle) + 1, MAX_PERIODS)
                origins = [first + k * cycle for k in range(n)]
        else:
            origin = self.schedule_origin(t0_s, tx_start_s)
            origins = [] if origin is None else [origin]
        for origin in origins:
            points.update(origin + p.start_s for p in self.periods)
            if self.duration_s is not None:
                points.add(origin + self.duration_s)
        return {p for p in points if t0_s <= p < t1_s}


def to_amps(period: Period, unit_amps: bool, voltage_v: float) -> float:
    """A period's limit in A per phase."""
    if unit_amps:
        return period.limit
    return period.limit / (voltage_v * (period.phases or 3))


@dataclass(slots=True)
class ProfileStack:
    """The charging profiles installed on one charge point, and what they allow.

    ``max_stack_level`` and ``max_profiles`` are the charge point's
    ``ChargeProfileMaxStackLevel`` and ``MaxChargingProfilesInstalled``.
    """

    connectors: int
    max_current_a: float
    voltage_v: float = 230.0
    max_stack_level: int = 8
    max_profiles: int = 20
    profiles: list[Profile] = field(default_factory=list)

    def install(self, profile: Profile, active_tx: dict[int, int]) -> None:
        """Install (or replace) ``profile``; ``active_tx``: connector -> running transaction id.
        Raises :class:`ProfileError` when the charge point must answer Rejected."""
        cid = profile.connector_id
        if not 0 <= cid <= self.connectors:
            raise ProfileError(f"no connector {cid}")
        if not 0 <= profile.stack_level <= self.max_stack_level:
            raise ProfileError(f"stack level {profile.stack_level} above {self.max_stack_level}")
        if profile.purpose is Purpose.CHARGE_POINT_MAX and cid != 0:
            raise ProfileError("ChargePointMaxProfile only on connector 0")
        if profile.purpose is Purpose.TX:
            if cid == 0 or cid not in active_tx:
                raise ProfileError("TxProfile without a transaction on the connector")
            tx = active_tx[cid]
            if profile.transaction_id is not None and profile.transaction_id != tx:
                raise ProfileError("TxProfile for another transaction")
        kept = [
            p
            for p in self.profiles
            if p.profile_id != profile.profile_id
            and not (
                p.connector_id == cid
                and p.stack_level == profile.stack_level
                and p.purpose is profile.purpose
            )
        ]
        if len(kept) >= self.max_profiles:
            raise ProfileError("MaxChargingProfilesInstalled reached")
        kept.append(profile)
        self.profiles = kept

    def clear(
        self,
        *,
        profile_id: int | None = None,
        connector_id: int | None = None,
        purpose: Purpose | None = None,
        stack_level: int | None = None,
    ) -> bool:
        """ClearChargingProfile: by id, or by every criterion given (none: all). True when at
        least one profile was removed (Accepted), else False (Unknown)."""

        def matches(p: Profile) -> bool:
            if profile_id is not None:
                return p.profile_id == profile_id
            return (
                (connector_id is None or p.connector_id == connector_id)
                and (purpose is None or p.purpose is purpose)
                and (stack_level is None or p.stack_level == stack_level)
            )

        kept = [p for p in self.profiles if not matches(p)]
        removed = len(kept) != len(self.profiles)
        self.profiles = kept
        return removed

    def end_transaction(self, connector_id: int) -> None:
        """A transaction ended: its TxProfiles go (section 3.13.2)."""
        self.clear(connector_id=connector_id, purpose=Purpose.TX)

    def drop_expired(self, t_s: float) -> None:
        """Forget profiles whose ``validTo`` has passed."""
        self.profiles = [p for p in self.profiles if p.valid_to_s is None or p.valid_to_s > t_s]

    def _prevailing(
        self, candidates: list[Profile], t_s: float, tx_start_s: float | None
    ) -> float | None:
        best: tuple[int, float] | None = None
        for p in candidates:
            period = p.period_at(t_s, tx_start_s)
            if period is not None and (best is None or p.stack_level > best[0]):
                best = (p.stack_level, to_amps(period, p.unit_amps, self.voltage_v))
        return None if best is None else best[1]

    def limit_a(
        self,
        connector_id: int,
        t_s: float,
        tx_start_s: float | None = None,
        tx_id: int | None = None,
    ) -> float:
        """The composite limit (A per phase) of connector ``connector_id`` at ``t_s``;
        ``tx_start_s``/``tx_id``: the running transaction there, if any."""
        by_purpose: dict[Purpose, list[Profile]] = {p: [] for p in Purpose}
        defaults_here: list[Profile] = []
        for p in self.profiles:
            if p.purpose is Purpose.CHARGE_POINT_MAX:
                by_purpose[p.purpose].append(p)
            elif p.purpose is Purpose.TX_DEFAULT:
                if p.connector_id == connector_id:
                    defaults_here.append(p)
                elif p.connector_id == 0:
                    by_purpose[p.purpose].append(p)
            elif (
                p.connector_id == connector_id
                and tx_id is not None
                and p.transaction_id in (None, tx_id)
            ):
                by_purpose[p.purpose].append(p)
        limit = self.max_current_a
        cap = self._prevailing(by_purpose[Purpose.CHARGE_POINT_MAX], t_s, tx_start_s)
        if cap is not None:
            limit = min(limit, cap)
        tx = self._prevailing(by_purpose[Purpose.TX], t_s, tx_start_s)
        if tx is None:
            tx = self._prevailing(defaults_here, t_s, tx_start_s)
        if tx is None:
            tx = self._prevailing(by_purpose[Purpose.TX_DEFAULT], t_s, tx_start_s)
        if tx is not None:
            limit = min(limit, tx)
        return max(0.0, limit)

    def composite(
        self,
        connector_id: int,
        t0_s: float,
        duration_s: float,
        tx_start_s: float | None = None,
        tx_id: int | None = None,
    ) -> list[tuple[float, float]]:
        """GetCompositeSchedule: ``(startPeriod s, limit A)`` periods over
        [t0, t0 + duration), equal neighbours merged, at most :data:`MAX_PERIODS`."""
        t1_s = t0_s + duration_s
        points = {t0_s}
        for p in self.profiles:
            points |= p.breakpoints(t0_s, t1_s, tx_start_s)
        periods: list[tuple[float, float]] = []
        for t_s in sorted(points):
            if connector_id == 0:
                limit = min(
                    (self.limit_a(c, t_s, None, None) for c in range(1, self.connectors + 1)),
                    default=self.max_current_a,
                )
            else:
                limit = self.limit_a(connector_id, t_s, tx_start_s, tx_id)
            if periods and periods[-1][1] == limit:
                continue
            periods.append((t_s - t0_s, limit))
            if len(periods) >= MAX_PERIODS:
                break
        return periods


# --- the wire (the ocpp library's snake_case dicts) -------------------------------------------


def parse_time(value: Any, what: str) -> float:
    """An OCPP dateTime (ISO 8601) as POSIX seconds; naive times are UTC."""
    if not isinstance(value, str) or len(value) > 40:
        raise ProfileError(f"{what}: not a date-time")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as err:
        raise ProfileError(f"{what}: {err}") from err
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _number(value: Any, what: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ProfileError(f"{what}: not a number")
    try:
        number = finite(float(value), what)
    except ValueError as err:
        raise ProfileError(str(err)) from err
    if not low <= number <= high:
        raise ProfileError(f"{what}: {number} out of range")
    return number


def profile_from_wire(connector_id: int, raw: dict[str, Any]) -> Profile:
    """A ``csChargingProfiles`` payload (already schema-valid) as a :class:`Profile`."""
    schedule = raw.get("charging_schedule")
    if not isinstance(schedule, dict):
        raise ProfileError("no chargingSchedule")
    raw_periods = schedule.get("charging_schedule_period")
    if not isinstance(raw_periods, list) or not 0 < len(raw_periods) <= MAX_PERIODS:
        raise ProfileError("chargingSchedulePeriod: 1..1024 periods")
    periods: list[Period] = []
    for item in raw_periods:
        start = _number(item.get("start_period"), "startPeriod", 0, 10 * WEEK_S)
        if periods and start <= periods[-1].start_s:
            raise ProfileError("startPeriod not increasing")
        if not periods and start != 0:
            raise ProfileError("first startPeriod must be 0")
        phases = item.get("number_phases")
        if phases is not None:
            phases = int(_number(phases, "numberPhases", 1, 3))
        periods.append(Period(start, _number(item.get("limit"), "limit", 0, MAX_LIMIT), phases))
    kind = raw.get("charging_profile_kind")
    if kind not in ("Absolute", "Relative", "Recurring"):
        raise ProfileError(f"chargingProfileKind {kind!r}")
    recurrency = raw.get("recurrency_kind")
    start_raw = schedule.get("start_schedule")
    if kind == "Recurring" and (recurrency not in ("Daily", "Weekly") or start_raw is None):
        raise ProfileError("Recurring needs recurrencyKind and startSchedule")
    duration = schedule.get("duration")
    valid_from = raw.get("valid_from")
    valid_to = raw.get("valid_to")
    tx_id = raw.get("transaction_id")
    return Profile(
        profile_id=int(_number(raw.get("charging_profile_id"), "chargingProfileId", 0, 2**31)),
        connector_id=connector_id,
        stack_level=int(_number(raw.get("stack_level"), "stackLevel", 0, 1000)),
        purpose=Purpose(str(raw.get("charging_profile_purpose"))),
        kind=kind,
        periods=tuple(periods),
        unit_amps=schedule.get("charging_rate_unit") == "A",
        start_s=None if start_raw is None else parse_time(start_raw, "startSchedule"),
        duration_s=None if duration is None else _number(duration, "duration", 0, 10 * WEEK_S),
        recurrency=recurrency if kind == "Recurring" else None,
        valid_from_s=None if valid_from is None else parse_time(valid_from, "validFrom"),
        valid_to_s=None if valid_to is None else parse_time(valid_to, "validTo"),
        transaction_id=None if tx_id is None else int(_number(tx_id, "transactionId", 0, 2**31)),
    )


__all__ = [
    "DAY_S",
    "MAX_PERIODS",
    "WEEK_S",
    "Period",
    "Profile",
    "ProfileError",
    "ProfileStack",
    "Purpose",
    "parse_time",
    "profile_from_wire",
    "to_amps",
]
