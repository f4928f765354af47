"""Prometheus metrics: ``GET /metrics`` (text exposition format, optional Basic auth).

Gauges are read from :meth:`Controller.status` at scrape time (a custom collector, so a scrape
always sees one consistent cycle); counters and the cycle-duration histogram are derived from the
per-cycle status stream (:meth:`Controller.subscribe`) by :class:`StatusCounters`. Names follow
the Prometheus conventions: base units (amperes, watts, seconds), ``_total`` for counters; the
plug energy keeps watt-hours because that is what every charger reports (issue 15).

The ASGI app (:func:`create_metrics_app`) is served on its own port (``[api.metrics]``,
default 127.0.0.1:9100) and can be mounted into any other app at ``/metrics``.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from fuseguard.api.site_state import LimitSource, circuit_currents, limit_source, plug_failed
from fuseguard.control.flex import FlexManagement
from fuseguard.control.types import ControllerStatus
from fuseguard.model.circuits import CircuitTree
from fuseguard.model.phases import Phase, Phases
from fuseguard.model.status import PlugStatus

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from fuseguard.runtime import EdgeRuntime

log = structlog.get_logger(__name__)

METER = "meter"
#: Control-cycle duration buckets (s): a cycle normally takes well under 10 ms.
CYCLE_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_PHASES = tuple(p.value for p in Phase)


def _phase_samples(fam: GaugeMetricFamily, labels: list[str], values: Phases) -> None:
    for phase, value in zip(_PHASES, values, strict=True):
        fam.add_metric([*labels, phase], value)


class StatusCollector(Collector):
    """Gauges (and the device energy counter) read from the controller status at scrape time."""

    def __init__(
        self,
        status: Callable[[], ControllerStatus],
        tree: CircuitTree,
        flex: FlexManagement | None = None,
    ) -> None:
        self._status = status
        self._tree = tree
        self._flex = flex

    def collect(self) -> Iterator[Metric]:
        """One consistent picture of the last cycle."""
        st = self._status()
        yield from self._site(st)
        yield from self._plugs(st)

    def _site(self, st: ControllerStatus) -> Iterator[Metric]:
        current = GaugeMetricFamily(
            "fuseguard_phase_current_amperes",
            "Current through a circuit per grid phase (main: measured by the meter).",
            labels=["circuit", "phase"],
        )
        for circuit, value in circuit_currents(st, self._tree).items():
            _phase_samples(current, [circuit], value)
        limit = GaugeMetricFamily(
            "fuseguard_phase_limit_amperes",
            "Limit in force per circuit and grid phase (fuse, EMS limit or fallback).",
            labels=["circuit", "phase"],
        )
        for circuit, value in st.limits_a.items():
            _phase_samples(limit, [circuit], value)
        non_ev = GaugeMetricFamily(
            "fuseguard_non_ev_current_amperes",
            "Load that is not an EV charger, per circuit and grid phase.",
            labels=["circuit", "phase"],
        )
        for circuit, value in st.non_ev_load_a.items():
            _phase_samples(non_ev, [circuit], value)
        power = GaugeMetricFamily(
            "fuseguard_grid_power_watts", "Active power at the grid connection (meter)."
        )
        power.add_metric([], st.grid_power_w)
        online = GaugeMetricFamily(
            "fuseguard_device_online",
            "1 while the device answers (meter: last read ok; charger: read within timeout).",
            labels=["device"],
        )
        online.add_metric([METER], 1.0 if st.meter_ok else 0.0)
        for plug in st.plugs:
            online.add_metric([plug.id], 1.0 if plug.online else 0.0)
        fallback = GaugeMetricFamily(
            "fuseguard_fallback_active",
            "1 while a fallback is in force (meter: stale/gone; ems: watchdog expired).",
            labels=["kind"],
        )
        fallback.add_metric(["meter"], 1.0 if st.meter_fallback else 0.0)
        fallback.add_metric(["ems"], 1.0 if st.flex_fallback else 0.0)
        source = GaugeMetricFamily(
            "fuseguard_limit_source",
            "1 for the source of the main-circuit limit in force, 0 for the others.",
            labels=["source"],
        )
        now = limit_source(self._flex)
        for src in LimitSource:
            source.add_metric([src.value], 1.0 if src is now else 0.0)
        yield from (current, limit, non_ev, power, online, fallback, source)

    def _plugs(self, st: ControllerStatus) -> Iterator[Metric]:
        labels = ["plug", "evse"]
        current = GaugeMetricFamily(
            "fuseguard_plug_current_amperes",
            "Measured charging current per plug and charger phase.",
            labels=[*labels, "phase"],
        )
        setpoint = GaugeMetricFamily(
            "fuseguard_plug_setpoint_amperes", "Current the plug is allowed.", labels=labels
        )
        power = GaugeMetricFamily(
            "fuseguard_plug_power_watts", "Active charging power per plug.", labels=labels
        )
        energy = CounterMetricFamily(
            "fuseguard_plug_energy_watt_hours",
            "Energy of the charging session as the charger reports it (resets per session).",
            labels=labels,
        )
        status = GaugeMetricFamily(
            "fuseguard_plug_status",
            "1 for the plug's status (CLEMAP status vocabulary), 0 for the others.",
            labels=[*labels, "status"],
        )
        for plug in st.plugs:
            lv = [plug.id, plug.evse_uuid or ""]
            _phase_samples(current, lv, plug.current_a)
            setpoint.add_metric(lv, float(plug.setpoint_a))
            power.add_metric(lv, plug.power_w)
            if plug.energy_wh is not None:
                energy.add_metric(lv, plug.energy_wh)
            for value in PlugStatus:
                status.add_metric([*lv, value.value], 1.0 if value is plug.status else 0.0)
        yield from (current, setpoint, power, energy, status)


class StatusCounters:
    """Counters and the cycle histogram, fed by every cycle's status (``Controller.subscribe``).

    * ``fuseguard_device_read_errors_total{device}``: cycles in which the device's last read (or
      write, for a charger) had failed or the device was unreachable;
    * ``fuseguard_fallbacks_total{kind}``: entries into a fallback (meter stale/gone, EMS
      watchdog expired);
    * ``fuseguard_control_cycles_total`` and ``fuseguard_control_cycle_duration_seconds``.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.read_errors = Counter(
            "fuseguard_device_read_errors",
            "Control cycles in which the device's last read had failed or it was unreachable.",
            ["device"],
            registry=registry,
        )
        self.fallbacks = Counter(
            "fuseguard_fallbacks",
            "Entries into a fallback (meter: stale or gone; ems: watchdog expired).",
            ["kind"],
            registry=registry,
        )
        self.cycles = Counter(
            "fuseguard_control_cycles", "Control cycles observed.", registry=registry
        )
        self.cycle_duration = Histogram(
            "fuseguard_control_cycle_duration_seconds",
            "Duration of one control cycle (decide and hand setpoints to the writers).",
            buckets=CYCLE_BUCKETS_S,
            registry=registry,
        )
        self._was: dict[str, bool] = {"meter": False, "ems": False}
        self.read_errors.labels(METER)
        for kind in self._was:
            self.fallbacks.labels(kind)

    def observe(self, st: ControllerStatus) -> None:
        """Account for one cycle (a controller listener: never raises into the loop)."""
        try:
            self._observe(st)
        except Exception as exc:  # metrics must never break control
            log.exception("metrics_observe_failed", device="metrics", reason=repr(exc))

    def _observe(self, st: ControllerStatus) -> None:
        self.cycles.inc()
        if st.last_cycle_ms >= 0:
            self.cycle_duration.observe(st.last_cycle_ms / 1000.0)
        if not st.meter_ok:
            self.read_errors.labels(METER).inc()
        for plug in st.plugs:
            counter = self.read_errors.labels(plug.id)
            if plug_failed(plug):
                counter.inc()
        for kind, active in (("meter", st.meter_fallback), ("ems", st.flex_fallback)):
            if active and not self._was[kind]:
                self.fallbacks.labels(kind).inc()
            self._was[kind] = active


def build_registry(
    status: Callable[[], ControllerStatus],
    tree: CircuitTree,
    flex: FlexManagement | None = None,
) -> tuple[CollectorRegistry, StatusCounters]:
    """A registry with the status collector and the derived counters (feed ``observe``)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(StatusCollector(status, tree, flex))
    return registry, StatusCounters(registry)


def basic_auth_ok(request: Request, credentials: tuple[str, str]) -> bool:
    """True when the request carries Basic credentials equal to ``credentials`` (constant time)."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not encoded or len(encoded) > 1024:
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    user, sep, password = decoded.partition(":")
    user_ok = secrets.compare_digest(user.encode(), credentials[0].encode())
    password_ok = secrets.compare_digest(password.encode(), credentials[1].encode())
    return bool(sep) and user_ok and password_ok


def metrics_endpoint(
    registry: CollectorRegistry, *, user: str = "", password: str = ""
) -> Callable[[Request], Awaitable[Response]]:
    """The ``/metrics`` handler (Basic auth when ``password`` is set), to add to any app:
    ``app.add_route("/metrics", metrics_endpoint(registry), methods=["GET"])``."""
    credentials = (user, password) if password else None

    async def metrics(request: Request) -> Response:
        if credentials is not None and not basic_auth_ok(request, credentials):
            return PlainTextResponse(
                "unauthorized\n",
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="fuseguard metrics"'},
            )
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return metrics


def create_metrics_app(
    registry: CollectorRegistry, *, user: str = "", password: str = ""
) -> Starlette:
    """A small app serving only ``GET /metrics``."""
    endpoint = metrics_endpoint(registry, user=user, password=password)
    return Starlette(routes=[Route("/metrics", endpoint, methods=["GET"])])


async def start_metrics(rt: EdgeRuntime) -> None:
    """Edge service: ``/metrics`` on ``[api.metrics]`` (off unless enabled)."""
    mc = rt.config.api.metrics
    if not mc.enabled:
        return
    from fuseguard.api.services import per_peer_limits
    from fuseguard.runtime import display_url
    from fuseguard.serving import serve_app

    controller = rt.controller
    registry, counters = build_registry(controller.status, rt.config.site.circuit_tree(), rt.flex)
    controller.subscribe(counters.observe)
    app = create_metrics_app(registry, user=mc.user, password=mc.password.get_secret_value())
    limits = per_peer_limits(mc.max_connections_per_peer)
    handle = await serve_app(app, mc.host, mc.port, limits=limits)
    rt.stack.push_async_callback(handle.close)
    rt.urls["metrics"] = display_url(handle.url, mc.host) + "/metrics"
    rt.shared["metrics_registry"] = registry
    log.info("metrics_started", device=rt.urls["metrics"], reason="api.metrics enabled")


__all__ = [
    "CYCLE_BUCKETS_S",
    "StatusCollector",
    "StatusCounters",
    "basic_auth_ok",
    "build_registry",
    "create_metrics_app",
    "metrics_endpoint",
    "start_metrics",
]
