"""The CLEMAP edge local API (seed 000, devices.md section 1): fuseguard *is* the edge device.

An external EMS (or a cascading parent edge) reads live data and sets this edge's current limit::

    GET  /v1/live/data                   ActualActivePower, ActualCurrentL1..3, Status, ...
    GET  /v1/flex_management/setting     ActivePowerActivation, CurrentLimit, ...
    POST /v1/flex_management/setting     partial update, resets the watchdog
    POST /v1/keep-alive                  resets the watchdog

Also accepted: ``flex-management`` and the plural ``settings``, and ``/v1/keep_alive``.
Every route needs HTTP Basic auth (constant-time compare), checked by :class:`BasicAuthGate`
before routing and before a byte of the body is read: bad or missing credentials are 401 whatever
the body. A peer with too many failed attempts is refused with 429 for a while (one log line per
burst). The POST body is JSON whatever its ``Content-Type`` (or none,
:mod:`fuseguard.api.jsonbody`). Invalid input is answered with 400 (not JSON) or 422 (a field with
the wrong type or an out-of-range value) and a JSON body naming the field; the original device
answers 500 for both (documented deviation, see ``docs/local-api.md``). ``/openapi.json`` and
``/docs`` exist only when the app is created with ``docs=True`` (the demo), and then behind the
same Basic auth.

The routes are module-level functions on :data:`router`; what they serve (the flex state, the
live-data source, the credentials) sits in the app's state, put there by
:func:`create_local_app`. The data and wire models are in :mod:`fuseguard.api.local_models`.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from fuseguard.api.access import AuthThrottle
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
from fuseguard.model.clock import Clock, RealClock

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
    clock: Clock = field(default_factory=RealClock)
    throttle: AuthThrottle = field(default_factory=AuthThrottle)


def _local_api(request: Request) -> LocalApiState:
    state: LocalApiState = request.app.state.local_api
    return state


State = Annotated[LocalApiState, Depends(_local_api)]


_BASIC = HTTPBasic(auto_error=False, realm=REALM)


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


def require_auth(
    credentials: Annotated[HTTPBasicCredentials | None, Depends(_BASIC)],
) -> None:
    """Declares HTTP Basic in the OpenAPI; :class:`BasicAuthGate` has checked it already."""


def _basic_credentials(scope: Scope) -> tuple[bytes, bytes] | None:
    header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
    if header is None:
        return None
    scheme, _, encoded = header.partition(b" ")
    if scheme.lower() != b"basic" or len(encoded) > 1024:
        return None
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
    except (binascii.Error, ValueError):
        return None
    return (user, password) if sep else None


class BasicAuthGate:
    """ASGI middleware: HTTP Basic before routing and before the body, throttled per peer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app for good credentials; 401 (or 429 for a throttled peer) otherwise."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api: LocalApiState = scope["app"].state.local_api
        client = scope.get("client")
        peer = str(client[0]) if client else "?"
        now = api.clock.monotonic()
        if api.throttle.blocked(peer, now):
            body = ErrorBody(error="too_many_attempts", message="too many failed logins; wait")
            response = JSONResponse(
                body.model_dump(),
                status_code=429,
                headers={"Retry-After": f"{api.throttle.block_s:.0f}"},
            )
            await response(scope, receive, send)
            return
        given = _basic_credentials(scope)
        user, password = given if given is not None else (b"", b"")
        user_ok = secrets.compare_digest(user, api.user)
        password_ok = secrets.compare_digest(password, api.password)
        if given is not None and user_ok & password_ok:
            api.throttle.succeeded(peer)
            await self.app(scope, receive, send)
            return
        if api.throttle.failed(peer, now, guess=given is not None):
            log.warning(
                "local_api_auth_failed",
                device=peer,
                reason="no credentials" if given is None else "wrong credentials",
                path=scope["path"],
                note="further failures of this burst are not logged",
            )
        body = ErrorBody(error="unauthorized", message="missing or wrong Basic credentials")
        await JSONResponse(body.model_dump(), status_code=401, headers=_CHALLENGE)(
            scope, receive, send
        )


# --- error answers ------------------------------------------------------------------------------

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Body is not valid JSON."},
    401: {"model": ErrorBody, "description": "Missing or wrong Basic credentials."},
    429: {"model": ErrorBody, "description": "Too many wrong credentials from this peer; wait."},
    503: {"model": ErrorBody, "description": "The settings could not be saved; nothing changed."},
    422: {"model": ErrorBody, "description": "A field has the wrong type or an invalid value."},
}
_CHALLENGE = {"WWW-Authenticate": f'Basic realm="{REALM}"'}


def _field_name(loc: Iterable[Any]) -> str:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) if parts else "body"


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


async def get_docs(request: Request) -> Response:
    return get_swagger_ui_html(openapi_url="/openapi.json", title=request.app.title)


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
    except OSError:  # not saved, so not applied (logged by the flex state): the EMS retries
        body = ErrorBody(error="not_saved", message="the settings could not be saved; retry")
        return JSONResponse(body.model_dump(), status_code=503)
    return SettingsBody.of(api.flex)


async def post_keep_alive(request: Request, api: State) -> Response:
    api.flex.keep_alive(source=f"rest {_client(request)}")
    return Response(status_code=200)


router = APIRouter()
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
    flex: FlexManagement,
    live: LiveDataSource,
    *,
    user: str,
    password: str,
    docs: bool = True,
    clock: Clock | None = None,
) -> FastAPI:
    """The local API app. ``run`` must call :func:`check_password_strength` first.

    ``docs``: serve ``/openapi.json`` and ``/docs`` (behind Basic auth); ``run`` passes the config
    value (off by default), the demo turns them on. ``clock`` times the failed-login throttle.
    """
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
            RequestValidationError: _validation_error,
            StarletteHTTPException: _http_error,
        },
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.local_api = LocalApiState(
        flex, live, user.encode(), password.encode(), clock or RealClock()
    )
    app.include_router(router)
    if docs:
        app.add_api_route("/openapi.json", get_openapi, methods=["GET"], include_in_schema=False)
        app.add_api_route("/docs", get_docs, methods=["GET"], include_in_schema=False)
    app.add_middleware(BasicAuthGate)
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
