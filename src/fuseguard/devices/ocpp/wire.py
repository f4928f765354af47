"""OCPP 1.6J values <-> fuseguard domain values (pure functions, no I/O).

Everything a charge point sends is hostile until it has passed here: status strings are looked
up in closed tables, meter values are parsed from their string form, checked with
:func:`fuseguard.model.numbers.finite` against physical bounds and converted to A / W / Wh.
Profiles fuseguard sends are built here too, so the virtual charge point and the tests can use
the same shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fuseguard.model.numbers import NotFiniteError, finite
from fuseguard.model.phases import Phases
from fuseguard.model.status import CpState, OcppState

#: What control needs from a charge point's meter (``MeterValuesSampledData``).
MEASURANDS: tuple[str, ...] = (
    "Current.Import",
    "Current.Offered",
    "Power.Active.Import",
    "Energy.Active.Import.Register",
)

#: Configuration keys read after boot.
CONFIG_KEYS: tuple[str, ...] = (
    "SupportedFeatureProfiles",
    "ChargeProfileMaxStackLevel",
    "ChargingScheduleAllowedChargingRateUnit",
    "MaxChargingProfilesInstalled",
    "MeterValuesSampledData",
    "MeterValueSampleInterval",
    "NumberOfConnectors",
)

MAX_CURRENT_A = 1000.0  # beyond any AC connector: a larger reading is garbage
MAX_POWER_W = 1_000_000.0
MAX_ENERGY_WH = 1e12  # 1 TWh
MAX_VALUE_CHARS = 32  # a sampled value is a decimal number; longer strings are refused
MAX_CONNECTOR_ID = 64

# OCPP 1.6 ChargePointStatus -> (fuseguard OcppState, IEC 61851 CP state it implies).
# Preparing/SuspendedEV/SuspendedEVSE/Finishing: a vehicle is plugged, not drawing (B).
# Unavailable is not a fault (plug_status -> stopped); Faulted is CP F (EVSE not available).
_STATUS: Mapping[str, tuple[OcppState, CpState]] = {
    "Available": (OcppState.AVAILABLE, CpState.A),
    "Preparing": (OcppState.PREPARING, CpState.B),
    "Charging": (OcppState.CHARGING, CpState.C),
    "SuspendedEVSE": (OcppState.SUSPENDEDEVSE, CpState.B),
    "SuspendedEV": (OcppState.SUSPENDEDEV, CpState.B),
    "Finishing": (OcppState.FINISHING, CpState.B),
    "Reserved": (OcppState.RESERVED, CpState.A),
    "Unavailable": (OcppState.UNAVAILABLE, CpState.A),
    "Faulted": (OcppState.FAULTED, CpState.F),
}


class OcppValueError(ValueError):
    """A value from a charge point is not what OCPP 1.6 allows or not physically plausible."""


def status_of(status: str) -> tuple[OcppState, CpState]:
    """OCPP 1.6 connector status -> (OcppState, CP state); OcppValueError when unknown."""
    try:
        return _STATUS[status]
    except KeyError:
        msg = f"unknown connector status {status[:40]!r}"
        raise OcppValueError(msg) from None


def connector_id_of(value: object) -> int:
    """A connector id from the wire: an int in 0..MAX_CONNECTOR_ID."""
    try:
        number = finite(value, "connectorId", lo=0, hi=MAX_CONNECTOR_ID)
    except NotFiniteError as err:
        raise OcppValueError(str(err)) from None
    if number != int(number):
        msg = f"connectorId {number} is not an integer"
        raise OcppValueError(msg)
    return int(number)


def energy_wh_of(value: object, what: str) -> float:
    """A Wh meter reading (StartTransaction meterStart, StopTransaction meterStop)."""
    try:
        return finite(value, what, lo=0, hi=MAX_ENERGY_WH)
    except NotFiniteError as err:
        raise OcppValueError(str(err)) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterReading:
    """What one MeterValues message said about one connector (None: not reported)."""

    current_a: Phases | None = None
    offered_a: float | None = None
    power_w: float | None = None
    energy_wh: float | None = None
    #: sampled values that were refused, each with its reason
    refused: tuple[str, ...] = field(default=())


_UNIT_SCALE: Mapping[str, Mapping[str, float]] = {
    "current": {"A": 1.0},
    "power": {"W": 1.0, "kW": 1000.0},
    "energy": {"Wh": 1.0, "kWh": 1000.0},
}
_KIND_BOUNDS: Mapping[str, tuple[float, float]] = {
    "current": (-MAX_CURRENT_A, MAX_CURRENT_A),
    "power": (-MAX_POWER_W, MAX_POWER_W),
    "energy": (0.0, MAX_ENERGY_WH),
}
_MEASURAND_KIND: Mapping[str, str] = {
    "Current.Import": "current",
    "Current.Offered": "current",
    "Power.Active.Import": "power",
    "Energy.Active.Import.Register": "energy",
}
_DEFAULT_UNIT = {"current": "A", "power": "W", "energy": "Wh"}
_PHASE_INDEX = {"L1": 0, "L2": 1, "L3": 2, "L1-N": 0, "L2-N": 1, "L3-N": 2}


def _sampled_number(sv: Mapping[str, Any], measurand: str) -> float:
    kind = _MEASURAND_KIND[measurand]
    raw = sv.get("value")
    if not isinstance(raw, str) or len(raw) > MAX_VALUE_CHARS:
        msg = f"{measurand}: value is not a short decimal string"
        raise OcppValueError(msg)
    if sv.get("format", "Raw") != "Raw":
        msg = f"{measurand}: format {str(sv.get('format'))[:20]!r} is not Raw"
        raise OcppValueError(msg)
    unit = sv.get("unit", _DEFAULT_UNIT[kind])
    scale = _UNIT_SCALE[kind].get(unit) if isinstance(unit, str) else None
    if scale is None:
        msg = f"{measurand}: unit {str(unit)[:20]!r} is not a {kind} unit"
        raise OcppValueError(msg)
    try:
        number = float(raw.strip())
    except ValueError:
        msg = f"{measurand}: {raw!r} is not a number"
        raise OcppValueError(msg) from None
    lo, hi = _KIND_BOUNDS[kind]
    try:
        return finite(number * scale, measurand, lo=lo, hi=hi)
    except NotFiniteError as err:
        raise OcppValueError(str(err)) from None


def parse_meter_values(meter_value: object) -> MeterReading:
    """The newest value of each measurand control needs, from a MeterValues ``meterValue`` list.

    The payload has passed the OCPP JSON schema (keys snake_case, as the ``ocpp`` library hands
    them over); values are decimal strings. Per-phase currents come from ``phase`` L1/L2/L3
    (or L1-N ...); a current without phase is taken as the L1 current of a one-phase reading
    when no per-phase value is present. Energy and power are totals (values with a phase are
    ignored). Unknown measurands are ignored, implausible values refused and listed.
    """
    if not isinstance(meter_value, list):
        return MeterReading(refused=("meterValue is not a list",))
    per_phase: list[float | None] = [None, None, None]
    phaseless_a: float | None = None
    values: dict[str, float] = {}
    refused: list[str] = []
    for mv in meter_value:
        sampled = mv.get("sampled_value") if isinstance(mv, dict) else None
        for sv in sampled if isinstance(sampled, list) else []:
            if not isinstance(sv, dict):
                continue
            measurand = sv.get("measurand", "Energy.Active.Import.Register")
            if measurand not in _MEASURAND_KIND or sv.get("location", "Outlet") != "Outlet":
                continue
            try:
                number = _sampled_number(sv, measurand)
            except OcppValueError as err:
                refused.append(str(err))
                continue
            phase = sv.get("phase")
            if measurand == "Current.Import":
                if phase in _PHASE_INDEX:
                    per_phase[_PHASE_INDEX[phase]] = max(0.0, number)
                elif phase is None:
                    phaseless_a = max(0.0, number)
            elif phase is None:
                values[measurand] = number
    current: Phases | None = None
    if any(v is not None for v in per_phase):
        current = Phases.of(v or 0.0 for v in per_phase)
    elif phaseless_a is not None:
        current = Phases(phaseless_a, 0.0, 0.0)
    offered = values.get("Current.Offered")
    power = values.get("Power.Active.Import")
    return MeterReading(
        current_a=current,
        offered_a=max(0.0, offered) if offered is not None else None,
        power_w=max(0.0, power) if power is not None else None,
        energy_wh=values.get("Energy.Active.Import.Register"),
        refused=tuple(refused),
    )


# --- configuration ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargePointConfig:
    """What GetConfiguration told us (None: key unknown to the charge point)."""

    feature_profiles: frozenset[str] | None = None
    max_stack_level: int | None = None
    rate_units: frozenset[str] | None = None
    max_profiles: int | None = None
    sampled_data: tuple[str, ...] | None = None
    sample_interval_s: int | None = None
    connectors: int | None = None

    @property
    def smart_charging(self) -> bool:
        """True unless the charge point says it lacks the SmartCharging feature profile."""
        return self.feature_profiles is None or "SmartCharging" in self.feature_profiles

    @property
    def amps(self) -> bool:
        """True when schedules in A are allowed (or the key is unknown: A is the default)."""
        return self.rate_units is None or "Current" in self.rate_units


def _csl(value: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in value.split(",") if p.strip())[:64]


def _small_int(value: str, hi: int) -> int | None:
    text = value.strip()
    if not text.isdigit() or len(text) > 9:
        return None
    number = int(text)
    return number if number <= hi else None


def parse_configuration(keys: object) -> ChargePointConfig:
    """GetConfiguration ``configurationKey`` list (snake_case dicts) -> ChargePointConfig."""
    found: dict[str, str] = {}
    for item in keys if isinstance(keys, list) else []:
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            value = item.get("value")
            if isinstance(value, str) and len(value) <= 500:
                found[item["key"]] = value
    profiles = found.get("SupportedFeatureProfiles")
    units = found.get("ChargingScheduleAllowedChargingRateUnit")
    stack = found.get("ChargeProfileMaxStackLevel")
    max_profiles = found.get("MaxChargingProfilesInstalled")
    sampled = found.get("MeterValuesSampledData")
    interval = found.get("MeterValueSampleInterval")
    connectors = found.get("NumberOfConnectors")
    return ChargePointConfig(
        feature_profiles=frozenset(_csl(profiles)) if profiles is not None else None,
        max_stack_level=_small_int(stack, 1000) if stack is not None else None,
        rate_units=frozenset(_csl(units)) if units is not None else None,
        max_profiles=_small_int(max_profiles, 10_000) if max_profiles is not None else None,
        sampled_data=_csl(sampled) if sampled is not None else None,
        sample_interval_s=_small_int(interval, 86_400) if interval is not None else None,
        connectors=_small_int(connectors, MAX_CONNECTOR_ID) if connectors is not None else None,
    )


# --- profiles -----------------------------------------------------------------------------------

#: chargingProfileId = base + connector id (one safe and one lease profile per connector).
SAFE_PROFILE_ID_BASE = 1_000_100
LEASE_PROFILE_ID_BASE = 1_000_200


def iso(dt: datetime) -> str:
    """UTC timestamp as OCPP writes it (second resolution, ``Z``)."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileUnit:
    """How limits are written: A (with ``numberPhases``) or W at ``voltage_v`` per phase."""

    amps: bool = True
    phases: int | None = None
    voltage_v: float = 230.0

    def limit(self, current_a: int) -> float:
        """The schedule limit for ``current_a`` A per phase (one decimal, as the schema wants)."""
        if self.amps:
            return float(current_a)
        return float(round(current_a * self.voltage_v * (self.phases or 3)))


def tx_default_profile(
    *,
    profile_id: int,
    stack_level: int,
    current_a: int,
    unit: ProfileUnit,
    start: datetime,
    valid_to: datetime | None = None,
    purpose: str = "TxDefaultProfile",
) -> dict[str, Any]:
    """A TxDefaultProfile (Absolute, one period from ``start``), camelCase as on the wire.

    Without ``valid_to`` it is permanent; with it, the charge point drops it at ``valid_to`` and
    the next lower stack level (the safe profile) takes over by itself. Local controller mode
    uses the same shape with ``purpose="ChargePointMaxProfile"`` on connector 0.
    """
    period: dict[str, Any] = {"startPeriod": 0, "limit": unit.limit(current_a)}
    if unit.phases is not None:
        period["numberPhases"] = unit.phases
    profile: dict[str, Any] = {
        "chargingProfileId": profile_id,
        "stackLevel": stack_level,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {
            "chargingRateUnit": "A" if unit.amps else "W",
            "startSchedule": iso(start),
            "chargingSchedulePeriod": [period],
        },
    }
    if valid_to is not None:
        profile["validTo"] = iso(valid_to)  # no validFrom: valid as soon as it is received
    return profile


#: ``startSchedule`` is set this far back: a charge point whose clock lags fuseguard's must not
#: see the schedule "not started yet" (and fall to the profile below)
SCHEDULE_BACKDATE_S = 3600.0


def lease_end(now: datetime, lease_s: float) -> datetime:
    """When a lease written at ``now`` ends."""
    return now + timedelta(seconds=lease_s)


def schedule_start(now: datetime) -> datetime:
    """``startSchedule`` of a profile written at ``now`` (backdated, see SCHEDULE_BACKDATE_S)."""
    return now - timedelta(seconds=SCHEDULE_BACKDATE_S)


def profile_problem(name: str, cfg: ChargePointConfig, lease_stack_level: int) -> str | None:
    """Why a charge point with configuration ``cfg`` cannot be controlled by profiles (None: it
    can): no SmartCharging, no stack level for the lease, no usable rate unit."""
    if not cfg.smart_charging:
        return f"{name}: no SmartCharging feature profile: cannot be controlled"
    if cfg.max_stack_level is not None and cfg.max_stack_level < lease_stack_level:
        return f"{name}: ChargeProfileMaxStackLevel 0 leaves no room for a lease"
    if cfg.rate_units is not None and not (cfg.amps or "Power" in cfg.rate_units):
        return f"{name}: no usable ChargingScheduleAllowedChargingRateUnit"
    return None


__all__ = [
    "CONFIG_KEYS",
    "LEASE_PROFILE_ID_BASE",
    "MEASURANDS",
    "SAFE_PROFILE_ID_BASE",
    "ChargePointConfig",
    "MeterReading",
    "OcppValueError",
    "ProfileUnit",
    "connector_id_of",
    "energy_wh_of",
    "iso",
    "lease_end",
    "parse_configuration",
    "parse_meter_values",
    "profile_problem",
    "schedule_start",
    "status_of",
    "tx_default_profile",
]
