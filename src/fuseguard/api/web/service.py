"""Edge service: the web dashboard on ``[api.web]`` (HTTPS with the edge's certificate)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog

from fuseguard.api.web.app import Endpoint, create_web_app
from fuseguard.api.web.auth import LoginThrottle, SessionStore
from fuseguard.api.web.core import WebDeps, live_view
from fuseguard.api.web.events import EventLog, StatusWatcher
from fuseguard.api.web.live import StatusHub
from fuseguard.api.web.recorder import HistoryRecorder
from fuseguard.control.plug_settings import RUNTIME_KEY, PlugSettings
from fuseguard.store.history import HistoryRepository
from fuseguard.store.web import WebEventRepository, WebUserRepository

if TYPE_CHECKING:
    from fuseguard.api.evse import EvseBackend
    from fuseguard.runtime import EdgeRuntime

log = structlog.get_logger(__name__)

#: ``rt.shared`` key of the running :class:`HistoryRecorder`.
HISTORY_KEY = "history_recorder"


def _evse_backend(rt: EdgeRuntime) -> EvseBackend:
    """The EVSE API's backend when that API runs, else the same kind of backend of our own."""
    from fuseguard.api.edge_evse import EdgeEvseBackend, evse_infos_from_config
    from fuseguard.api.live import status_records
    from fuseguard.api.services import EVSE_BACKEND

    shared = rt.shared.get(EVSE_BACKEND)
    if shared is not None:
        backend: EvseBackend = shared
        return backend
    controller = rt.controller
    return EdgeEvseBackend(
        rt.config.site.edge_id,
        evse_infos_from_config(rt.config),
        rt.targets,
        lambda uuid: status_records(controller.status(), uuid),
    )


def _metrics_endpoint(rt: EdgeRuntime) -> Endpoint:
    """``/metrics`` on the dashboard: the metrics service's registry, or one of our own."""
    from fuseguard.api.metrics import build_registry, metrics_endpoint

    mc = rt.config.api.metrics
    registry = rt.shared.get("metrics_registry")
    if registry is None:
        registry, counters = build_registry(
            rt.controller.status, rt.config.site.circuit_tree(), rt.flex
        )
        rt.controller.subscribe(counters.observe)
    return metrics_endpoint(registry, user=mc.user, password=mc.password.get_secret_value())


def build_deps(rt: EdgeRuntime) -> WebDeps:
    """The dashboard's view of a running edge."""
    from fuseguard.api.edge_evse import evse_infos_from_config

    wc = rt.config.api.web
    plug_settings = rt.shared.get(RUNTIME_KEY)
    events = EventLog(WebEventRepository(rt.engine), rt.clock)
    recorder = rt.shared.get(HISTORY_KEY)
    return WebDeps(
        status=rt.controller.status,
        tree=rt.config.site.circuit_tree(),
        flex=rt.flex,
        targets=rt.targets,
        evse_backend=_evse_backend(rt),
        evses=evse_infos_from_config(rt.config),
        edge_id=rt.config.site.edge_id,
        max_duration_s=rt.config.api.evse.max_duration_s,
        plug_settings=plug_settings if isinstance(plug_settings, PlugSettings) else None,
        users=WebUserRepository(rt.engine, rt.clock),
        events=events,
        clock=rt.clock,
        sessions=SessionStore(rt.clock, wc.session_idle_s),
        throttle=LoginThrottle(rt.clock, wc.login_max_failures, wc.login_window_s),
        site_name=rt.config.site.name or "fuseguard",
        history=recorder.repo if isinstance(recorder, HistoryRecorder) else None,
        history_raw_hours=rt.config.storage.history_raw_hours,
    )


def live_view_source(rt: EdgeRuntime) -> Callable[[], dict[str, Any]]:
    """The live page's data of this edge now (for the cloud relay; no dashboard needed)."""
    tree = rt.config.site.circuit_tree()

    def view() -> dict[str, Any]:
        settings = rt.shared.get(RUNTIME_KEY)
        plug_settings = settings if isinstance(settings, PlugSettings) else None
        return live_view(rt.controller.status(), tree, rt.flex, plug_settings, rt.targets, rt.clock)

    return view


async def start_history(rt: EdgeRuntime) -> None:
    """Record history, compliance and sessions for the dashboard (with ``[api.web] enabled``)."""
    if not rt.config.api.web.enabled:
        return
    sc = rt.config.storage
    recorder = HistoryRecorder(
        HistoryRepository(rt.engine),
        rt.config.site.circuit_tree(),
        rt.clock,
        raw_hours=sc.history_raw_hours,
        minute_days=sc.history_minute_days,
    )
    resumed = await recorder.resume()
    rt.controller.subscribe(recorder.on_status)
    recorder.start()
    rt.stack.push_async_callback(recorder.close)
    rt.shared[HISTORY_KEY] = recorder
    log.info("history_started", device="store", reason="api.web enabled", resumed=resumed)


async def start_web(rt: EdgeRuntime) -> None:
    """Serve the dashboard (off unless ``[api.web] enabled``)."""
    wc = rt.config.api.web
    if not wc.enabled:
        return
    from fuseguard.api.services import per_peer_limits, tls_files
    from fuseguard.runtime import display_url
    from fuseguard.serving import serve_app

    deps = build_deps(rt)
    hub = StatusHub(deps.view, rt.controller.status)
    rt.controller.subscribe(hub.on_status)
    rt.controller.subscribe(StatusWatcher(deps.events).on_status)
    deps.events.start()
    rt.stack.push_async_callback(deps.events.close)
    metrics_needs_session = not rt.config.api.metrics.password.get_secret_value()
    app = create_web_app(
        deps, hub, metrics=_metrics_endpoint(rt), metrics_needs_session=metrics_needs_session
    )
    certfile = keyfile = None
    if wc.tls:
        certfile, keyfile = tls_files(rt, wc.cert_file, wc.key_file)
    limits = per_peer_limits(wc.max_connections_per_peer)
    handle = await serve_app(app, wc.host, wc.port, certfile, keyfile, limits=limits)
    rt.stack.push_async_callback(handle.close)
    rt.stack.callback(hub.close)  # runs first: ends the SSE streams, so the server can stop
    rt.urls["web"] = display_url(handle.url, wc.host)
    log.info("web_started", device=rt.urls["web"], reason="api.web enabled")
    if not await deps.users.list():
        log.warning(
            "web_no_users",
            device=rt.urls["web"],
            reason="nobody can log in: add one with `fuseguard user add NAME --role admin`",
        )


__all__ = ["HISTORY_KEY", "build_deps", "live_view_source", "start_history", "start_web"]
