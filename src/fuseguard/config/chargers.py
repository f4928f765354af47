"""``[[chargers]]`` (EVSEs, plugs, drivers) and ``[control]`` (control-loop tuning)."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from fuseguard.allocation.types import SINGLE_PHASE_WEIGHT, URGENT_LAXITY_S
from fuseguard.config.common import (
    _ID,
    _OCPP_ID,
    _hex_uuid,
    _Model,
)
from fuseguard.control.types import PlannerMode
from fuseguard.model.phases import Rotation
from fuseguard.model.status import ChargeMode


class PlugConfig(_Model):
    """A plug (connector) of an EVSE."""

    uuid: str
    label: str = Field(min_length=1, max_length=64)

    _check = field_validator("uuid")(_hex_uuid)


class ChargerConfig(_Model):
    """One EVSE (charging station) and how to reach it."""

    id: str
    evse_uuid: str
    driver: Literal["bender", "clemap", "ocpp"] = Field(
        default="bender",
        description="bender: a Bender CC612/613 charge controller; clemap: a child edge "
        "(cascading), driven through its local API with rest_port, user and password; its "
        "safe_current_a/safe_timeout_s are the child's FallbackCurrentLimit and keep-alive "
        "timeout; ocpp: an OCPP 1.6J charge point connecting to [api.ocpp] as ocpp_id (plugs "
        "= connectors 1, 2, ...; safe_current_a, default 6 A, is its permanent TxDefaultProfile)",
    )
    ocpp_id: str | None = Field(
        default=None, description="driver ocpp: the charge point identity in the URL"
    )
    ocpp_password: SecretStr | None = Field(
        default=None, description="driver ocpp: HTTP Basic password (security profile 1/2)"
    )
    host: str = "127.0.0.1"
    rest_port: int = Field(default=80, ge=1, le=65535)
    user: str = ""
    password: SecretStr = SecretStr("")
    modbus_port: int = Field(default=502, ge=1, le=65535)
    unit_id: int = Field(default=255, ge=0, le=255)
    circuit: str = "main"
    rotation: Rotation = Rotation.L1L2L3
    phases: Literal[1, 3] = 3
    min_current_a: int = Field(default=6, ge=6, le=80)
    max_current_a: int = Field(default=32, ge=6, le=80)
    mode: ChargeMode = ChargeMode.FAST
    priority: int = Field(default=0, ge=-100, le=100)
    safe_current_a: int = Field(
        default=0, ge=0, le=80, description="charger-side fallback if fuseguard goes silent"
    )
    safe_timeout_s: int = Field(default=60, ge=0, le=3600)
    limit_delay_s: float = Field(
        default=0.0,
        ge=0,
        le=600,
        description="how long the charger takes to apply a new limit (OCPP: the charge point's "
        "profile delay); current freed by lowering it is handed on only after this",
    )
    plugs: list[PlugConfig] = Field(min_length=1)

    _check = field_validator("evse_uuid")(_hex_uuid)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _ID.fullmatch(v):
            msg = "must be 1-64 of A-Z a-z 0-9 _ . -"
            raise ValueError(msg)
        return v

    @field_validator("ocpp_id")
    @classmethod
    def _ocpp_id(cls, v: str | None) -> str | None:
        if v is not None and (not _OCPP_ID.fullmatch(v) or any(c in v for c in "/?%:#")):
            msg = "must be 1-48 printable ASCII characters without spaces, '/', '?', '%', ':', '#'"
            raise ValueError(msg)
        return v

    def fallback_current_a(self) -> int:
        """What each plug falls back to by itself when fuseguard goes silent (A per phase; 0:
        nothing above a pause): a Bender's ``safe_current_a`` while its watchdog is armed
        (``safe_timeout_s`` > 0); an OCPP charge point's safe profile when the lease runs out
        (``safe_current_a``, 6 A unless configured); a child edge's FallbackCurrentLimit
        (``safe_current_a``; not configured: the child's own, unknown here, so its max)."""
        if self.driver == "ocpp":
            return self.safe_current_a if "safe_current_a" in self.model_fields_set else 6
        if self.driver == "clemap":
            return self.safe_current_a or self.max_current_a
        return self.safe_current_a if self.safe_timeout_s > 0 else 0

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if self.driver == "ocpp" and self.ocpp_id is None:
            msg = "driver ocpp needs ocpp_id (the charge point identity)"
            raise ValueError(msg)
        if self.driver == "clemap" and len(self.plugs) != 1:
            msg = "a child edge (driver clemap) is one consumer: give it exactly one plug entry"
            raise ValueError(msg)
        if self.min_current_a > self.max_current_a:
            msg = "min_current_a must be <= max_current_a"
            raise ValueError(msg)
        if self.safe_current_a and not (
            self.min_current_a <= self.safe_current_a <= self.max_current_a
        ):
            msg = "safe_current_a must be 0 or within [min_current_a, max_current_a]"
            raise ValueError(msg)
        return self


class ControlConfig(_Model):
    """Control-loop tuning."""

    min_run_s: float = Field(
        default=2700.0,
        ge=0,
        le=86_400,
        description="a started car runs at least this long (turn length)",
    )
    min_pause_s: float = Field(
        default=900.0, ge=0, le=86_400, description="a paused car waits at least this long"
    )
    ramp_up_a_per_s: float = Field(
        default=4.0, gt=0, le=1000, description="max increase per second per plug"
    )
    charger_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="charger silent this long -> assume its last setpoint (at least its safe "
        "current)",
    )
    charger_idle_poll_s: float = Field(
        default=10.0,
        ge=0,
        le=60,
        description="a steady charger is read this often (s; the meter every period; "
        "a charger fast after a setpoint or state change or a meter step; 0 = every period)",
    )
    recently_started_window_s: float = Field(default=60.0, ge=0, le=86_400)
    underuse_after_s: float = Field(
        default=30.0,
        ge=1,
        le=86_400,
        description="a car that draws at least 2 A less than it is offered for this long is "
        "capped at its draw + 2 A (the rest goes to the others; probed again every 5 min)",
    )
    headroom_a: float = Field(
        default=0.0,
        ge=0,
        le=100,
        description="A per phase kept free below every circuit limit (room for a load step "
        "between two meter readings; 0 = allocate up to the limit)",
    )
    pv_enable_delay_s: float = Field(default=60.0, ge=0, le=86_400)
    pv_disable_delay_s: float = Field(default=180.0, ge=0, le=86_400)
    urgent_laxity_s: float = Field(
        default=URGENT_LAXITY_S,
        ge=0,
        le=7 * 86_400,
        description="a car with an announced departure and energy need is served first "
        "(least laxity first) once its laxity (time to departure minus time to finish at its "
        "cap) is at most this (s; 0 = only a car that must charge at its cap from now on)",
    )
    urgent_reserve: float = Field(
        default=1.0,
        ge=0,
        le=100,
        description="an urgent car (least laxity) is admitted with this times the current it "
        "needs to finish by its departure (whole amps, at most its cap), so the minimums of "
        "cars that can wait do not crowd it out; 0 = admitted at its minimum only",
    )
    single_phase_weight: float = Field(
        default=SINGLE_PHASE_WEIGHT,
        ge=1,
        le=10,
        description="the fair split gives a car on one phase this times the current per phase "
        "of a car on three (two phases: its square root), so slow one-phase cars are not left "
        "with a phase only they can use at the end of the day; 1 = plain per-phase max-min",
    )
    planner: PlannerMode = Field(
        default="least_laxity",
        description="how announced departures steer the allocation: off (no urgency), "
        "least_laxity (least laxity first), horizon (a receding-horizon plan, re-solved every "
        "planner_interval_s, caps the cars on top of least laxity; needs scipy, else least "
        "laxity with an error in the log)",
    )
    planner_interval_s: float = Field(
        default=300.0, ge=10, le=3600, description="re-plan at least this often (s)"
    )
    planner_step_s: float = Field(
        default=300.0, ge=60, le=3600, description="the plan's step in its first hour (s)"
    )
    planner_horizon_s: float = Field(
        default=43200.0, ge=600, le=172_800, description="how far ahead the plan looks (s)"
    )
    planner_time_limit_s: float = Field(
        default=1.0, gt=0, le=60, description="solver time limit per plan (s)"
    )
    planner_exact: bool = Field(
        default=False,
        description="count needs met exactly (a MILP; may take seconds at 20 cars) instead of "
        "the LP relaxation (small needs first, about 10-30 times faster)",
    )
    planner_default_stay_s: float = Field(
        default=0.0,
        ge=0,
        le=172_800,
        description="assumed stay of a car without an announced departure, from plug-in "
        "(s; 0 = to the end of the horizon)",
    )
    planner_load_window_s: float = Field(
        default=0.0,
        ge=0,
        le=172_800,
        description="the plan's non-EV load forecast: the peak over this window per circuit "
        "and phase (s; 0 = this cycle's load, held over the horizon)",
    )
    planner_finish_early_s: float = Field(
        default=0.0,
        ge=0,
        le=14_400,
        description="the plan aims to meet an announced need this long before the departure "
        "(s; at most a quarter of the time left; 0 = just in time)",
    )
