"""The CLEMAP edge local API (seed 000, devices.md section 1): fuseguard *is* the edge device.

An external EMS (or a cascading parent edge) reads live data and sets this edge's current limit::

    GET  /v1/live/data                   ActualActivePower, ActualCurrentL1..3, Status, ...
    GET  /v1/flex_management/setting     ActivePowerActivation, CurrentLimit, ...
    POST /v1/flex_management/setting     partial update, resets the watchdog
    POST /v1/keep-alive                  resets the watchdog

Also accepted: ``flex-management`` and the plural ``settings``, and ``/v1/keep_alive``.
Every route needs HTTP Basic auth (constant-time compare). The POST body is JSON whatever its
``Content-Type`` (or none, :mod:`fuseguard.api.jsonbody`). Invalid input is answered with
400 (not JSON) or 422 (a field with the wrong type or an out-of-range value) and a JSON
body naming the field; the original device answers 500 for both (documented deviation, see
``docs/local-api.md``). Bad or missing credentials: 401.

The routes are module-level functions on :data:`router`; what they serve (the flex state, the
live-data source, the credentials) sits in the app's state, put there by
:func:`create_local_app`. The data and wire models are in :mod:`fuseguard.api.local_models`.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from starlette.exceptions import HTTPException as StarletteHTTPException

from fuseguard.api.jsonbody import json_body, json_body_openapi
from fuseguard.api.local_models import (
    ErrorBody,
    FieldError,
    LiveData,
    LiveDataBody,
    LiveDataSource,
    SettingsBody,
    SettingsUpdate,
    aggregate_status,
)
from fuseguard.control.flex import FlexManagement

log = structlog.get_logger(__name__)

REALM = "fuseguard"

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


# --- dependencies -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LocalApiState:
    """What one local API app serves (``app.state.local_api``)."""

    flex: FlexManagement
    live: LiveDataSource
    user: bytes
    password: bytes


def _local_api(request: Request) -> LocalApiState:
    state: LocalApiState = request.app.state.local_api
    return state


State = Annotated[LocalApiState, Depends(_local_api)]


class _AuthError(Exception):
    pass


_BASIC = HTTPBasic(auto_error=False, realm=REALM)


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


def require_auth(
    request: Request,
    api: State,
    credentials: Annotated[HTTPBasicCredentials | None, Depends(_BASIC)],
) -> None:
    """HTTP Basic with a constant-time compare of user and password; else :class:`_AuthError`."""
    given_user = credentials.username.encode() if credentials else b""
    given_password = credentials.password.encode() if credentials else b""
    user_ok = secrets.compare_digest(given_user, api.user)
    password_ok = secrets.compare_digest(given_password, api.password)
    if credentials is None or not (user_ok & password_ok):
        log.warning(
            "local_api_auth_failed",
            device=_client(request),
            reason="no credentials" if credentials is None else "wrong credentials",
            path=request.url.path,
        )
        raise _AuthError


# --- error answers ------------------------------------------------------------------------------

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Body is not valid JSON."},
    401: {"model": ErrorBody, "description": "Missing or wrong Basic credentials."},
    422: {"model": ErrorBody, "description": "A field has the wrong type or an invalid value."},
}
_CHALLENGE = {"WWW-Authenticate": f'Basic realm="{REALM}"'}


def _field_name(loc: Iterable[Any]) -> str:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) if parts else "body"


async def _auth_error(_request: Request, _exc: _AuthError) -> JSONResponse:
    body = ErrorBody(error="unauthorized", message="missing or wrong Basic credentials")
    return JSONResponse(body.model_dump(), status_code=401, headers=_CHALLENGE)


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
        "local_api_rejected", device=_client(request), reason=body.message, path=request.url.path
    )
    return JSONResponse(body.model_dump(), status_code=status)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    status = exc.status_code
    kind = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}.get(status, "error")
    body = ErrorBody(error=kind, message=str(exc.detail))
    headers = dict(exc.headers) if exc.headers else None
    if status == 401:
        headers = _CHALLENGE
    if status == 405:
        # GET and POST of one path are separate routes: list the methods of all of them.
        methods = sorted(
            {
                m
                for r in router.routes
                if isinstance(r, APIRoute) and r.path == request.url.path
                for m in (r.methods or ())
            }
        )
        headers = {"Allow": ", ".join(methods)}
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


# --- routes -------------------------------------------------------------------------------------

SETTINGS_PATHS = (
    "/v1/flex_management/setting",
    "/v1/flex_management/settings",
    "/v1/flex-management/setting",
    "/v1/flex-management/settings",
)
KEEP_ALIVE_PATHS = ("/v1/keep-alive", "/v1/keep_alive")


# Route functions carry no docstrings: FastAPI would publish them as operation descriptions.


async def get_openapi(request: Request) -> dict[str, Any]:  # behind Basic auth like every route
    schema: dict[str, Any] = request.app.openapi()
    return schema


async def get_live_data(api: State) -> LiveDataBody:
    return LiveDataBody.of(api.live.live_data())


async def get_settings(api: State) -> SettingsBody:
    return SettingsBody.of(api.flex)


async def post_settings(
    request: Request, api: State, update: Annotated[SettingsUpdate, json_body(SettingsUpdate)]
) -> SettingsBody | Response:
    # A limit the flex state refuses (a semantic check beyond the model's) is a 422 too.
    try:
        api.flex.update(
            activation=update.active_power_activation,
            current_limit_a=update.current_limit_a,
            fallback_current_limit_a=update.fallback_current_limit_a,
            source=f"rest {_client(request)}",
        )
    except ValueError as exc:
        body = ErrorBody(
            error="invalid_field",
            message=str(exc),
            fields=[FieldError(field=str(exc).split(" ", 1)[0], message=str(exc))],
        )
        return JSONResponse(body.model_dump(), status_code=422)
    return SettingsBody.of(api.flex)


async def post_keep_alive(request: Request, api: State) -> Response:
    api.flex.keep_alive(source=f"rest {_client(request)}")
    return Response(status_code=200)


router = APIRouter()
router.add_api_route("/openapi.json", get_openapi, methods=["GET"], include_in_schema=False)
router.add_api_route(
    "/v1/live/data",
    get_live_data,
    methods=["GET"],
    response_model=LiveDataBody,
    responses=_ERRORS,
    operation_id="get_live_data",
    summary="Live measurements and aggregated plug status",
)
for _i, _path in enumerate(SETTINGS_PATHS):
    _suffix = "" if _i == 0 else f"_alias{_i}"
    router.add_api_route(
        _path,
        get_settings,
        methods=["GET"],
        response_model=SettingsBody,
        responses=_ERRORS,
        operation_id=f"get_flex_settings{_suffix}",
        summary="Read the flex-management settings",
    )
    router.add_api_route(
        _path,
        post_settings,
        methods=["POST"],
        response_model=SettingsBody,
        responses=_ERRORS,
        operation_id=f"post_flex_settings{_suffix}",
        summary="Partially update the settings (resets the watchdog)",
        openapi_extra=json_body_openapi(SettingsUpdate),
    )
for _i, _path in enumerate(KEEP_ALIVE_PATHS):
    router.add_api_route(
        _path,
        post_keep_alive,
        methods=["POST"],
        response_class=Response,
        responses={200: {"description": "Watchdog reset (empty body)."}, **_ERRORS},
        operation_id="keep_alive" if _i == 0 else f"keep_alive_alias{_i}",
        summary="Reset the fallback watchdog",
    )


def create_local_app(
    flex: FlexManagement, live: LiveDataSource, *, user: str, password: str
) -> FastAPI:
    """The local API app. ``run`` must call :func:`check_password_strength` first."""
    if not password:
        msg = "the local API needs a password"
        raise ValueError(msg)
    app = FastAPI(
        title="fuseguard edge local API (CLEMAP compatible)",
        version="1.0",
        description=(
            "CLEMAP edge device local control of load management, served by fuseguard. "
            "See docs/local-api.md."
        ),
        dependencies=[Depends(require_auth)],
        exception_handlers={
            _AuthError: _auth_error,
            RequestValidationError: _validation_error,
            StarletteHTTPException: _http_error,
        },
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.local_api = LocalApiState(flex, live, user.encode(), password.encode())
    app.include_router(router)
    return app


__all__ = [
    "KEEP_ALIVE_PATHS",
    "SETTINGS_PATHS",
    "LiveData",
    "LiveDataSource",
    "LocalApiState",
    "aggregate_status",
    "check_password_strength",
    "create_local_app",
    "router",
]
