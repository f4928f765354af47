"""What the CLEMAP local API and its Modbus twin serve, and the local API's JSON wire models.

:class:`LiveData` is what the edge measures at its measuring point plus the aggregated plug status
(:func:`aggregate_status`); a :class:`LiveDataSource` hands out the latest one. The pydantic
models are the JSON bodies of ``/v1/live/data`` and ``/v1/flex_management/setting`` and of every
error (:mod:`fuseguard.api.local` serves them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fuseguard.control.flex import MAX_CURRENT_LIMIT_A, FlexManagement
from fuseguard.model.numbers import is_finite_number
from fuseguard.model.phases import Phases
from fuseguard.model.status import PlugStatus

# --- live data ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveData:
    """What the edge measures at its measuring point, plus the aggregated plug status.

    Per-phase active/reactive power is optional: without it the totals are split over the
    phases in proportion to each phase's apparent power ``U·I`` (equally when no current flows).
    """

    active_power_w: float
    reactive_power_var: float
    current_a: Phases
    voltage_v: Phases
    status: PlugStatus | str
    active_power_per_phase_w: Phases | None = None
    reactive_power_per_phase_var: Phases | None = None

    @property
    def current_sum_a(self) -> float:
        """``I1 + I2 + I3`` (CLEMAP ``ActualCurrentSum``)."""
        return self.current_a.total

    @property
    def status_text(self) -> str:
        """The status as the wire spells it."""
        return self.status.value if isinstance(self.status, PlugStatus) else str(self.status)

    def apparent_power_per_phase_va(self) -> Phases:
        """``|U·I|`` per phase."""
        return self.voltage_v.zip_with(self.current_a, lambda u, i: abs(u * i))

    def _shares(self) -> Phases:
        s = self.apparent_power_per_phase_va()
        total = s.total
        if total <= 0 or not is_finite_number(total):
            return Phases.uniform(1.0 / 3.0)
        return s / total

    def phase_active_power_w(self) -> Phases:
        """Active power per phase (given, or the total split by apparent-power share)."""
        if self.active_power_per_phase_w is not None:
            return self.active_power_per_phase_w
        return self._shares() * self.active_power_w

    def phase_reactive_power_var(self) -> Phases:
        """Reactive power per phase (given, or the total split by apparent-power share)."""
        if self.reactive_power_per_phase_var is not None:
            return self.reactive_power_per_phase_var
        return self._shares() * self.reactive_power_var


class LiveDataSource(Protocol):
    """Anything that can say what the edge measures right now (no I/O, cheap)."""

    def live_data(self) -> LiveData:
        """The latest measurements."""


#: Precedence of :func:`aggregate_status`, most significant first.
STATUS_PRECEDENCE: tuple[PlugStatus, ...] = (
    PlugStatus.ERROR,
    PlugStatus.CHARGING,
    PlugStatus.RECENTLY_STARTED_CHARGING,
    PlugStatus.DISCHARGING,
    PlugStatus.STARTING,
    PlugStatus.CONNECTED,
    PlugStatus.PRODUCING,
    PlugStatus.STOPPED,
    PlugStatus.OFFLINE,
    PlugStatus.CLOUD_OFFLINE,
    PlugStatus.INIT,
    PlugStatus.UNKNOWN,
    PlugStatus.IDLE,
)


def aggregate_status(statuses: Iterable[PlugStatus]) -> PlugStatus:
    """One status for all plugs behind the edge: the most significant one wins.

    Rule: ``error > charging > recently_started_charging > discharging > starting > connected >
    producing > stopped > offline > cloud_offline > init > unknown > idle``; no plugs -> ``idle``.
    So any fault shows first, then "energy is flowing", then "a car is waiting", then
    reachability problems; ``idle`` only when every plug is idle.
    """
    present = set(statuses)
    for status in STATUS_PRECEDENCE:
        if status in present:
            return status
    return PlugStatus.IDLE


# --- wire models --------------------------------------------------------------------------------


def _reported(value: float) -> float:
    """A value as the wire reports it: non-finite values (no reading) as 0."""
    return value if is_finite_number(value) else 0.0


class LiveDataBody(BaseModel):
    """``GET /v1/live/data``."""

    model_config = ConfigDict(populate_by_name=True)

    actual_active_power_w: float = Field(
        alias="ActualActivePower", description="Active power at the measuring point, W (net)."
    )
    actual_reactive_power_var: float = Field(
        alias="ActualReactivePower", description="Reactive power, var."
    )
    actual_current_l1_a: float = Field(alias="ActualCurrentL1", description="Current L1, A.")
    actual_current_l2_a: float = Field(alias="ActualCurrentL2", description="Current L2, A.")
    actual_current_l3_a: float = Field(alias="ActualCurrentL3", description="Current L3, A.")
    actual_current_sum_a: float = Field(alias="ActualCurrentSum", description="L1+L2+L3, A.")
    status: str = Field(
        alias="Status",
        description="Aggregated plug status (CLEMAP plug vocabulary; see aggregate_status).",
    )

    @classmethod
    def of(cls, data: LiveData) -> LiveDataBody:
        """Wire form of ``data`` (non-finite values are reported as 0)."""
        cur = data.current_a.map(_reported)
        return cls(
            actual_active_power_w=_reported(data.active_power_w),
            actual_reactive_power_var=_reported(data.reactive_power_var),
            actual_current_l1_a=cur.l1,
            actual_current_l2_a=cur.l2,
            actual_current_l3_a=cur.l3,
            actual_current_sum_a=cur.total,
            status=data.status_text,
        )


class SettingsBody(BaseModel):
    """``GET /v1/flex_management/setting``."""

    model_config = ConfigDict(populate_by_name=True)

    active_power_activation: bool = Field(
        alias="ActivePowerActivation", description="External control of the limit on/off."
    )
    current_limit_a: float = Field(
        alias="CurrentLimit",
        description="Current limit per phase, A (reads as the fallback after watchdog expiry).",
    )
    fallback_current_limit_a: float = Field(
        alias="FallbackCurrentLimit", description="Limit applied when the watchdog expires, A."
    )
    run_state: bool = Field(True, alias="RunState", description="SGr placeholder, always true.")
    readiness_state: bool = Field(
        True, alias="ReadinessState", description="SGr placeholder, always true."
    )
    max_active_power_w: float = Field(
        0.0, alias="MaxActivePower", description="SGr placeholder, always 0.0."
    )
    min_active_power_w: float = Field(
        0.0, alias="MinActivePower", description="SGr placeholder, always 0.0."
    )

    @classmethod
    def of(cls, flex: FlexManagement) -> SettingsBody:
        """Wire form of the reported settings."""
        s = flex.settings()
        return cls(
            active_power_activation=s.activation,
            current_limit_a=s.current_limit_a,
            fallback_current_limit_a=s.fallback_current_limit_a,
        )


_CURRENT_FIELD: dict[str, Any] = {"ge": 0.0, "le": MAX_CURRENT_LIMIT_A, "allow_inf_nan": False}


def _drop_null_alternatives(schema: dict[str, Any]) -> None:
    """Optional means "may be left out", not "may be null": keep null out of the OpenAPI."""
    for prop in schema.get("properties", {}).values():
        alternatives = prop.get("anyOf")
        if isinstance(alternatives, list):
            kept = [a for a in alternatives if a.get("type") != "null"]
            if len(kept) == 1:
                del prop["anyOf"]
                prop.update(kept[0])
            else:
                prop["anyOf"] = kept
        prop.pop("default", None)


class SettingsUpdate(BaseModel):
    """``POST /v1/flex_management/setting``: every field optional (partial update).

    Strict types: a boolean must be ``true``/``false`` (not ``1`` or ``"true"``), a current a JSON
    number (not a string or boolean), 0..10000 A. Unknown keys are rejected, so a misspelt key
    cannot look like a successful write.
    """

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        populate_by_name=False,
        json_schema_extra=_drop_null_alternatives,
    )

    active_power_activation: bool | None = Field(
        None, alias="ActivePowerActivation", description="Enable/disable external control."
    )
    current_limit_a: float | None = Field(
        None, alias="CurrentLimit", description="Current limit per phase, A.", **_CURRENT_FIELD
    )
    fallback_current_limit_a: float | None = Field(
        None,
        alias="FallbackCurrentLimit",
        description="Limit when no write/keep-alive arrives within the timeout, A.",
        **_CURRENT_FIELD,
    )

    @field_validator(
        "active_power_activation", "current_limit_a", "fallback_current_limit_a", mode="before"
    )
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            msg = "must not be null (leave the key out to keep the current value)"
            raise ValueError(msg)
        return value


class FieldError(BaseModel):
    """One invalid field."""

    field: str = Field(description="The JSON key (or 'body').")
    message: str


class ErrorBody(BaseModel):
    """Every error response."""

    error: str = Field(description="unauthorized | bad_json | invalid_field | not_found | ...")
    message: str
    fields: list[FieldError] = Field(default_factory=list)


__all__ = [
    "STATUS_PRECEDENCE",
    "ErrorBody",
    "FieldError",
    "LiveData",
    "LiveDataBody",
    "LiveDataSource",
    "SettingsBody",
    "SettingsUpdate",
    "aggregate_status",
]
