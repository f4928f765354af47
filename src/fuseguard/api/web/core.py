"""What every dashboard handler shares: its dependencies, templates, the session and CSRF guards.

Guards answer for the handler: :func:`viewer_session` (any logged-in user; a browser without a
session is sent to the login page), :func:`writer_session` (a POST: session, then CSRF token,
then the admin role; 401 / 403 otherwise). Forms are parsed with tight limits (:func:`read_form`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from fuseguard.api.evse import EvseBackend
from fuseguard.api.evse_models import EvseInfo
from fuseguard.api.site_state import limit_source
from fuseguard.api.web.auth import (
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    LoginThrottle,
    Session,
    SessionStore,
    tokens_match,
)
from fuseguard.api.web.events import EventLog
from fuseguard.api.web.view import ViewContext, site_view
from fuseguard.control.flex import FlexManagement
from fuseguard.control.plug_settings import PlugSettings
from fuseguard.control.targets import EvseTargets
from fuseguard.control.types import ControllerStatus
from fuseguard.model.circuits import CircuitTree
from fuseguard.model.clock import Clock
from fuseguard.store.history import HistoryRepository
from fuseguard.store.web import WebUserRepository

PACKAGE_DIR = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=str(PACKAGE_DIR / "templates"))
#: Largest request body a dashboard form may have.
MAX_FORM_BYTES = 16 * 1024


@dataclass
class WebDeps:
    """The edge objects the dashboard reads and writes (through their own validation)."""

    status: Callable[[], ControllerStatus]
    tree: CircuitTree
    flex: FlexManagement
    targets: EvseTargets
    evse_backend: EvseBackend
    evses: Mapping[str, EvseInfo]
    edge_id: str
    max_duration_s: int
    plug_settings: PlugSettings | None
    users: WebUserRepository
    events: EventLog
    clock: Clock
    sessions: SessionStore
    throttle: LoginThrottle
    site_name: str = "fuseguard"
    history: HistoryRepository | None = None
    history_raw_hours: float = 48.0
    #: the zone of departure times (``HH:MM`` given and shown); None: the process's local zone
    tz: tzinfo | None = None

    def view(self, status: ControllerStatus | None = None) -> dict[str, Any]:
        """The live page's data for ``status`` (default: the controller's last cycle)."""
        st = self.status() if status is None else status
        return live_view(
            st, self.tree, self.flex, self.plug_settings, self.targets, self.clock, tz=self.tz
        )


def live_view(
    status: ControllerStatus,
    tree: CircuitTree,
    flex: FlexManagement,
    plug_settings: PlugSettings | None,
    targets: EvseTargets,
    clock: Clock,
    *,
    tz: tzinfo | None = None,
) -> dict[str, Any]:
    """The live page's data for ``status`` from an edge's parts (dashboard and cloud relay);
    departures are shown in ``tz`` (None: the process's local zone)."""
    now = clock.now()
    departures = {}
    if plug_settings is not None:
        for plug in status.plugs:
            dep = plug_settings.departure_of(plug.id, now)
            if dep is not None:
                departures[plug.id] = dep
    ctx = ViewContext(
        tree=tree,
        limit_source=limit_source(flex),
        settings=plug_settings.all() if plug_settings is not None else {},
        targets=targets.all(),
        now=now,
        departures=departures,
        tz=tz,
    )
    return site_view(status, ctx)


class WriteRefusedError(Exception):
    """A write without a session, CSRF token or role: the response to send instead."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def deps_of(request: Request) -> WebDeps:
    """The app's :class:`WebDeps`."""
    deps: WebDeps = request.app.state.web
    return deps


def is_https(request: Request) -> bool:
    """The request came over TLS (the session cookie is then ``Secure``)."""
    return request.url.scheme == "https"


def current_session(request: Request) -> Session | None:
    """The request's live session, if any."""
    return deps_of(request).sessions.get(request.cookies.get(SESSION_COOKIE))


def to_login(request: Request) -> Response:
    """Send a browser without a session to the login page."""
    if request.headers.get("hx-request"):
        return PlainTextResponse("login required\n", 401, headers={"HX-Redirect": "/login"})
    return RedirectResponse("/login", status_code=303)


def writer_session(request: Request, form: Mapping[str, Any]) -> Session:
    """The session of an allowed write, else :class:`WriteRefusedError` (401 / 403)."""
    session = current_session(request)
    if session is None:
        raise WriteRefusedError(PlainTextResponse("login required\n", 401))
    given = request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD)
    if not tokens_match(session.csrf, given if isinstance(given, str) else None):
        raise WriteRefusedError(PlainTextResponse("missing or wrong CSRF token\n", 403))
    if not session.is_admin:
        raise WriteRefusedError(PlainTextResponse("only an admin may change settings\n", 403))
    return session


async def read_form(request: Request) -> dict[str, str]:
    """The urlencoded form body as text fields (bounded; files and oversize bodies refused)."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_FORM_BYTES):
        raise WriteRefusedError(PlainTextResponse("form too large\n", 413))
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise WriteRefusedError(PlainTextResponse("form too large\n", 413))
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=50)
    except (UnicodeDecodeError, ValueError) as exc:
        raise WriteRefusedError(PlainTextResponse("malformed form\n", 400)) from exc
    return {k: v[:200] for k, v in pairs}


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    status_code: int = 200,
) -> HTMLResponse:
    """A page with the common context (session, CSRF token, site name)."""
    session = current_session(request)
    base = {
        "session": session,
        "csrf_token": session.csrf if session is not None else "",
        "site_name": deps_of(request).site_name,
        "path": request.url.path,
    }
    response: HTMLResponse = TEMPLATES.TemplateResponse(
        request, template, {**base, **context}, status_code=status_code
    )
    return response


SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


__all__ = [
    "MAX_FORM_BYTES",
    "SECURITY_HEADERS",
    "TEMPLATES",
    "WebDeps",
    "WriteRefusedError",
    "current_session",
    "deps_of",
    "is_https",
    "live_view",
    "read_form",
    "render",
    "to_login",
    "writer_session",
]
