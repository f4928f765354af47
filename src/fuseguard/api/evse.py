"""The Direct EVSE Control / plug status API (CLEMAP-compatible; seeds 001/002, devices.md 2-3).

One FastAPI app serves the same contract on the edge (:mod:`fuseguard.api.edge_evse`) and in the
cloud; only the :class:`EvseBackend` differs. Routes, all under
``/edgedevices/{edge_device_id}/evses/{uuid}``:

* ``POST /currentsettings`` ``{"current", "duration"}`` -> 201 ``{"state", "current", "duration"}``
* ``GET /currentsettings`` -> ``{"current", "valid_until"}`` (nulls when none)
* ``DELETE /currentsettings`` -> the settings valid before, then cleared
* ``GET /status`` -> one object per plug

Order of checks: unknown edge/EVSE -> 404; missing or wrong ``evsetoken`` -> 401; a valid token of
another EVSE -> 403; then the body (422 naming the field; malformed JSON -> 400).
Errors are Feathers-style JSON ``{"name", "message", "code", "className"}`` plus ``"field"``.

(No ``from __future__ import annotations`` here: FastAPI must resolve the route annotations, some
of which are local to :func:`create_evse_app`.)
"""

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any, Literal, Protocol

import structlog
from fastapi import Depends, FastAPI, Request, Security
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader
from pydantic import Field
from starlette.exceptions import HTTPException as StarletteHTTPException

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
from fuseguard.control.targets import Target

log = structlog.get_logger(__name__)

TOKEN_HEADER = "evsetoken"  # noqa: S105  (a header name, not a secret)


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


_FEATHERS: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "bad-request"),
    401: ("NotAuthenticated", "not-authenticated"),
    403: ("Forbidden", "forbidden"),
    404: ("NotFound", "not-found"),
    405: ("MethodNotAllowed", "method-not-allowed"),
    422: ("Unprocessable", "unprocessable"),
    500: ("GeneralError", "general-error"),
}


class ApiError(Exception):
    """An error answer in Feathers form."""

    def __init__(self, code: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


def error_body(code: int, message: str, field: str | None = None) -> dict[str, Any]:
    """The JSON error object for ``code``."""
    name, class_name = _FEATHERS.get(code, ("GeneralError", "general-error"))
    body = ErrorBody(name=name, message=message, code=code, className=class_name, field=field)
    return body.model_dump()


def _error_response(code: int, message: str, field: str | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": TOKEN_HEADER} if code == 401 else None
    return JSONResponse(error_body(code, message, field), status_code=code, headers=headers)


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


def create_evse_app(
    backend: EvseBackend,
    tokens: TokenChecker,
    *,
    max_duration_s: int = DEFAULT_MAX_DURATION_S,
    title: str = "fuseguard Direct EVSE Control API",
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
) -> FastAPI:
    """The API app on ``backend``; ``max_duration_s`` bounds ``duration`` (default 24 h)."""
    app = FastAPI(
        title=title,
        version="1.0.0",
        description="Current target values and plug status per EVSE (CLEMAP-compatible).",
        lifespan=lifespan,
    )
    app.state.evse_backend = backend
    api_key = APIKeyHeader(
        name=TOKEN_HEADER,
        auto_error=False,
        description="Per-EVSE token (`fuseguard token create --evse UUID`).",
    )

    class CurrentSettingsBody(CurrentSettingsIn):
        duration: JsonInt = Field(
            ge=1, le=max_duration_s, description="Seconds the target holds, then it expires."
        )

    async def authorized_evse(
        edge_device_id: Annotated[str, PathParam(description="Edge device id")],
        uuid: Annotated[str, PathParam(description="EVSE uuid (32 lowercase hex)")],
        token: Annotated[str | None, Security(api_key)],
    ) -> EvseInfo:
        info = await backend.evse(edge_device_id, uuid)
        if info is None:
            log.info("evse_api_not_found", edge=edge_device_id, evse=uuid, reason="unknown")
            raise ApiError(404, f"no EVSE {uuid!r} on edge device {edge_device_id!r}")
        result = await tokens.check(edge_device_id, uuid, token)
        if result == "ok":
            return info
        log.warning("evse_api_auth_failed", edge=edge_device_id, evse=uuid, reason=result)
        if result == "wrong_evse":
            raise ApiError(403, "this evsetoken belongs to another EVSE")
        if result == "missing":
            raise ApiError(401, "evsetoken header missing")
        raise ApiError(401, "invalid evsetoken")

    AuthorizedEvse = Annotated[EvseInfo, Depends(authorized_evse)]  # noqa: N806

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error_response(exc.code, exc.message, exc.field)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": ("body",), "msg": "invalid", "type": "invalid"}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "path", "header")]
        field = ".".join(loc) if loc else "body"
        if first.get("type") == "json_invalid":
            return _error_response(400, "request body is not valid JSON", "body")
        message = f"{field}: {first.get('msg', 'invalid')}"
        return _error_response(422, message, field)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        response = _error_response(exc.status_code, str(exc.detail))
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:  # Starlette lists only the first matching route's methods
            methods: set[str] = set()
            for route in app.router.routes:
                if isinstance(route, APIRoute) and route.path_regex.match(request.url.path):
                    methods |= route.methods or set()
            response.headers["Allow"] = ", ".join(sorted(methods))
        return response

    base = "/edgedevices/{edge_device_id}/evses/{uuid}"

    @app.post(
        f"{base}/currentsettings",
        status_code=201,
        response_model=CurrentSettingsPosted,
        responses=_responses(400, *_AUTH_ERRORS),
        summary="Set a current target value for a duration",
    )
    async def post_current_settings(
        body: CurrentSettingsBody,
        edge_device_id: str,
        info: AuthorizedEvse,
    ) -> CurrentSettingsPosted:
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

    @app.get(
        f"{base}/currentsettings",
        response_model=CurrentSettingsOut,
        responses=_responses(*_AUTH_ERRORS),
        summary="Get the current target value in force",
    )
    async def get_current_settings(edge_device_id: str, info: AuthorizedEvse) -> CurrentSettingsOut:
        return CurrentSettingsOut.of(await backend.get_target(edge_device_id, info.evse_uuid))

    @app.delete(
        f"{base}/currentsettings",
        response_model=CurrentSettingsOut,
        responses=_responses(*_AUTH_ERRORS),
        summary="Reset the current target value; returns the settings valid before",
    )
    async def delete_current_settings(
        edge_device_id: str, info: AuthorizedEvse
    ) -> CurrentSettingsOut:
        previous = await backend.clear_target(edge_device_id, info.evse_uuid)
        log.info(
            "evse_api_target_cleared",
            edge=edge_device_id,
            evse=info.evse_uuid,
            had_target=previous is not None,
            reason="DELETE currentsettings",
        )
        return CurrentSettingsOut.of(previous)

    @app.get(
        f"{base}/status",
        response_model=list[PlugStatusOut],
        responses=_responses(*_AUTH_ERRORS),
        summary="Status of every plug of the EVSE",
    )
    async def get_status(edge_device_id: str, info: AuthorizedEvse) -> list[PlugStatusOut]:
        records = await backend.status(edge_device_id, info.evse_uuid)
        return [PlugStatusOut.of(r) for r in records]

    return app
