"""The dashboard's ASGI app: routes, static files (vendored htmx and uPlot), security headers, gzip.

=====================  ======  =============================================================
path                   method  what
=====================  ======  =============================================================
``/``                  GET     to ``/site`` (or ``/login``)
``/login``             GET     the login form; POST logs in (double-submit CSRF, throttled)
``/logout``            POST    ends the session
``/site``              GET     live site page (circuit tree, plug cards)
``/live/stream``       GET     Server-Sent Events: one ``status`` per controller cycle
``/live/data``         GET     the live page's data as JSON
``/settings``          GET     EMS limit, EVSE targets, plug mode/priority
``/settings/{what}``   POST    ``limit``, ``target``, ``plug`` (admin, CSRF token)
``/events``            GET     the event log
``/history``           GET     history chart (``/history/data`` its JSON), see ``history.py``
``/compliance``        GET     maximum per phase against each fuse, seconds above a limit
``/sessions``          GET     charging sessions (``/sessions.csv``: the same as CSV)
``/metrics``           GET     Prometheus (Basic auth of ``[api.metrics]``, or a session)
``/static/...``        GET     CSS, JS, vendored libraries
=====================  ======  =============================================================
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fuseguard.api.web import actions, history, pages
from fuseguard.api.web.core import PACKAGE_DIR, SECURITY_HEADERS, WebDeps, current_session
from fuseguard.api.web.live import StatusHub

Endpoint = Callable[[Request], Awaitable[Response]]


class SecurityHeaders:
    """Adds CSP, nosniff, frame and referrer policy to every response (streams untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                for name, value in SECURITY_HEADERS.items():
                    text = "public, max-age=3600" if name == "cache-control" and static else value
                    if name.encode() not in present:
                        headers.append((name.encode(), text.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


#: Paths that must never pass through gzip: a compressor buffers, and an event stream must not wait.
UNCOMPRESSED_PATHS = frozenset({"/live/stream"})
#: Smaller bodies are sent as they are (the gzip header would eat the gain).
GZIP_MINIMUM_BYTES = 500


class Compressed:
    """gzip for pages, CSS, JS and JSON when the client accepts it; the SSE stream is untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=GZIP_MINIMUM_BYTES, compresslevel=6)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI."""
        if scope["type"] != "http" or str(scope.get("path", "")) in UNCOMPRESSED_PATHS:
            await self.app(scope, receive, send)
            return
        await self.gzip(scope, receive, send)


def _session_metrics(endpoint: Endpoint) -> Endpoint:
    """``/metrics`` for logged-in dashboard users only (when no metrics password is set)."""

    async def metrics(request: Request) -> Response:
        if current_session(request) is None:
            return PlainTextResponse("login required\n", 401)
        return await endpoint(request)

    return metrics


def create_web_app(
    deps: WebDeps,
    hub: StatusHub,
    *,
    metrics: Endpoint | None = None,
    metrics_needs_session: bool = True,
) -> ASGIApp:
    """The dashboard on ``deps``; ``hub`` must be subscribed to the controller by the caller."""
    routes = [
        Route("/", pages.home, methods=["GET"]),
        Route("/login", pages.login_form, methods=["GET"]),
        Route("/login", pages.login, methods=["POST"]),
        Route("/logout", pages.logout, methods=["POST"]),
        Route("/site", pages.site_page, methods=["GET"]),
        Route("/live/stream", pages.live_stream, methods=["GET"]),
        Route("/live/data", pages.live_data, methods=["GET"]),
        Route("/settings", actions.settings_page, methods=["GET"]),
        Route("/settings/{what}", actions.settings_write, methods=["POST"]),
        Route("/events", pages.events_page, methods=["GET"]),
        Route("/history", history.history_page, methods=["GET"]),
        Route("/history/data", history.history_data, methods=["GET"]),
        Route("/compliance", history.compliance_page, methods=["GET"]),
        Route("/sessions", history.sessions_page, methods=["GET"]),
        Route("/sessions.csv", history.sessions_csv, methods=["GET"]),
        Mount("/static", StaticFiles(directory=str(PACKAGE_DIR / "static")), name="static"),
    ]
    if metrics is not None:
        endpoint = _session_metrics(metrics) if metrics_needs_session else metrics
        routes.append(Route("/metrics", endpoint, methods=["GET"]))
    app = Starlette(routes=routes)
    app.state.web = deps
    app.state.hub = hub
    return SecurityHeaders(Compressed(app))


__all__ = ["Compressed", "SecurityHeaders", "create_web_app"]
