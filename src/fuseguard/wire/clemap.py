"""CLEMAP edge local API wire format (devices.md section 1), as the child-edge driver reads it.

Paths (with the spellings the documentation and the SGr EID disagree on), the JSON keys and the
answers the driver accepts, as strict pydantic models: numbers are finite JSON numbers (not
strings, not booleans), currents and limits bounded, strings bounded, unknown keys ignored
(``MaxActivePower`` and other SGr placeholders). :mod:`fuseguard.api.local` serves the same
keys and paths (fuseguard *is* a CLEMAP-compatible edge); its server models can move here.
"""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import AllowInfNan, BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictStr

LIVE_DATA_PATH: Final = "/v1/live/data"
#: The driver's spelling of the settings path (the SGr EID's), then the others an edge accepts.
SETTINGS_PATHS: Final = (
    "/v1/flex_management/setting",
    "/v1/flex_management/settings",
    "/v1/flex-management/setting",
    "/v1/flex-management/settings",
)
SETTINGS_PATH: Final = SETTINGS_PATHS[0]
#: Keep-alive: the separator is not documented; a driver tries the first, then the second.
KEEP_ALIVE_PATHS: Final = ("/v1/keep-alive", "/v1/keep_alive")

#: The settings keys (read and written).
ACTIVATION: Final = "ActivePowerActivation"
CURRENT_LIMIT: Final = "CurrentLimit"
FALLBACK_CURRENT_LIMIT: Final = "FallbackCurrentLimit"

#: Largest current (A) an edge may report or accept as a limit.
MAX_CURRENT_A: Final = 10_000.0
#: Largest power magnitude (W) a measuring point may report (a 10 MW connection is huge).
MAX_POWER_W: Final = 1e8

_Finite = Annotated[StrictFloat, AllowInfNan(False)]
Current = Annotated[_Finite, Field(ge=-MAX_CURRENT_A, le=MAX_CURRENT_A)]
Limit = Annotated[_Finite, Field(ge=0.0, le=MAX_CURRENT_A)]
Power = Annotated[_Finite, Field(ge=-MAX_POWER_W, le=MAX_POWER_W)]


class _Wire(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="ignore", allow_inf_nan=False, validate_by_name=True
    )


class LiveDataReading(_Wire):
    """``GET /v1/live/data``; ``ActualCurrentSum``, ``ActualReactivePower``, ``Status`` optional."""

    active_power_w: Power = Field(alias="ActualActivePower")
    reactive_power_var: Power = Field(0.0, alias="ActualReactivePower")
    current_l1_a: Current = Field(alias="ActualCurrentL1")
    current_l2_a: Current = Field(alias="ActualCurrentL2")
    current_l3_a: Current = Field(alias="ActualCurrentL3")
    current_sum_a: Annotated[_Finite, Field(ge=-3 * MAX_CURRENT_A, le=3 * MAX_CURRENT_A)] | None = (
        Field(None, alias="ActualCurrentSum")
    )
    status: Annotated[StrictStr, Field(max_length=64)] = Field("unknown", alias="Status")


class SettingsReading(_Wire):
    """``GET /v1/flex_management/setting`` (the SGr placeholders are optional)."""

    activation: StrictBool | None = Field(None, alias=ACTIVATION)
    current_limit_a: Limit = Field(alias=CURRENT_LIMIT)
    fallback_current_limit_a: Limit = Field(alias=FALLBACK_CURRENT_LIMIT)
    run_state: StrictBool | None = Field(None, alias="RunState")
    readiness_state: StrictBool | None = Field(None, alias="ReadinessState")


def settings_update(
    *,
    activation: bool | None = None,
    current_limit_a: float | None = None,
    fallback_current_limit_a: float | None = None,
) -> dict[str, bool | float]:
    """The ``POST`` body of a partial update: only the given keys (the device validates them)."""
    body: dict[str, bool | float] = {}
    if activation is not None:
        body[ACTIVATION] = activation
    if current_limit_a is not None:
        body[CURRENT_LIMIT] = float(current_limit_a)
    if fallback_current_limit_a is not None:
        body[FALLBACK_CURRENT_LIMIT] = float(fallback_current_limit_a)
    return body


__all__ = [
    "ACTIVATION",
    "CURRENT_LIMIT",
    "FALLBACK_CURRENT_LIMIT",
    "KEEP_ALIVE_PATHS",
    "LIVE_DATA_PATH",
    "MAX_CURRENT_A",
    "MAX_POWER_W",
    "SETTINGS_PATH",
    "SETTINGS_PATHS",
    "Current",
    "Limit",
    "LiveDataReading",
    "Power",
    "SettingsReading",
    "settings_update",
]
