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


def seed_number(value: float, decimals: int = 1) -> int | float:
    """``value`` rounded; an integral result as a JSON integer (``6``, ``0``), else a float."""
    rounded = round(float(value), decimals)
    return int(rounded) if rounded.is_integer() else rounded


def seed_power(value_w: float) -> int | float:
    """``power`` as seed 002 writes it: a float (``7107.0``), an exact zero as ``0``."""
    rounded = round(float(value_w), 1)
    return 0 if rounded == 0 else rounded


#: A JSON number that stays an integer when it is one (``6``) and a float otherwise (``10.3``).
SeedNumber = StrictInt | float


class PlugStatusOut(BaseModel):
    """One element of the status array (seed 002).

    Number types follow the seed's example so strict decoders (Go, serde with integer fields)
    accept them: ``current_l1..3`` and ``dyn_current_limit`` are integers when integral (``0``,
    ``6``) and floats otherwise (``10.3``); ``power`` is a float (``7107.0``), ``0`` when zero.
    """

    time: str = Field(description="ISO-8601 UTC with milliseconds and Z")
    plug_uuid: str
    plug_label: str
    evse_uuid: str
    status: PlugStatus
    current_l1: SeedNumber
    current_l2: SeedNumber
    current_l3: SeedNumber
    power: SeedNumber
    dyn_current_limit: SeedNumber

    @classmethod
    def of(cls, record: PlugStatusRecord) -> PlugStatusOut:
        """Wire form of a record (currents rounded to 0.1 A, power to 0.1 W)."""
        currents = record.current_a
        return cls(
            time=format_status_time(record.time),
            plug_uuid=record.plug_uuid,
            plug_label=record.plug_label,
            evse_uuid=record.evse_uuid,
            status=record.status,
            current_l1=seed_number(currents.l1),
            current_l2=seed_number(currents.l2),
            current_l3=seed_number(currents.l3),
            power=seed_power(record.power_w),
            dyn_current_limit=seed_number(record.dyn_current_limit_a),
        )

    def to_record(self) -> PlugStatusRecord:
        """Back to the domain record (the cloud stores what edges publish)."""
        return PlugStatusRecord(
            time=parse_iso_datetime(self.time),
            plug_uuid=self.plug_uuid,
            plug_label=self.plug_label,
            evse_uuid=self.evse_uuid,
            status=self.status,
            current_a=Phases(
                float(self.current_l1), float(self.current_l2), float(self.current_l3)
            ),
            power_w=float(self.power),
            dyn_current_limit_a=float(self.dyn_current_limit),
        )


class ErrorBody(BaseModel):
    """Feathers-style error (devices.md 2.1), plus ``field`` for validation errors."""

    name: str
    message: str
    code: int
    className: str  # noqa: N815  (Feathers spelling)
    field: str | None = None
