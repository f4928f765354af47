"""The Direct EVSE Control / plug status API (CLEMAP-compatible; seeds 001/002, devices.md 2-3).

One FastAPI app serves the same contract on the edge (:mod:`fuseguard.api.edge_evse`) and in the
cloud; only the :class:`EvseBackend` differs. Routes, all under
``/edgedevices/{edge_device_id}/evses/{uuid}``:

* ``POST /currentsettings`` ``{"current", "duration"}`` -> 201 ``{"state", "current", "duration"}``
* ``GET /currentsettings`` -> ``{"current", "valid_until"}`` (nulls when none)
* ``DELETE /currentsettings`` -> the settings valid before, then cleared
* ``GET /status`` -> one object per plug

Order of checks: missing or wrong ``evsetoken`` -> 401; a valid token of another EVSE -> 403 (so
EVSE ids cannot be enumerated without a token); then unknown edge/EVSE -> 404; then the body, JSON
whatever its ``Content-Type`` (or none, :mod:`fuseguard.api.jsonbody`): 422 naming the field; not
JSON -> 400. The token is checked by :class:`EvseTokenGate` before a byte of the body is read.
Errors are Feathers-style JSON ``{"name", "message", "code", "className"}`` plus ``"field"``.

The routes are module-level functions; the backend and the token checker sit in the app's state
(:class:`EvseApiState`), put there by :func:`create_evse_app`. Only the POST body is per app: its
``duration`` bound is ``max_duration_s`` (and so is the OpenAPI ``maximum``), so each app gets its
own body model and a thin POST endpoint over :func:`set_current_settings`.

(No ``from __future__ import annotations`` here: FastAPI must resolve the POST endpoint's
annotations, which name a model local to :func:`_post_body_model`.)
"""

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Annotated, Any, Literal, Protocol

import structlog
from fastapi import APIRouter, Depends, FastAPI, Request, Security
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader
from pydantic import Field
from starlette.datastructures import URLPath
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match, NoMatchFound, compile_path, request_response
from starlette.types import ASGIApp, Receive, Scope, Send

from fuseguard.api.evse_errors import TOKEN_HEADER, ApiError
from fuseguard.api.evse_errors import error_response as _error_response
from fuseguard.api.evse_models import (
    DEFAULT_MAX_DURATION_S,
    CurrentSettingsIn,
    CurrentSettingsOut,
    CurrentSettingsPosted,
    ErrorBody,
    EvseInfo,
    JsonInt,
    PlugStatusOut,
    PlugStatusRecord,
)
from fuseguard.api.jsonbody import json_body, json_body_openapi, parse_json_body, read_body
from fuseguard.control.targets import Target
from fuseguard.logging import clip_id
from fuseguard.serving.throttle import LogThrottle

log = structlog.get_logger(__name__)


class EvseBackend(Protocol):
    """What the API needs from the edge (local state) or the cloud (store + MQTT)."""

    async def evse(self, edge_device_id: str, evse_uuid: str) -> EvseInfo | None:
        """The EVSE, or None when the edge or the EVSE is unknown (-> 404)."""

    async def set_target(
        self, edge_device_id: str, evse_uuid: str, current_a: int, duration_s: int
    ) -> Literal["received", "rejected"]:
        """Apply a target; ``rejected`` when it cannot be delivered."""

    async def get_target(self, edge_device_id: str, evse_uuid: str) -> Target | None:
        """The target in force (None when none or expired)."""

    async def clear_target(self, edge_device_id: str, evse_uuid: str) -> Target | None:
        """Clear the target; returns the one valid before."""

    async def status(self, edge_device_id: str, evse_uuid: str) -> list[PlugStatusRecord]:
        """One record per plug."""


class TokenChecker(Protocol):
    """Token verification (:class:`fuseguard.store.tokens.TokenRepository` satisfies it)."""

    async def check(
        self, edge_device_id: str, evse_uuid: str, token: str | None
    ) -> Literal["ok", "missing", "invalid", "wrong_evse"]:
        """``ok``, or why not."""


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "Malformed request body",
        401: "Missing or wrong evsetoken",
        403: "evsetoken belongs to another EVSE",
        404: "Unknown edge device or EVSE",
        422: "Validation failed; `field` names the offending field",
    }
    return {c: {"model": ErrorBody, "description": descriptions[c]} for c in codes}


_AUTH_ERRORS = (401, 403, 404, 422)
_BASE = "/edgedevices/{edge_device_id}/evses/{uuid}"

# --- dependencies -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EvseApiState:
    """What one EVSE API app serves (``app.state.evse_api``) and the routes it has.

    ``auth_log`` throttles the ``evse_api_auth_failed`` lines of missing and unknown tokens.
    """

    backend: EvseBackend
    tokens: TokenChecker
    routes: tuple[BaseRoute, ...]
    auth_log: LogThrottle = field(default_factory=LogThrottle)


def _api_state(request: Request) -> EvseApiState:
    state: EvseApiState = request.app.state.evse_api
    return state


async def _evse_api(request: Request) -> EvseApiState:
    """The dependency (async: FastAPI runs a plain ``def`` dependency in a worker thread)."""
    return _api_state(request)


Api = Annotated[EvseApiState, Depends(_evse_api)]

_API_KEY = APIKeyHeader(
    name=TOKEN_HEADER,
    auto_error=False,
    description="Per-EVSE token (`fuseguard token create --evse UUID`).",
)


_TOKEN_OK = "fuseguard_evse_token_ok"  # noqa: S105 - a scope state key, not a secret
_EVSE_PATH = re.compile(r"^/edgedevices/(?P<edge>[^/]+)/evses/(?P<uuid>[^/]+)(?:/.*)?$")


async def check_token(
    tokens: TokenChecker,
    edge_device_id: str,
    uuid: str,
    token: str | None,
    auth_log: LogThrottle | None = None,
) -> None:
    """``evsetoken`` is the token of this EVSE, else :class:`ApiError` 401/403.

    A missing or unknown token is logged through ``auth_log`` (once per burst) when given; a valid
    token of another EVSE (misuse by a token holder) always.
    """
    result = await tokens.check(edge_device_id, uuid, token)
    if result == "ok":
        return
    suppressed = 0 if result == "wrong_evse" or auth_log is None else auth_log.admit()
    if suppressed is not None:
        log.warning(
            "evse_api_auth_failed",
            edge=clip_id(edge_device_id),
            evse=clip_id(uuid),
            reason=result,
            suppressed=suppressed,
        )
    if result == "wrong_evse":
        raise ApiError(403, "this evsetoken belongs to another EVSE")
    if result == "missing":
        raise ApiError(401, "evsetoken header missing")
    raise ApiError(401, "invalid evsetoken")


class EvseTokenGate:
    """ASGI middleware: every request under an EVSE path has its token checked first.

    Runs before routing and before the body is read, so an unauthenticated request is answered
    401/403 without its body being parsed, and an unknown EVSE is not told apart from a known one.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """401/403 for a bad token on an EVSE path; otherwise the app."""
        match = _EVSE_PATH.match(scope["path"]) if scope["type"] == "http" else None
        if match is not None:
            edge, uuid = match["edge"], match["uuid"]
            token = next(
                (v.decode("latin-1") for k, v in scope["headers"] if k == TOKEN_HEADER.encode()),
                None,
            )
            api: EvseApiState = scope["app"].state.evse_api
            try:
                await check_token(api.tokens, edge, uuid, token, api.auth_log)
            except ApiError as err:
                await _error_response(err.code, err.message)(scope, receive, send)
                return
            scope.setdefault("state", {})[_TOKEN_OK] = (edge, uuid)
        await self.app(scope, receive, send)


async def authorized_evse(
    request: Request,
    api: Api,
    edge_device_id: Annotated[str, PathParam(description="Edge device id")],
    uuid: Annotated[str, PathParam(description="EVSE uuid (32 lowercase hex)")],
    token: Annotated[str | None, Security(_API_KEY)],
) -> EvseInfo:
    """The EVSE of the path once ``evsetoken`` is its token (else 401/403), if it exists (404)."""
    return await _authorize(api, request.scope, edge_device_id, uuid, token)


async def _authorize(
    api: EvseApiState, scope: Scope, edge_device_id: str, uuid: str, token: str | None
) -> EvseInfo:
    if scope.get("state", {}).get(_TOKEN_OK) != (edge_device_id, uuid):
        await check_token(api.tokens, edge_device_id, uuid, token, api.auth_log)  # no gate
    info = await api.backend.evse(edge_device_id, uuid)
    if info is None:
        edge, evse = clip_id(edge_device_id), clip_id(uuid)
        log.info("evse_api_not_found", edge=edge, evse=evse, reason="unknown")
        raise ApiError(404, f"no EVSE {evse!r} on edge device {edge!r}")
    return info


AuthorizedEvse = Annotated[EvseInfo, Depends(authorized_evse)]

# --- error answers ------------------------------------------------------------------------------


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return _error_response(exc.code, exc.message, exc.field)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {"loc": ("body",), "msg": "invalid", "type": "invalid"}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "path", "header")]
    field = ".".join(loc) if loc else "body"
    if first.get("type") == "json_invalid":
        return _error_response(400, "request body is not valid JSON", "body")
    message = f"{field}: {first.get('msg', 'invalid')}"
    return _error_response(422, message, field)


def _allowed_methods(routes: Iterable[BaseRoute], path: str) -> str:
    methods: set[str] = set()
    for route in routes:
        if isinstance(route, APIRoute) and route.path_regex.match(path):
            methods |= route.methods or set()
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    response = _error_response(exc.status_code, str(exc.detail))
    response.headers.update(exc.headers or {})
    if exc.status_code == 405:  # Starlette lists only the first matching route's methods
        response.headers["Allow"] = _allowed_methods(_api_state(request).routes, request.url.path)
    return response


# --- routes -------------------------------------------------------------------------------------
# Route functions carry no docstrings: FastAPI would publish them as operation descriptions.


async def set_current_settings(
    body: CurrentSettingsIn, edge_device_id: str, info: EvseInfo, backend: EvseBackend
) -> CurrentSettingsPosted:
    """POST currentsettings once the body and the token are valid: check the EVSE's range, apply."""
    current = body.current
    if current != 0 and not info.min_current_a <= current <= info.max_current_a:
        raise ApiError(
            422,
            f"current must be 0 or within [{info.min_current_a}, {info.max_current_a}] A "
            f"for this EVSE, got {current}",
            "current",
        )
    state = await backend.set_target(edge_device_id, info.evse_uuid, current, body.duration)
    log.info(
        "evse_api_target",
        edge=edge_device_id,
        evse=info.evse_uuid,
        current_a=current,
        duration_s=body.duration,
        state=state,
        reason="POST currentsettings",
    )
    return CurrentSettingsPosted(state=state, current=current, duration=body.duration)


@cache
def _post_body_model(max_duration_s: int) -> type[CurrentSettingsIn]:
    """The POST body of an app whose ``duration`` is bounded by ``max_duration_s``."""

    class CurrentSettingsBody(CurrentSettingsIn):
        duration: JsonInt = Field(
            ge=1, le=max_duration_s, description="Seconds the target holds, then it expires."
        )

    return CurrentSettingsBody


def _post_endpoint(
    body_model: type[CurrentSettingsIn],
) -> Callable[..., Awaitable[CurrentSettingsPosted]]:
    """The POST endpoint reading ``body_model`` (any content type) once the token is checked."""

    async def post_current_settings(
        edge_device_id: str,
        info: AuthorizedEvse,  # before the body: the token is checked before the body is read
        api: Api,
        body: Annotated[CurrentSettingsIn, json_body(body_model)],
    ) -> CurrentSettingsPosted:
        return await set_current_settings(body, edge_device_id, info, api.backend)

    return post_current_settings


async def get_current_settings(
    edge_device_id: str, info: AuthorizedEvse, api: Api
) -> CurrentSettingsOut:
    return CurrentSettingsOut.of(await api.backend.get_target(edge_device_id, info.evse_uuid))


async def delete_current_settings(
    edge_device_id: str, info: AuthorizedEvse, api: Api
) -> CurrentSettingsOut:
    previous = await api.backend.clear_target(edge_device_id, info.evse_uuid)
    log.info(
        "evse_api_target_cleared",
        edge=edge_device_id,
        evse=info.evse_uuid,
        had_target=previous is not None,
        reason="DELETE currentsettings",
    )
    return CurrentSettingsOut.of(previous)


async def get_status(edge_device_id: str, info: AuthorizedEvse, api: Api) -> list[PlugStatusOut]:
    records = await api.backend.status(edge_device_id, info.evse_uuid)
    return [PlugStatusOut.of(r) for r in records]


class _DirectRoute(BaseRoute):
    """GET or POST currentsettings answered without FastAPI's dependency solving.

    The hot routes: the same checks in the same order (token, EVSE, then the body), the same
    endpoint code and errors (raised into the app's exception handlers), the same JSON. It sits
    before FastAPI's routes and matches only its method on the exact path (any other request
    goes on to them); not an ``APIRoute``, so the OpenAPI stays FastAPI's. Saves the per-request
    dependency graph (5 dependencies) and the response re-validation.
    ``tests/evse_api/test_evse_api_direct.py`` compares every kind of answer with FastAPI's.
    """

    def __init__(self, method: str, body_model: type[CurrentSettingsIn] | None) -> None:
        self.method = method
        self.body_model = body_model
        self.status_code = 201 if body_model is not None else 200
        self.regex, _fmt, _convertors = compile_path(f"{_BASE}/currentsettings")
        self.app = request_response(self.endpoint)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        """FULL for this method on the exact path, else NONE (FastAPI's routes decide)."""
        if scope["type"] == "http" and scope["method"] == self.method:
            match = self.regex.match(scope["path"])
            if match is not None:
                return Match.FULL, {"path_params": match.groupdict()}
        return Match.NONE, {}

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        """Not named: never a target of ``url_path_for``."""
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the request."""
        await self.app(scope, receive, send)

    async def endpoint(self, request: Request) -> Response:
        """The route's endpoint (see the class docstring)."""
        api = _api_state(request)
        edge, uuid = request.path_params["edge_device_id"], request.path_params["uuid"]
        token = request.headers.get(TOKEN_HEADER) or None  # APIKeyHeader: empty is missing
        info = await _authorize(api, request.scope, edge, uuid, token)
        out: CurrentSettingsOut | CurrentSettingsPosted
        if self.body_model is None:
            out = await get_current_settings(edge, info, api)
        else:
            body = parse_json_body(self.body_model, await read_body(request))
            out = await set_current_settings(body, edge, info, api.backend)
        return JSONResponse(out.model_dump(mode="json"), status_code=self.status_code)


def evse_router(max_duration_s: int) -> APIRouter:
    """The four routes, with a POST body bounded by ``max_duration_s``."""
    router = APIRouter()
    body_model = _post_body_model(max_duration_s)
    router.add_api_route(
        f"{_BASE}/currentsettings",
        _post_endpoint(body_model),
        methods=["POST"],
        openapi_extra=json_body_openapi(body_model),
        status_code=201,
        response_model=CurrentSettingsPosted,
        responses=_responses(400, *_AUTH_ERRORS),
        summary="Set a current target value for a duration",
    )
    router.add_api_route(
        f"{_BASE}/currentsettings",
        get_current_settings,
        methods=["GET"],
        response_model=CurrentSettingsOut,
        responses=_responses(*_AUTH_ERRORS),
        summary="Get the current target value in force",
    )
    router.add_api_route(
        f"{_BASE}/currentsettings",
        delete_current_settings,
        methods=["DELETE"],
        response_model=CurrentSettingsOut,
        responses=_responses(*_AUTH_ERRORS),
        summary="Reset the current target value; returns the settings valid before",
    )
    router.add_api_route(
        f"{_BASE}/status",
        get_status,
        methods=["GET"],
        response_model=list[PlugStatusOut],
        responses=_responses(*_AUTH_ERRORS),
        summary="Status of every plug of the EVSE",
    )
    return router


def create_evse_app(
    backend: EvseBackend,
    tokens: TokenChecker,
    *,
    max_duration_s: int = DEFAULT_MAX_DURATION_S,
    title: str = "fuseguard Direct EVSE Control API",
    docs: bool = True,
    direct: bool = True,
) -> FastAPI:
    """The API app on ``backend``; ``max_duration_s`` bounds ``duration`` (default 24 h).

    ``docs``: serve ``/docs`` and ``/openapi.json`` (the edge passes its config, off by default).
    ``direct``: the hot routes skip FastAPI's dependency solving (:class:`_DirectRoute`).
    """
    router = evse_router(max_duration_s)
    app = FastAPI(
        title=title,
        version="1.0.0",
        description="Current target values and plug status per EVSE (CLEMAP-compatible).",
        docs_url="/docs" if docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
        exception_handlers={
            ApiError: _api_error,
            RequestValidationError: _validation_error,
            StarletteHTTPException: _http_error,
        },
    )
    app.state.evse_api = EvseApiState(backend, tokens, tuple(router.routes))
    if direct:
        app.router.routes.append(_DirectRoute("POST", _post_body_model(max_duration_s)))
        app.router.routes.append(_DirectRoute("GET", None))
    app.include_router(router)
    app.add_middleware(EvseTokenGate)
    return app
