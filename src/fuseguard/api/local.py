"""The CLEMAP edge local API (seed 000, devices.md section 1): fuseguard *is* the edge device.

An external EMS (or a cascading parent edge) reads live data and sets this edge's current limit::

    GET  /v1/live/data                   ActualActivePower, ActualCurrentL1..3, Status, ...
    GET  /v1/flex_management/setting     ActivePowerActivation, CurrentLimit, ...
    POST /v1/flex_management/setting     partial update, resets the watchdog
    POST /v1/keep-alive                  resets the watchdog

Also accepted: ``flex-management`` and the plural ``settings``, and ``/v1/keep_alive``.
Every route needs HTTP Basic auth (constant-time compare). Invalid input is answered with
400 (unparseable JSON) or 422 (a field with the wrong type or an out-of-range value) and a JSON
body naming the field; the original device answers 500 for both (documented deviation, see
``docs/local-api.md``). Bad or missing credentials: 401.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

import structlog
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from fuseguard.control.flex import MAX_CURRENT_LIMIT_A, FlexManagement
from fuseguard.model.phases import Phases
from fuseguard.model.status import PlugStatus

log = structlog.get_logger(__name__)

REALM = "fuseguard"

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
        if total <= 0 or not math.isfinite(total):
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


class StaticLiveData:
    """A live-data source holding one settable value (tests, bench setups)."""

    def __init__(self, data: LiveData) -> None:
        self.data = data

    def live_data(self) -> LiveData:
        """The value last set."""
        return self.data


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


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0


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
        cur = data.current_a.map(_finite)
        return cls(
            actual_active_power_w=_finite(data.active_power_w),
            actual_reactive_power_var=_finite(data.reactive_power_var),
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


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Body is not valid JSON."},
    401: {"model": ErrorBody, "description": "Missing or wrong Basic credentials."},
    422: {"model": ErrorBody, "description": "A field has the wrong type or an invalid value."},
}

# --- passwords ----------------------------------------------------------------------------------

_EXAMPLE_PASSWORDS = frozenset(
    {
        "password",
        "passw0rd",
        "changeme",
        "change-me",
        "change_me",
        "admin",
        "root",
        "secret",
        "example",
        "test",
        "fuseguard",
        "clemap",
        "default",
        "letmein",
        "123456",
        "12345678",
        "123456789",
        "<password>",
        "your-password",
        "yourpassword",
    }
)
MIN_PASSWORD_LENGTH = 8


def check_password_strength(password: str) -> None:
    """Raise ValueError for an empty, too short (< 8) or well-known example password."""
    if not password or not password.strip():
        msg = "the local API password is empty; set one before starting"
        raise ValueError(msg)
    lowered = password.strip().lower()
    if lowered in _EXAMPLE_PASSWORDS or lowered.startswith(("set-me", "change-me", "changeme")):
        msg = "the local API password is an example value; choose your own"
        raise ValueError(msg)
    if len(password) < MIN_PASSWORD_LENGTH:
        msg = f"the local API password must have at least {MIN_PASSWORD_LENGTH} characters"
        raise ValueError(msg)


# --- app ----------------------------------------------------------------------------------------

SETTINGS_PATHS = (
    "/v1/flex_management/setting",
    "/v1/flex_management/settings",
    "/v1/flex-management/setting",
    "/v1/flex-management/settings",
)
KEEP_ALIVE_PATHS = ("/v1/keep-alive", "/v1/keep_alive")


class _AuthError(Exception):
    pass


# Module level: FastAPI resolves the (postponed) annotations of dependencies in module globals.
_BASIC = HTTPBasic(auto_error=False, realm=REALM)


def _field_name(loc: Iterable[Any]) -> str:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) if parts else "body"


def create_local_app(
    flex: FlexManagement,
    live: LiveDataSource,
    *,
    user: str,
    password: str,
    title: str = "fuseguard edge local API (CLEMAP compatible)",
) -> FastAPI:
    """The local API app. ``run`` must call :func:`check_password_strength` first."""
    if not password:
        msg = "the local API needs a password"
        raise ValueError(msg)
    user_b = user.encode()
    password_b = password.encode()

    def require_auth(
        request: Request,
        credentials: Annotated[HTTPBasicCredentials | None, Depends(_BASIC)],
    ) -> None:
        given_user = credentials.username.encode() if credentials else b""
        given_password = credentials.password.encode() if credentials else b""
        user_ok = secrets.compare_digest(given_user, user_b)
        password_ok = secrets.compare_digest(given_password, password_b)
        if credentials is None or not (user_ok & password_ok):
            client = request.client.host if request.client else "?"
            log.warning(
                "local_api_auth_failed",
                device=client,
                reason="no credentials" if credentials is None else "wrong credentials",
                path=request.url.path,
            )
            raise _AuthError

    app = FastAPI(
        title=title,
        version="1.0",
        description=(
            "CLEMAP edge device local control of load management, served by fuseguard. "
            "See docs/local-api.md."
        ),
        dependencies=[Depends(require_auth)],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.get("/openapi.json", include_in_schema=False)
    async def _openapi() -> dict[str, Any]:
        return app.openapi()

    @app.exception_handler(_AuthError)
    async def _auth_error(_request: Request, _exc: _AuthError) -> JSONResponse:
        body = ErrorBody(error="unauthorized", message="missing or wrong Basic credentials")
        return JSONResponse(
            body.model_dump(),
            status_code=401,
            headers={"WWW-Authenticate": f'Basic realm="{REALM}"'},
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            body = ErrorBody(
                error="bad_json",
                message="request body is not valid JSON",
                fields=[FieldError(field="body", message="not valid JSON")],
            )
            status = 400
        else:
            fields = [
                FieldError(field=_field_name(e.get("loc", ())), message=str(e.get("msg", "")))
                for e in errors
            ]
            summary = "; ".join(f"{f.field}: {f.message}" for f in fields)
            body = ErrorBody(error="invalid_field", message=summary, fields=fields)
            status = 422
        log.info(
            "local_api_rejected",
            device=request.client.host if request.client else "?",
            reason=body.message,
            path=request.url.path,
        )
        return JSONResponse(body.model_dump(), status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        status = exc.status_code
        kind = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}.get(
            status, "error"
        )
        body = ErrorBody(error=kind, message=str(exc.detail))
        headers = dict(exc.headers) if exc.headers else None
        if status == 401:
            headers = {"WWW-Authenticate": f'Basic realm="{REALM}"'}
        if status == 405:
            # GET and POST of one path are separate routes: list the methods of all of them.
            methods = sorted(
                {
                    m
                    for r in app.routes
                    if isinstance(r, APIRoute) and r.path == request.url.path
                    for m in (r.methods or ())
                }
            )
            headers = {"Allow": ", ".join(methods)}
        return JSONResponse(body.model_dump(), status_code=status, headers=headers)

    async def get_live_data() -> LiveDataBody:
        return LiveDataBody.of(live.live_data())

    async def get_settings() -> SettingsBody:
        return SettingsBody.of(flex)

    async def post_settings(request: Request, update: SettingsUpdate) -> SettingsBody | Response:
        try:
            flex.update(
                activation=update.active_power_activation,
                current_limit_a=update.current_limit_a,
                fallback_current_limit_a=update.fallback_current_limit_a,
                source=f"rest {request.client.host if request.client else '?'}",
            )
        except ValueError as exc:
            body = ErrorBody(
                error="invalid_field",
                message=str(exc),
                fields=[FieldError(field=str(exc).split(" ", 1)[0], message=str(exc))],
            )
            return JSONResponse(body.model_dump(), status_code=422)
        return SettingsBody.of(flex)

    async def post_keep_alive(request: Request) -> Response:
        flex.keep_alive(source=f"rest {request.client.host if request.client else '?'}")
        return Response(status_code=200)

    app.add_api_route(
        "/v1/live/data",
        get_live_data,
        methods=["GET"],
        response_model=LiveDataBody,
        responses=_ERRORS,
        operation_id="get_live_data",
        summary="Live measurements and aggregated plug status",
    )
    for i, path in enumerate(SETTINGS_PATHS):
        suffix = "" if i == 0 else f"_alias{i}"
        app.add_api_route(
            path,
            get_settings,
            methods=["GET"],
            response_model=SettingsBody,
            responses=_ERRORS,
            operation_id=f"get_flex_settings{suffix}",
            summary="Read the flex-management settings",
        )
        app.add_api_route(
            path,
            post_settings,
            methods=["POST"],
            response_model=SettingsBody,
            responses=_ERRORS,
            operation_id=f"post_flex_settings{suffix}",
            summary="Partially update the settings (resets the watchdog)",
        )
    for i, path in enumerate(KEEP_ALIVE_PATHS):
        app.add_api_route(
            path,
            post_keep_alive,
            methods=["POST"],
            response_class=Response,
            responses={200: {"description": "Watchdog reset (empty body)."}, **_ERRORS},
            operation_id="keep_alive" if i == 0 else f"keep_alive_alias{i}",
            summary="Reset the fallback watchdog",
        )
    return app
