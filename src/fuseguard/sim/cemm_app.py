"""The virtual CEMM's HTTP side: the Local Open API plus a small admin API under ``/sim``.

Wire API (``devices.md`` §5.2), each path with and without the trailing slash:

* ``GET /open-api/v1/`` – device info; ``GET /open-api/v1/io`` – connections
* ``GET /open-api/v1/<alias>/realtime/`` – ``data`` + ``totals``
* ``GET /open-api/v1/<alias>/data/day|month|year/?time=<epoch s>``

Unknown alias, channel or period -> 404 ``{"error": ...}``; a bad ``time`` -> 400
``{"error": ...}``.

Admin API (not part of a real CEMM; never affected by faults except ``offline``):

* ``GET /sim/state`` – fault, aliases, last telegram
* ``PUT /sim/fault`` ``{"kind": "slow", "delay_s": 3, "variant": "nan", "duration_s": 60}``
* ``DELETE /sim/fault`` – healthy again
* ``POST /sim/tick`` – take one meter telegram now (for standalone use without a site loop)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from fuseguard.sim.cemm_faults import Fault, GarbageVariant
from fuseguard.sim.cemm_model import CemmModel, UnknownAliasError
from fuseguard.wire.cemm import API, CHANNELS, MAX_TIME_S, ErrorBody, Period

log = structlog.get_logger(__name__)


class CemmOfflineError(ConnectionAbortedError):
    """Raised inside the app when a request arrives while the device is offline."""


class FaultRequest(BaseModel):
    """Body of ``PUT /sim/fault``."""

    kind: Fault
    delay_s: float = Field(default=2.0, ge=0.0, le=600.0)
    variant: GarbageVariant = GarbageVariant.TRUNCATED
    duration_s: float | None = Field(default=None, gt=0.0)


def _error(status: int, message: str) -> JSONResponse:
    body = ErrorBody(error=message[:200], status=status)
    return JSONResponse(body.model_dump(mode="json"), status_code=status)


def _garbage(variant: GarbageVariant) -> Response:
    if variant is GarbageVariant.HTML:
        return Response(
            "<html><body><h1>CEMM</h1>Service temporarily unavailable</body></html>",
            media_type="text/html",
        )
    if variant is GarbageVariant.NAN:
        body = '{"data": {"electric_power": [1700000000000, NaN], "t1": [1700000000000, NaN]}}'
        return Response(body, media_type="application/json")
    if variant is GarbageVariant.SHAPE:
        return JSONResponse({"data": ["electric_power", 12, None], "totals": "n/a"})
    return Response('{"data": {"t1": [1700000000000, 52', media_type="application/json")


def _parse_time(raw: str | None) -> int | None:
    """``time`` query value -> epoch seconds; ValueError when it is not one."""
    if raw is None:
        return None
    text = raw.strip()
    if not text.isdigit():
        msg = f"time must be a non-negative integer of epoch seconds, got {raw!r}"
        raise ValueError(msg)
    value = int(text)
    if value > MAX_TIME_S:
        msg = f"time {value} is out of range"
        raise ValueError(msg)
    return value


def create_cemm_app(model: CemmModel) -> FastAPI:
    """The FastAPI app of one virtual CEMM (wire API + ``/sim`` admin API)."""
    app = FastAPI(
        title="Virtual CEMM",
        description="CEMM Local Open API (virtual device) and its /sim admin API.",
        redirect_slashes=False,
        docs_url="/sim/docs",
        openapi_url="/sim/openapi.json",
    )
    _add_fault_middleware(app, model)
    _add_wire_routes(app, model)
    _add_admin_routes(app, model)
    return app


def _add_fault_middleware(app: FastAPI, model: CemmModel) -> None:
    """The active fault acts on every wire request (the admin API is never affected)."""
    device = model.identity.mac

    @app.middleware("http")
    async def faults(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        path = request.url.path
        if not path.startswith(API):
            return await call_next(request)
        fault = model.fault
        if fault.kind is Fault.OFFLINE:
            log.info("cemm_request_dropped", device=device, reason="offline", path=path)
            raise CemmOfflineError(device)
        if fault.kind is Fault.SLOW:
            # the answer is built when asked and sent late: its telegram is delay_s old
            response = await call_next(request)
            await model.clock.sleep(fault.delay_s)
            return response
        if fault.kind is Fault.HTTP_500:
            return _error(500, "internal server error")
        if fault.kind is Fault.GARBAGE:
            return _garbage(fault.variant)
        return await call_next(request)


def _add_wire_routes(app: FastAPI, model: CemmModel) -> None:
    """The Local Open API, each path with and without the trailing slash."""

    async def root() -> JSONResponse:
        return JSONResponse(model.identity.root_body())

    async def io() -> JSONResponse:
        return JSONResponse(model.io_body())

    async def realtime(alias: str) -> JSONResponse:
        try:
            return JSONResponse(model.realtime_body(alias))
        except UnknownAliasError:
            return _error(404, f"unknown alias {alias!r}")

    async def channel(alias: str, name: str) -> JSONResponse:
        try:
            kind = model.kind_of(alias)
        except UnknownAliasError:
            return _error(404, f"unknown alias {alias!r}")
        data_keys, total_keys = CHANNELS[kind]
        body = model.realtime_body(alias)
        if name in data_keys:
            return JSONResponse({"data": {name: body["data"][name]}})
        if name in total_keys:
            return JSONResponse({"data": {name: body["totals"][name]}})
        return _error(404, f"unknown channel {name!r} for alias {alias!r}")

    async def history(alias: str, period: str, time: str | None = None) -> JSONResponse:
        try:
            per = Period(period)
        except ValueError:
            return _error(404, f"unknown period {period!r} (day, month, year)")
        try:
            time_s = _parse_time(time)
        except ValueError as exc:
            return _error(400, str(exc))
        try:
            return JSONResponse(model.history_body(alias, per, time_s))
        except UnknownAliasError:
            return _error(404, f"unknown alias {alias!r}")

    def both(path: str, endpoint: Any) -> None:
        for p in (path, path + "/"):
            app.add_api_route(p, endpoint, methods=["GET"], include_in_schema=p == path)

    app.add_api_route(f"{API}/", root, methods=["GET"])
    app.add_api_route(API, root, methods=["GET"], include_in_schema=False)
    both(f"{API}/io", io)
    both(f"{API}/{{alias}}/realtime", realtime)
    both(f"{API}/{{alias}}/realtime/{{name}}", channel)
    both(f"{API}/{{alias}}/data/{{period}}", history)

    @app.api_route(f"{API}/{{rest:path}}", methods=["GET"], include_in_schema=False)
    async def not_found(rest: str) -> JSONResponse:
        return _error(404, f"unknown path {rest!r}")


def _add_admin_routes(app: FastAPI, model: CemmModel) -> None:
    """``/sim``: state, fault injection, one telegram on demand."""

    @app.get("/sim/state")
    async def state() -> JSONResponse:
        f = model.fault
        return JSONResponse(
            {
                "fault": None if f.kind is None else f.kind.value,
                "delay_s": f.delay_s,
                "variant": f.variant.value,
                "aliases": model.aliases,
                "now": model.clock.now().isoformat(),
                "realtime": {a: model.realtime_body(a) for a in model.aliases},
            }
        )

    @app.put("/sim/fault")
    async def put_fault(body: FaultRequest) -> JSONResponse:
        model.set_fault(
            body.kind, delay_s=body.delay_s, variant=body.variant, duration_s=body.duration_s
        )
        return JSONResponse({"fault": body.kind.value})

    @app.delete("/sim/fault")
    async def delete_fault() -> JSONResponse:
        model.clear_fault()
        return JSONResponse({"fault": None})

    @app.post("/sim/tick")
    async def tick() -> JSONResponse:
        model.tick()
        return JSONResponse({"now": model.clock.now().isoformat()})
