"""Dashboard pages: login/logout, the live site page and its SSE stream, the event list."""

from __future__ import annotations

import math

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse

from fuseguard.api.web.auth import LOGIN_CSRF_COOKIE, SESSION_COOKIE, new_token, tokens_match
from fuseguard.api.web.core import (
    WriteRefusedError,
    current_session,
    deps_of,
    is_https,
    read_form,
    render,
    to_login,
)
from fuseguard.api.web.events import EventKind
from fuseguard.api.web.live import StatusHub

log = structlog.get_logger(__name__)


def _client(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def _set_cookie(request: Request, response: Response, name: str, value: str) -> None:
    response.set_cookie(
        name, value, httponly=True, samesite="strict", secure=is_https(request), path="/"
    )


async def home(request: Request) -> Response:
    """``/``: the live page, or the login form."""
    if current_session(request) is None:
        return RedirectResponse("/login", status_code=303)
    return RedirectResponse("/site", status_code=303)


def _login_page(request: Request, error: str = "", status_code: int = 200) -> Response:
    token = new_token()
    response = render(
        request, "login.html", {"login_csrf": token, "error": error}, status_code=status_code
    )
    _set_cookie(request, response, LOGIN_CSRF_COOKIE, token)
    return response


async def login_form(request: Request) -> Response:
    """``GET /login``."""
    if current_session(request) is not None:
        return RedirectResponse("/site", status_code=303)
    return _login_page(request)


async def login(request: Request) -> Response:
    """``POST /login``: double-submit CSRF, throttling, argon2 check, new session."""
    deps = deps_of(request)
    try:
        form = await read_form(request)
    except WriteRefusedError as refused:
        return refused.response
    if not tokens_match(request.cookies.get(LOGIN_CSRF_COOKIE, ""), form.get("csrf_token")):
        return _login_page(request, "The form expired; please try again.", 403)
    user = form.get("user", "").strip()
    password = form.get("password", "")
    client = _client(request)
    keys = (f"user:{user.lower()}", f"ip:{client}")
    wait_s = deps.throttle.retry_after_s(*keys)
    if wait_s > 0:
        response = _login_page(request, "Too many failed logins; please wait and retry.", 429)
        response.headers["retry-after"] = str(math.ceil(wait_s))
        return response
    found = await deps.users.verify(user, password) if user and password else None
    if found is None:
        deps.throttle.failed(*keys)
        await deps.events.record(EventKind.LOGIN_FAILED, f"web {client}", f"user {user[:64]!r}")
        log.warning("web_login_failed", device="web", user=user[:64], reason=f"from {client}")
        return _login_page(request, "Wrong user or password.", 401)
    deps.throttle.succeeded(*keys)
    session = deps.sessions.create(found.name, found.role)
    await deps.events.record(
        EventKind.LOGIN, f"web {client}", f"{found.name} logged in ({found.role.value})"
    )
    response = RedirectResponse("/site", status_code=303)
    _set_cookie(request, response, SESSION_COOKIE, session.id)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


async def logout(request: Request) -> Response:
    """``POST /logout`` (CSRF-checked like every write, but any role may log out)."""
    deps = deps_of(request)
    session = current_session(request)
    try:
        form = await read_form(request)
    except WriteRefusedError as refused:
        return refused.response
    if session is not None and tokens_match(session.csrf, form.get("csrf_token")):
        deps.sessions.drop(session.id)
        await deps.events.record(EventKind.LOGOUT, f"web {_client(request)}", session.user)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


async def site_page(request: Request) -> Response:
    """``GET /site``: the circuit tree and the plug cards (then live over SSE)."""
    if current_session(request) is None:
        return to_login(request)
    return render(request, "site.html", {"site": deps_of(request).view()})


async def live_data(request: Request) -> Response:
    """``GET /live/data``: the live page's data as JSON (one snapshot)."""
    if current_session(request) is None:
        return JSONResponse({"error": "login required"}, status_code=401)
    return JSONResponse(deps_of(request).view())


async def live_stream(request: Request) -> Response:
    """``GET /live/stream``: Server-Sent Events, one ``status`` per controller cycle."""
    if current_session(request) is None:
        return JSONResponse({"error": "login required"}, status_code=401)
    hub: StatusHub = request.app.state.hub
    if hub.full:
        return JSONResponse({"error": "too many live viewers"}, status_code=503)
    clock = deps_of(request).clock
    return StreamingResponse(
        hub.stream(lambda: clock.now().isoformat()),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


async def events_page(request: Request) -> Response:
    """``GET /events``: the newest events, optionally of one kind."""
    if current_session(request) is None:
        return to_login(request)
    kind = request.query_params.get("kind") or None
    if kind is not None and kind not in EventKind.ALL:
        kind = None
    events = await deps_of(request).events.recent(200, kind)
    return render(
        request, "events.html", {"events": events, "kinds": EventKind.ALL, "kind": kind or ""}
    )


__all__ = [
    "events_page",
    "home",
    "live_data",
    "live_stream",
    "login",
    "login_form",
    "logout",
    "site_page",
]
