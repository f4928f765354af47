"""Domain records and wire models of the Direct EVSE Control / plug status API (seeds 001, 002).

Dataclasses (:class:`PlugStatusRecord`, :class:`EvseInfo`) are what backends hand over; the pydantic
models are the JSON on the wire. The edge API, the cloud API and the MQTT link share both, so the
time formats live here:

* ``valid_until``: ``2024-05-30T09:14:47.244362+00:00`` (microseconds, numeric offset)
* status ``time``: ``2024-03-25T11:12:17.851Z`` (milliseconds, ``Z``)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt

from fuseguard.control.targets import Target
from fuseguard.model.phases import ZERO, Phases
from fuseguard.model.status import PlugStatus

DEFAULT_EVSE_API_PORT = 3032
DEFAULT_MAX_DURATION_S = 86_400


@dataclass(frozen=True, slots=True)
class PlugStatusRecord:
    """The status of one plug at ``time``."""

    time: datetime
    plug_uuid: str
    plug_label: str
    evse_uuid: str
    status: PlugStatus
    current_a: Phases
    power_w: float
    dyn_current_limit_a: float

    @classmethod
    def unknown(
        cls, time: datetime, evse_uuid: str, plug_uuid: str, plug_label: str
    ) -> PlugStatusRecord:
        """A plug nothing is known about yet: ``unknown``, no current, no limit."""
        return cls(
            time=time,
            plug_uuid=plug_uuid,
            plug_label=plug_label,
            evse_uuid=evse_uuid,
            status=PlugStatus.UNKNOWN,
            current_a=ZERO,
            power_w=0.0,
            dyn_current_limit_a=0.0,
        )


@dataclass(frozen=True, slots=True)
class EvseInfo:
    """One EVSE the API knows: its current range and its plugs ``(plug_uuid, label)``."""

    evse_uuid: str
    min_current_a: int
    max_current_a: int
    plugs: tuple[tuple[str, str], ...]


# --- time formats ------------------------------------------------------------------------------


def format_valid_until(value: datetime) -> str:
    """``2024-05-30T09:14:47.244362+00:00``."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def format_status_time(value: datetime) -> str:
    """``2024-03-25T11:12:17.851Z``."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_iso_datetime(value: str) -> datetime:
    """Parse either form above (``Z`` or numeric offset) into an aware UTC datetime."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        msg = f"{value!r} has no timezone"
        raise ValueError(msg)
    return parsed.astimezone(UTC)


# --- wire models --------------------------------------------------------------------------------


def _integral_float_to_int(value: object) -> object:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


#: A JSON Schema ``integer``: 10 and 10.0 pass; "10", 10.5 and true do not.
JsonInt = Annotated[StrictInt, BeforeValidator(_integral_float_to_int)]


class CurrentSettingsIn(BaseModel):
    """POST body: the target current (A, 0 = pause) and how long it holds (s)."""

    model_config = ConfigDict(extra="ignore")

    current: JsonInt = Field(ge=0, description="Target current in A on all phases; 0 pauses.")
    duration: JsonInt = Field(ge=1, description="Seconds the target holds, then it expires.")


class CurrentSettingsPosted(BaseModel):
    """POST answer: whether the target was received (or rejected: not deliverable)."""

    state: Literal["received", "rejected"]
    current: int
    duration: int


class CurrentSettingsOut(BaseModel):
    """GET/DELETE answer: the target in force (both null when none)."""

    current: int | None
    valid_until: str | None = Field(
        description="ISO-8601 with microseconds and offset, e.g. 2024-05-30T09:14:47.244362+00:00"
    )

    @classmethod
    def of(cls, target: Target | None) -> CurrentSettingsOut:
        """Wire form of a target (or of no target)."""
        if target is None:
            return cls(current=None, valid_until=None)
        return cls(current=target.current_a, valid_until=format_valid_until(target.valid_until))


class PlugStatusOut(BaseModel):
    """One element of the status array (seed 002)."""

    time: str = Field(description="ISO-8601 UTC with milliseconds and Z")
    plug_uuid: str
    plug_label: str
    evse_uuid: str
    status: PlugStatus
    current_l1: float
    current_l2: float
    current_l3: float
    power: float
    dyn_current_limit: float

    @classmethod
    def of(cls, record: PlugStatusRecord) -> PlugStatusOut:
        """Wire form of a record (currents rounded to 0.1 A, power to 0.1 W)."""
        currents = record.current_a.rounded(1)
        return cls(
            time=format_status_time(record.time),
            plug_uuid=record.plug_uuid,
            plug_label=record.plug_label,
            evse_uuid=record.evse_uuid,
            status=record.status,
            current_l1=currents.l1,
            current_l2=currents.l2,
            current_l3=currents.l3,
            power=round(record.power_w, 1),
            dyn_current_limit=round(record.dyn_current_limit_a, 1),
        )

    def to_record(self) -> PlugStatusRecord:
        """Back to the domain record (the cloud stores what edges publish)."""
        return PlugStatusRecord(
            time=parse_iso_datetime(self.time),
            plug_uuid=self.plug_uuid,
            plug_label=self.plug_label,
            evse_uuid=self.evse_uuid,
            status=self.status,
            current_a=Phases(self.current_l1, self.current_l2, self.current_l3),
            power_w=self.power,
            dyn_current_limit_a=self.dyn_current_limit,
        )


class ErrorBody(BaseModel):
    """Feathers-style error (devices.md 2.1), plus ``field`` for validation errors."""

    name: str
    message: str
    code: int
    className: str  # noqa: N815  (Feathers spelling)
    field: str | None = None
