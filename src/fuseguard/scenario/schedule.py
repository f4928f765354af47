"""The scenario's ground truth over time, computed before the run.

Which limits are in force when (fuse, flex limit, flex fallback after keep-alive loss, Direct EVSE
targets), the non-EV load (base profile, steps, PV) and the times at which the runner acts. The
runner drives the devices from this schedule and the metrics and the offline optimum judge against
it, so what is measured never depends on the implementation under test.

Keep-alive: while running, the EMS calls keep-alive at every multiple of ``keepalive_period_s``
(k >= 1). Events at the same instant act before the keep-alive. A flex update counts as contact.
The fallback is in force from ``last contact + flex_timeout_s`` while activation is on and the
keep-alive is stopped; ``keepalive = "start"`` re-sends the last flex settings and ends it.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

from fuseguard.model.circuits import MAIN
from fuseguard.model.phases import Phases
from fuseguard.scenario.config import Scenario
from fuseguard.sim.site import PiecewiseLinear


@dataclass(frozen=True, slots=True)
class FlexState:
    """The EMS's flex-management settings at some time."""

    activation: bool = False
    current_limit_a: float | None = None
    fallback_a: float | None = None


@dataclass(frozen=True, slots=True)
class TargetWindow:
    """A Direct EVSE current target on one charger."""

    charger: str
    start_s: float
    end_s: float
    current_a: float


@dataclass(slots=True)
class LimitEvent:
    """A moment at which the main limit in force changes."""

    t_s: float
    limit_a: float
    reason: str


@dataclass
class Schedule:
    """Limits in force and non-EV load over the scenario."""

    scenario: Scenario
    limit_events: list[LimitEvent] = field(default_factory=list)
    targets: list[TargetWindow] = field(default_factory=list)
    steps: list[tuple[float, float, Phases]] = field(default_factory=list)
    #: the circuit of each of ``steps``
    step_circuits: list[str] = field(default_factory=list)
    fallback_starts: list[float] = field(default_factory=list)
    flex_history: list[tuple[float, FlexState]] = field(default_factory=list)
    _limit_times: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        sc = self.scenario
        self._profile = PiecewiseLinear(sc.base_load.profile())
        # the non-EV load per circuit: main's base_load and every [[circuit_loads]] profile
        self._profiles = {MAIN: self._profile} | {
            load.circuit: PiecewiseLinear(load.profile()) for load in sc.circuit_loads
        }
        self._build_limits()
        for ev in sc.events:
            if ev.target is not None:
                self.targets.append(
                    TargetWindow(
                        ev.target.charger,
                        ev.at_s,
                        ev.at_s + ev.target.duration_s,
                        float(ev.target.current_a),
                    )
                )
            if ev.base_step is not None:
                self.steps.append(
                    (ev.at_s, ev.at_s + ev.base_step.duration_s, Phases.of(ev.base_step.delta_a))
                )
                self.step_circuits.append(ev.base_step.circuit)
        self._limit_times = [e.t_s for e in self.limit_events]
        self._main_only = len(self._profiles) == 1 and all(c == MAIN for c in self.step_circuits)

    # --- main limit ----------------------------------------------------------------------

    def _in_force(self, st: FlexState, fallback: bool) -> float:
        fuse = self.scenario.site.fuse_a
        if not st.activation:
            return fuse
        value = st.fallback_a if fallback else st.current_limit_a
        return fuse if value is None else min(fuse, value)

    def _build_limits(self) -> None:
        sc = self.scenario
        period = sc.site.keepalive_period_s
        timeout = sc.site.flex_timeout_s
        st = FlexState()
        running = True
        last_contact = 0.0
        in_fallback = False
        events = sorted(
            (ev for ev in sc.events if ev.flex is not None or ev.keepalive is not None),
            key=lambda e: e.at_s,
        )
        out: list[LimitEvent] = [LimitEvent(0.0, sc.site.fuse_a, "fuse")]

        def emit(t: float, reason: str) -> None:
            value = self._in_force(st, in_fallback)
            if value != out[-1].limit_a or reason.startswith("fallback"):
                out.append(LimitEvent(t, value, reason))

        def fallback_check(until: float) -> None:
            nonlocal in_fallback
            if st.activation and not running and not in_fallback:
                t_fb = last_contact + timeout
                if t_fb < until:
                    in_fallback = True
                    self.fallback_starts.append(t_fb)
                    emit(t_fb, "fallback (keep-alive lost)")

        for ev in events:
            fallback_check(ev.at_s)
            t = ev.at_s
            if ev.flex is not None:
                f = ev.flex
                st = FlexState(
                    activation=st.activation if f.activation is None else f.activation,
                    current_limit_a=(
                        st.current_limit_a if f.current_limit_a is None else f.current_limit_a
                    ),
                    fallback_a=st.fallback_a if f.fallback_a is None else f.fallback_a,
                )
                self.flex_history.append((t, st))
                last_contact = t
                in_fallback = False
                emit(t, "flex update")
            elif ev.keepalive == "stop":
                if running:
                    k = math.ceil(t / period) - 1
                    last_contact = max(last_contact, k * period if k >= 1 else 0.0)
                running = False
            elif ev.keepalive == "start":
                running = True
                last_contact = t
                if in_fallback:
                    in_fallback = False
                    emit(t, "keep-alive resumed")
        fallback_check(math.inf)
        self.limit_events = out

    def main_limit_a(self, t_s: float) -> float:
        """Per-phase limit in force on the main connection at ``t_s``."""
        i = bisect.bisect_right(self._limit_times, t_s) - 1
        return self.limit_events[max(i, 0)].limit_a

    def limit_a(self, circuit: str, t_s: float) -> Phases:
        """Limit in force on ``circuit``, per phase."""
        if circuit == MAIN:
            return Phases.uniform(self.main_limit_a(t_s))
        return self.scenario.circuit_tree[circuit].fuse

    def min_main_limit_a(self, t0_s: float, t1_s: float) -> float:
        """Lowest main limit in force during [t0, t1)."""
        lo = self.main_limit_a(t0_s)
        i = bisect.bisect_right(self._limit_times, t0_s)
        while i < len(self._limit_times) and self._limit_times[i] < t1_s:
            lo = min(lo, self.limit_events[i].limit_a)
            i += 1
        return lo

    # --- targets ---------------------------------------------------------------------------

    def target_cap_a(self, charger: str, t_s: float) -> float | None:
        """The Direct EVSE target on ``charger`` at ``t_s`` (the latest one wins), or None."""
        cap: float | None = None
        for w in self.targets:
            if w.charger == charger and w.start_s <= t_s < w.end_s:
                cap = w.current_a
        return cap

    # --- non-EV load -----------------------------------------------------------------------

    def step_a(self, t_s: float, circuit: str | None = None) -> Phases:
        """Extra base load from ``base_step`` events at ``t_s`` (on ``circuit``, or all)."""
        total = Phases()
        for (start, end, delta), on in zip(self.steps, self.step_circuits, strict=True):
            if start <= t_s < end and (circuit is None or on == circuit):
                total = total + delta
        return total

    def base_a(self, t_s: float, circuit: str = MAIN) -> Phases:
        """Non-EV consumption per phase (without PV) through ``circuit``: the load on it and on
        every circuit below (main: the whole site), each as the site model has it."""
        tree = self.scenario.circuit_tree
        if circuit == MAIN and self._main_only:
            return (self._profile(t_s) + self.step_a(t_s)).maximum(0.0)
        total = Phases()
        for c in tree:
            if tree.in_subtree(c.id, circuit):
                own = self.step_a(t_s, c.id)
                profile = self._profiles.get(c.id)
                if profile is not None:
                    own = own + profile(t_s)
                total = total + own.maximum(0.0)
        return total

    def load_times(self) -> list[float]:
        """The breakpoints of every non-EV load profile (main's and every circuit's)."""
        sc = self.scenario
        return [t for load in (sc.base_load, *sc.circuit_loads) for t, _ in load.points]

    def pv_w(self, t_s: float) -> float:
        """PV production (W, >= 0)."""
        pv = self.scenario.pv
        if pv is None:
            return 0.0
        day_s = t_s % 86400.0
        if not pv.sunrise_s < day_s < pv.sunset_s:
            return 0.0
        x = (day_s - pv.sunrise_s) / (pv.sunset_s - pv.sunrise_s)
        return pv.peak_w * math.sin(math.pi * x) * min(max(pv.cloud_factor(t_s), 0.0), 1.0)

    def non_ev_a(self, t_s: float) -> Phases:
        """Signed non-EV grid current on main: base load minus PV (balanced)."""
        pv_a = self.pv_w(t_s) / (3.0 * self.scenario.site.voltage_v)
        return self.base_a(t_s) - pv_a

    def peak_non_ev_a(self) -> Phases:
        """Highest non-EV current per phase over the scenario (sampled every 60 s + breakpoints)."""
        sc = self.scenario
        times = {float(t) for t in self.load_times() if 0 <= t <= sc.site.duration_s}
        for start, end, _ in self.steps:
            times.update({start, max(start, end - 1e-6)})
        t = 0.0
        while t <= sc.site.duration_s:
            times.add(t)
            t += 60.0
        peak = Phases(-math.inf, -math.inf, -math.inf)
        for t in times:
            peak = peak.maximum(self.non_ev_a(t))
        return peak

    def meter_fallback_a(self, t_s: float | None = None) -> float:
        """EV budget per phase while the meter is unusable: the flex ``fallback_a`` in force at
        ``t_s``, else ``site.meter_fallback_a``, else what is safe without any measurement
        (fuse minus the scenario's peak non-EV load)."""
        if t_s is not None:
            value: float | None = None
            for t, st in self.flex_history:
                if t <= t_s and st.fallback_a is not None:
                    value = st.fallback_a
            if value is not None:
                return value
        explicit = self.scenario.site.meter_fallback_a
        if explicit is not None:
            return explicit
        return max(0.0, self.scenario.site.fuse_a - self.peak_non_ev_a().max)
