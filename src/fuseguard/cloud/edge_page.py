"""The cloud's edge page: one edge's live page, relayed over MQTT, behind the fleet's Basic auth.

=================================  ============================================================
path                               what
=================================  ============================================================
``/fleet/edges/{edge}``            the edge's live page: the edge dashboard's own template
                                   (``site.html``) on the newest relayed snapshot
``/fleet/edges/{edge}/stream``     Server-Sent Events: each snapshot as it arrives, ``ping``
                                   events in between (the edge dashboard's ``live.js``)
``/fleet/static/{file}``           the few static files that page uses (CSS, ``live.js``, uPlot)
=================================  ============================================================

Opening the page (and every event of an open stream) asks the edge for snapshots
(:meth:`~fuseguard.cloud.live.LiveRelay.request`); the first one is awaited for a few seconds.
Until one arrives the page says so (edge offline, never connected, or waiting) and reloads
itself when the first snapshot comes. Staleness is stated as on the edge: the snapshot's age,
plus the time since it reached the cloud, and ``ping`` events while nothing moves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from fuseguard.api.metrics import basic_auth_ok
from fuseguard.api.web.core import PACKAGE_DIR, TEMPLATES
from fuseguard.cloud.live import LiveRelay
from fuseguard.cloud.live_wire import waiting_view
from fuseguard.cloud.protocol import MAX_EDGE_ID_LEN
from fuseguard.cloud.store import CloudStore
from fuseguard.model.clock import Clock

Endpoint = Callable[[Request], Awaitable[Response]]
#: How long opening the page waits for the edge's first snapshot.
FIRST_SNAPSHOT_S = 3.0
#: The static files of the edge page, by name (nothing else under /fleet/static).
STATIC_FILES = {
    "app.css": "text/css",
    "live.js": "text/javascript",
    "vendor/uPlot-1.6.32.iife.min.js": "text/javascript",
    "vendor/uPlot-1.6.32.min.css": "text/css",
}
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


_STATE_WORDS = {True: "online", False: "offline", None: "never connected"}
_WAITING_TEXT = {
    True: "Waiting for live data from the edge…",
    False: "Edge offline: no live data",
    None: "The edge never connected: no live data",
}


def _unauthorized() -> Response:
    return PlainTextResponse(
        "unauthorized\n", 401, headers={"WWW-Authenticate": 'Basic realm="fuseguard cloud"'}
    )


def valid_edge_id(edge: str) -> bool:
    """An edge id the cloud could hold (a single, bounded MQTT topic level)."""
    return 0 < len(edge) <= MAX_EDGE_ID_LEN and not any(c in edge for c in "/+#\x00")


def edge_page_endpoints(
    store: CloudStore,
    relay: LiveRelay,
    edge_online: Callable[[str], Awaitable[bool | None]],
    clock: Clock,
    *,
    user: str,
    password: str,
) -> dict[str, Endpoint]:
    """Route path -> handler of the edge page, its stream and its static files."""
    credentials = (user, password)

    async def page(request: Request) -> Response:
        if not basic_auth_ok(request, credentials):
            return _unauthorized()
        edge = request.path_params["edge"]
        if not valid_edge_id(edge) or edge not in await store.edges():
            return PlainTextResponse("no such edge\n", 404)
        online = await edge_online(edge)
        relay.hub(edge)  # watch it from now on
        await relay.request(edge, force=relay.latest(edge) is None)
        if relay.latest(edge) is None and online:
            await relay.wait_first(edge, FIRST_SNAPSHOT_S)
        site = relay.view(edge, online)
        if site is None:
            site = waiting_view(clock.now(), _WAITING_TEXT[online])
        received = relay.latest(edge)
        context = {
            "session": None,
            "csrf_token": "",
            "site_name": received.snapshot.site_name if received else edge,
            "path": request.url.path,
            "site": site,
            "relay": {"edge": edge, "state": _STATE_WORDS[online]},
            "static_url": "/fleet/static",
            "stream_url": f"/fleet/edges/{quote(edge, safe='')}/stream",
        }
        response: Response = TEMPLATES.TemplateResponse(request, "site.html", context)
        response.headers.update(PAGE_HEADERS)
        return response

    async def stream(request: Request) -> Response:
        if not basic_auth_ok(request, credentials):
            return _unauthorized()
        edge = request.path_params["edge"]
        if not valid_edge_id(edge) or edge not in await store.edges():
            return PlainTextResponse("no such edge\n", 404)
        hub = relay.hub(edge)
        if hub.full:
            return PlainTextResponse("too many live viewers\n", 503)

        async def events() -> AsyncIterator[bytes]:
            async for chunk in hub.stream(lambda: clock.now().isoformat()):
                await relay.request(edge)  # keeps the edge's lease running while we watch
                yield chunk

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )

    async def static(request: Request) -> Response:
        if not basic_auth_ok(request, credentials):
            return _unauthorized()
        name = request.path_params["file"]
        media_type = STATIC_FILES.get(name)
        if media_type is None:
            return PlainTextResponse("not found\n", 404)
        body = (PACKAGE_DIR / "static" / name).read_bytes()
        return Response(body, media_type=media_type, headers={"Cache-Control": "max-age=3600"})

    return {
        "/fleet/edges/{edge}": page,
        "/fleet/edges/{edge}/stream": stream,
        "/fleet/static/{file:path}": static,
    }


__all__ = ["FIRST_SNAPSHOT_S", "STATIC_FILES", "edge_page_endpoints", "valid_edge_id"]
