"""The web dashboard (issue 14): live site page, login, settings, events; served by the edge.

Jinja2 templates rendered on the server, htmx for the forms, uPlot for the live chart; both
libraries are vendored under ``static/vendor`` (no CDN, no build step). See ``docs/web.md``.
"""

from fuseguard.api.web.app import create_web_app
from fuseguard.api.web.service import build_deps, start_history, start_web

__all__ = ["build_deps", "create_web_app", "start_history", "start_web"]
