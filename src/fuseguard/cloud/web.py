"""The cloud's fleet page: ``GET /fleet`` (HTML, no JavaScript) behind Basic auth.

One row per edge the cloud knows (from the shared database, so every replica shows the same):
online state, time of the newest plug status ("last seen"), EVSEs (online / known) and plugs
charging. The look is the edge dashboard's stylesheet (``fuseguard/api/web/static/app.css``),
served at ``/fleet/app.css``. Each edge links to its live page, relayed over MQTT
(:mod:`fuseguard.cloud.edge_page`).

Authentication is one admin user from ``[web]`` in the cloud config (``admin_user``,
``admin_password``); without a password the page is not served at all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from html import escape
from importlib import resources
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

from fuseguard.api.metrics import basic_auth_ok
from fuseguard.cloud.fleet import FleetEdge, load_fleet
from fuseguard.cloud.store import CloudStore
from fuseguard.model.clock import Clock

_CSS = resources.files("fuseguard.api.web").joinpath("static/app.css")

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Fleet · fuseguard cloud</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="/fleet/app.css">
</head>
<body>
  <header class="top"><span class="brand">fuseguard <small>cloud</small></span></header>
  <main id="main">
    <h1>Fleet</h1>
    <p class="note">{summary} · as of {now} · <a href="/fleet">Refresh</a> ·
    click an edge for its live page</p>
    <div class="card">
    <table>
      <thead><tr><th scope="col">Edge</th><th scope="col">State</th><th scope="col">Last seen</th>
      <th scope="col">EVSEs online</th><th scope="col">Plugs charging</th></tr></thead>
      <tbody>
{rows}
      </tbody>
    </table>
    </div>
  </main>
</body>
</html>
"""


def _time(value: datetime | None) -> str:
    return "never" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _row(edge: FleetEdge) -> str:
    state = "online" if edge.online else "offline"
    css = "ok" if edge.online else "lost"
    return (
        f'      <tr><th scope="row"><a href="/fleet/edges/{quote(edge.edge_device_id, safe="")}">'
        f"{escape(edge.edge_device_id)}</a></th>"
        f'<td><span class="conn {css}">{state}</span></td>'
        f"<td>{_time(edge.last_seen)}</td>"
        f"<td>{edge.evses_online} / {edge.evses}</td>"
        f"<td>{edge.plugs_charging} / {edge.plugs}</td></tr>"
    )


def render_fleet(fleet: list[FleetEdge], now: datetime) -> str:
    """The page for ``fleet`` (every dynamic string escaped)."""
    online = sum(1 for e in fleet if e.online)
    charging = sum(e.plugs_charging for e in fleet)
    summary = f"{len(fleet)} edges, {online} online, {charging} plugs charging"
    rows = "\n".join(_row(e) for e in fleet) or '      <tr><td colspan="5">no edges yet</td></tr>'
    return _PAGE.format(summary=summary, now=_time(now), rows=rows)


def _unauthorized() -> Response:
    return PlainTextResponse(
        "unauthorized\n",
        status_code=401,
        headers={"WWW-Authenticate": 'Basic realm="fuseguard cloud"'},
    )


_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src data:; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
}


def fleet_endpoints(
    store: CloudStore, clock: Clock, *, user: str, password: str
) -> tuple[Callable[[Request], Awaitable[Response]], Callable[[Request], Awaitable[Response]]]:
    """The handlers of ``GET /fleet`` and ``GET /fleet/app.css`` (both behind Basic auth)."""
    credentials = (user, password)

    async def fleet_page(request: Request) -> Response:
        if not basic_auth_ok(request, credentials):
            return _unauthorized()
        html = render_fleet(await load_fleet(store), clock.now())
        return HTMLResponse(html, headers=_HEADERS)

    async def fleet_css(request: Request) -> Response:
        if not basic_auth_ok(request, credentials):
            return _unauthorized()
        return Response(_CSS.read_text(encoding="utf-8"), media_type="text/css")

    return fleet_page, fleet_css
