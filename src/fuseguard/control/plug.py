"""One plug's parts and the one place that fixes the order in which its policies run.

Owns: a plug's reading, its setpoint record (from the writer), its per-plug policies and its
reported status. Per cycle, in three steps the controller runs for every plug in turn:

1. :meth:`PlugControl.assess` runs the policies in a fixed order and turns their verdicts into a
   :class:`~fuseguard.control.types.PlugDemand` plus the draw to count as uncontrollable load;
2. after allocation, :meth:`PlugControl.verdict` applies what only the loop knows (offline,
   stuck contactor, idle car) to the allocator's answer, and notes a car this decision lowers
   below its draw;
3. :meth:`PlugControl.settle` applies break before make and the ramp: the setpoint to write.

Step 3 starts only when step 2 is done for every plug: whether any car comes down this cycle
decides whether another may go up. Before: the same steps were queries that changed state, so
their order was hidden.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from fuseguard.control.policies.demand import DemandCap, max_current_a
from fuseguard.control.policies.expected import (
    DRAWING_A,
    expected_draw_a,
    responding,
    start_offer_a,
)
from fuseguard.control.policies.facts import PlugFacts
from fuseguard.control.policies.handover import BreakBeforeMake
from fuseguard.control.policies.idle import IdleCar
from fuseguard.control.policies.phases import PhaseLearning
from fuseguard.control.policies.ramp import Ramp
from fuseguard.control.policies.session import ChargeSession
from fuseguard.control.policies.stuck import StuckContactor
from fuseguard.control.policies.uncontrollable import Uncontrollable
from fuseguard.control.reading import ChargerReading
from fuseguard.control.targets import Target
from fuseguard.control.types import ChargerSpec, ControllerConfig, PlugDemand
from fuseguard.control.writer import Setpoint
from fuseguard.model.phases import Phase, Phases
from fuseguard.model.status import ChargeMode, PlugStatus

_Verdicts = tuple[tuple[Phase, ...], int, bool, Phases | None]
"""A plug's policy verdicts of one cycle: phases, max, available, reserved (None: controllable)."""


@dataclass(slots=True)
class Assessment:
    """A plug's verdict before allocation: the facts it was judged on, its demand and its
    uncontrollable draw (read-only, built per plug per cycle, hence not frozen)."""

    facts: PlugFacts
    demand: PlugDemand
    reserved_a: Phases
    ended_session_s: float | None = None  # the start of a session that ended this cycle


class PlugControl:
    """One plug: reading, setpoint and policies (see module docstring).

    A plug whose facts (sample, written setpoint, fresh, settled, online) are those of the last
    cycle and whose policies run no timer gets the same verdicts again: :meth:`assess` reuses
    them instead of running the policies (``reuse``; False runs every policy every cycle, the
    reference the equivalence tests compare with). The session and break before make still run.
    """

    reuse: bool = True
    #: for the day jump's state walk (``scenario/statewalk.py``): ``_reach`` repeats what
    #: assess() read of the reading for verdict() in the same decision (a memo)
    __fuseguard_memo__ = ("_reach",)

    def __init__(
        self,
        spec: ChargerSpec,
        config: ControllerConfig,
        reading: ChargerReading,
        setpoint: Setpoint,
    ) -> None:
        cfg = config
        self.spec = spec
        self.reading = reading
        self.setpoint = setpoint
        self.stuck = StuckContactor(spec, margin_a=cfg.stuck_margin_a, after_s=cfg.stuck_after_s)
        self.idle = IdleCar(
            spec,
            grace_s=cfg.decrease_grace_s,
            after_s=cfg.idle_after_s,
            reprobe_s=cfg.idle_reprobe_s,
        )
        self.demand = DemandCap(
            spec,
            margin_a=cfg.underuse_margin_a,
            after_s=cfg.underuse_after_s,
            probe_s=cfg.underuse_probe_s,
        )
        self.phases = PhaseLearning(spec, detect_a=cfg.phase_detect_a)
        self.uncontrollable = Uncontrollable(spec)
        self.session = ChargeSession(spec)
        self.ramp = Ramp(
            spec,
            raise_after_s=cfg.raise_after_s,
            up_a_per_s=cfg.ramp_up_a_per_s,
            period_s=cfg.meter_period_s,
        )
        self.status = PlugStatus.INIT
        self._margin_a = cfg.excess_margin_a
        # how long before a possible fallback its reserve must be in place: the others' time to
        # follow a decrease, and a meter period each to see and to decide
        self._lead_s = cfg.decrease_grace_s + 2.0 * cfg.meter_period_s
        self._slow_write_s = cfg.meter_period_s  # a write this long or longer is slow
        self._key: tuple[object, ...] = ()  # the facts the verdicts below were judged on
        self._verdicts: _Verdicts = ((), 0, False, None)
        self._steady = False  # no policy timer ran after that judgement
        self._demand: PlugDemand | None = None  # the last demand and what it was built from
        self._demand_fields: tuple[object, ...] = ()
        # the facts assess() last judged, and whether the charger was online and failing then
        # (verdict() on the same facts in the same decision reads them instead of asking again)
        self._reach: tuple[PlugFacts | None, bool, bool] = (None, False, False)
        #: assess(): a write under way, counted at this much (None: none), and on which facts
        self._held: tuple[PlugFacts | None, int | None] = (None, None)
        self._unreached = False  # the last verdict: unreachable (its 0 A never written)

    def facts(self, now: float) -> PlugFacts:
        """What this cycle knows about the plug (a query)."""
        r = self.reading
        sp = self.setpoint
        age_s = r.age_s(now)
        delay_s = self.spec.limit_delay_s
        changes = sp.changes
        expected = None
        if age_s > 0.0:
            expected = expected_draw_a(
                sample=r.sample,
                grid_a=r.grid_a,
                measured_at=now - age_s,
                now=now,
                setpoint=sp,
                delay_s=delay_s,
                margin_a=self._margin_a,
                charging_since=r.charging_since,
                phases=self._assumed_phases(),
                min_a=self.spec.min_a,
            )
        unconfirmed = None
        since = r.charging_since
        started = since is not None and now - age_s < since and r.grid_a.max < DRAWING_A
        if expected is not None and not started:
            # a raise not measured yet: the car may take it or not; the meter tells
            extra = (expected - r.grid_a).maximum(0.0)
            unconfirmed = extra if extra.max > 0.0 else None
        starting = None
        late = self.spec.reports_late
        if late and changes and r.sample is not None and r.sample.cp_state.vehicle_connected:
            starting = start_offer_a(
                sample=r.sample,
                measured_at=now - age_s,
                now=now,
                setpoint=sp,
                delay_s=delay_s,
                counted_a=expected if expected is not None else r.grid_a,
                phases=self._assumed_phases(),
                min_a=self.spec.min_a,
                own_a=float(self.spec.max_a),
            )
        return PlugFacts(  # positional (one per plug per cycle): the fields in their order
            now,  # now
            r.sample,  # sample
            r.fresh(now),  # fresh
            r.grid_a,  # grid_a
            sp.written_a,  # written_a
            sp.changed_at,  # changed_at
            age_s,  # age_s
            delay_s,  # delay_s
            changes[-2][1] if len(changes) >= 2 else None,  # previous_a
            expected,  # expected_a
            starting,  # starting_a
            unconfirmed,  # unconfirmed_a
            responding(now=now, changed_at=sp.changed_at, delay_s=delay_s),  # responding
        )

    def _assumed_phases(self) -> tuple[Phase, ...]:
        """The grid phases the car is known (learned) or assumed (all wired) to load."""
        learned = self.phases.learned
        if learned is not None:
            return learned
        spec = self.spec
        return spec.rotation.grid_phases(spec.wired_phases)

    def assess(
        self,
        f: PlugFacts,
        handover: BreakBeforeMake,
        target: Target | None = None,
        *,
        mode: ChargeMode | None = None,
        priority: int | None = None,
        departure_s: float | None = None,
        need_wh: float | None = None,
    ) -> Assessment:
        """Run the policies before allocation on this cycle's facts, in this order: stuck
        contactor, the charging session, phase learning, the demand cap and the uncontrollable
        charger, then (for a controllable plug) break before make and the idle car. An offline
        plug reserves its last setpoint (at least its charger-side fallback), an uncontrollable
        one its maximum, a stuck one its real draw. ``target`` is the plug's Direct EVSE Control
        cap;
        ``mode``/``priority`` override the spec's for this cycle (runtime settings);
        ``departure_s``/``need_wh``: an announced departure (seconds from now, the session's
        energy need), counted against the session's energy for the allocator's queue."""
        spec = self.spec
        now = f.now
        reachable = self.reading.online(now)
        # (may_fall_back is False without an error: most plugs, every decision)
        falling = reachable and self.reading.error is not None and self.may_fall_back(now)
        self._reach = (f, reachable, falling)  # for verdict() on the same facts
        online = reachable and not falling
        key = (f.sample, f.fresh, f.settled, f.written_a, online)
        if self.reuse and self._steady and key == self._key:
            # the same facts and no policy timer running: every verdict would be the same
            ended = self.session.update(f)
            phases, max_a, available, reserved = self._verdicts
        else:
            ended, (phases, max_a, available, reserved) = self._judge(f, online)
            self._key = key
            self._verdicts = (phases, max_a, available, reserved)
            self._steady = self.stuck.steady and self.demand.steady and self.idle.steady
        if reserved is None:  # a controllable plug: break before make judges it every cycle
            reserved, available = self._hold(f, handover.update(f), phases, available)
        session = self.session
        if departure_s is None or need_wh is None or not session.active:
            departure_s = need_wh = None
        else:
            need_wh = max(0.0, need_wh - session.delivered_wh)
        demand = self._demand
        fields = (
            available,
            phases,
            max_a,
            spec.mode if mode is None else mode,
            spec.priority if priority is None else priority,
            target,
            session.share_a(now),
            need_wh,
            departure_s,
            self.phases.known,
            self.demand.car_limit_a,
            self.demand.seen_max_a,
        )
        if demand is None or fields != self._demand_fields:  # else: the last demand again
            demand = PlugDemand(  # positional, in the fields' order (per charging car per cycle)
                spec,  # spec
                available,  # available
                phases,  # phases
                max_a,  # max_a
                fields[3],  # mode
                fields[4],  # priority
                target.current_a if target is not None else None,  # target_a
                target.valid_until if target is not None else None,  # target_until
                fields[6],  # share_a
                need_wh,  # need_wh
                departure_s,  # departure_s
                fields[9],  # phases_known
                None,  # plan_rank (the planner's, set after assess)
                fields[10],  # car_limit_a
                fields[11],  # seen_max_a
            )
            self._demand = demand
            self._demand_fields = fields
        return Assessment(facts=f, demand=demand, reserved_a=reserved, ended_session_s=ended)

    def _judge(self, f: PlugFacts, online: bool) -> tuple[float | None, _Verdicts]:
        """The per-plug policies before allocation, in their order (see :meth:`assess`): the
        start of a session that ended now, and the verdicts (``reserved`` None: a controllable
        plug, whose draw break before make judges in :meth:`assess`; it keeps no per-plug state,
        so running it after the idle car changes nothing)."""
        spec = self.spec
        sample = f.sample
        stuck = self.stuck.update(f)
        ended = self.session.update(f)
        phases = self.phases.update(sample)
        max_a = max_current_a(spec, sample, self.demand.update(f))
        uncontrollable = self.uncontrollable.update(f) is not None
        reserved: Phases | None = None
        if not online:
            # reserve what it may draw unseen on its wired phases (see :meth:`offline_a`)
            reserved = self.offline_draw(f.written_a)[1]
            available = False
        elif uncontrollable:
            top_a = max_current_a(spec, sample, None)
            reserved = self.uncontrollable.reserve(f, phases, top_a)
            available = False
        elif stuck:
            reserved = f.grid_a
            available = False
        else:
            ready = bool(
                sample is not None
                and sample.cp_state.vehicle_connected
                and sample.authorized
                and not sample.errors
            )
            if sample is not None and not sample.cp_state.vehicle_connected:
                self.idle.update(f)  # the car left: its idle pause and back-off go with it
            available = spec.child_edge or (ready and not self.idle.update(f))
            if self.idle.probing:  # a car found idle before: probe again with its minimum
                max_a = spec.min_a
        return ended, (phases, max_a, available, reserved)

    def may_fall_back(self, now: float) -> bool:
        """Not offline yet, but failing (its last read or write failed, and it was not read
        within the fresh window) for so long since the last write that reached it that its
        watchdog may fall back within ``_lead_s``: treated as unreachable (a watchdog shorter
        than the offline timeout would fire first). A charger still read every period is not:
        its reads show a fallback (a charger that refuses writes but answers reads)."""
        spec = self.spec
        sp = self.setpoint
        r = self.reading
        return (
            r.error is not None
            and spec.fallback_a > (sp.written_a or 0)
            and now - sp.written_at >= spec.fallback_after_s - self._lead_s
            and not r.read_recently(now)
        )

    def offline_a(self, written_a: int | None) -> int:
        """What an unreachable plug is assumed to draw, per phase: its last written setpoint
        (its max when none was written), but at least its charger-side fallback
        (``spec.fallback_a``): the charger falls back to it by itself once it has missed
        fuseguard's writes for its watchdog's timeout, whatever the setpoint was (a pause
        included), and a car may be plugged in meanwhile. Reserved while a car was last seen
        connected or not: the car's state is unknown while the charger is."""
        spec = self.spec
        amps = written_a if written_a is not None else spec.max_a
        return max(amps, spec.fallback_a)

    def offline_draw(self, written_a: int | None) -> tuple[str, Phases]:
        """Its circuit and :meth:`offline_a` on its wired phases: the most it is assumed to
        draw while it is not measured (reserved while it is unreachable)."""
        spec = self.spec
        amps = float(self.offline_a(written_a))
        return spec.circuit, Phases.on(spec.rotation.grid_phases(spec.wired_phases), amps)

    def reserved_unmeasured(self, now: float) -> bool:
        """While it is not measured, a reserve counts its draw (:meth:`assess`): it is offline,
        failing near its watchdog timeout, stuck or uncontrollable. Else (reachable and
        controllable, its reads failing for less than ``charger_timeout_s`` or late) only a
        fresh meter above it sees what it draws."""
        reading = self.reading
        if not reading.online(now) or (reading.error is not None and self.may_fall_back(now)):
            return True
        return self.stuck.stuck or self.uncontrollable.reason is not None

    def _hold(
        self, f: PlugFacts, reserved: Phases, phases: tuple[Phase, ...], available: bool
    ) -> tuple[Phases, bool]:
        """A controllable plug with a write under way (:meth:`in_flight_a`): held (not
        available to the allocator), its reserve at least that much on its phases."""
        held = self.in_flight_a(f.now) if available else None
        # writes given up after their timeout (round 18, the soak's seed 69): counted at the
        # most it may draw, but not held: a charger whose every write times out still takes a
        # decrease (it lands late); held, it was never lowered again
        given_up = held is not None and self.setpoint.timed_out
        self._held = (f, None if given_up else held)
        if held is None:
            return reserved, available
        return reserved.maximum(Phases.on(phases, float(held))), given_up

    def holding(self, f: PlugFacts) -> bool:
        """:meth:`assess` on ``f`` held the plug for a write under way (:meth:`_hold`)."""
        held_on, held = self._held
        return held is not None and held_on is f

    def in_flight_a(self, now: float) -> int | None:
        """While a slow write to its charger is under way, the most it may draw until the
        write and the one decided after it have landed: the highest of the value in force, the
        one being written and the one decided (None: no slow write under way). The plug is then
        held at its decided setpoint and counted at that much, so the others make room at once
        (docs/safety.md, "A write under way").

        Slow: under way for a meter period or more, or to a charger whose last write took that
        long (seconds: a slow gateway, a busy charge point, a cellular link). A write that lands
        within the period lands as soon as any write that would make room for it: counted at
        the value decided, as every landed decrease still within its delay is. Counting it at
        the old value made every other charger come down again for writes a few hundred ms
        long (300 chargers answering one after another: 2-4 A instead of 1 A).

        After a failed write (round 17) the plug is held the same way, whatever the write
        took, until a write lands: the decided value is not in force (the soak's seed 74)."""
        sp = self.setpoint
        # a decided value whose write failed is not in force (round 17), and a failed (timed
        # out) write may have landed all the same (round 18): held alike until a write lands
        failed_a = sp.failed_a
        top_a = max(sp.written_a or 0, sp.setpoint_a, failed_a or 0)
        failed = failed_a is not None and (sp.setpoint_a != sp.written_a or top_a > sp.setpoint_a)
        if sp.in_flight_a is None:
            return top_a if failed else None
        if not failed and sp.write_s(now) < self._slow_write_s:
            return None
        return max(sp.in_flight_a, top_a)

    def verdict(
        self, f: PlugFacts, allocated_a: int, reason: str, handover: BreakBeforeMake
    ) -> tuple[int, str]:
        """The allocator's answer for this plug, with the overrides of the policies (``f``:
        the facts of this cycle, as :meth:`assess` judged them)."""
        judged, reachable, falling = self._reach
        if judged is not f:  # not the facts assess() judged: ask again
            reachable = self.reading.online(f.now)
            falling = reachable and self.may_fall_back(f.now)
        unreached, self._unreached = self._unreached, not reachable
        if not reachable:
            assumed = self.offline_a(f.written_a)
            error = self.reading.error or "no answer"
            return 0, f"offline ({error}): assuming it draws {assumed} A"
        if falling:  # held where it is until it answers or is offline
            assumed = self.offline_a(f.written_a)
            return f.written_a or 0, (
                f"failing ({self.reading.error}) near its watchdog timeout: assuming it "
                f"draws {assumed} A"
            )
        if self.uncontrollable.reason is not None:
            return f.written_a or 0, self.uncontrollable.verdict()
        if self.stuck.stuck:
            return 0, "stuck contactor: draws at setpoint 0, counted at its real draw"
        if self.holding(f):
            value = self._back_a(f) if unreached else self.setpoint.setpoint_a
            return value, f"a write under way: counted at {self._held[1]} A"
        idle = self.idle.reason(f.now)
        if idle is not None:
            return allocated_a, idle
        handover.lowered(f, allocated_a)
        return allocated_a, reason

    def _back_a(self, f: PlugFacts) -> int:
        """Held when it answers again after a verdict of unreachable (its 0 A then was never
        a decision for the car, round 18): the limit in force is unknown (the one written
        before, its fallback, one that failed), so at most what it was written and measurably
        draws now (no raise), 0 A below the minimum (a pause, as before)."""
        drawn_a = math.floor(f.grid_a.max + 1e-6) if f.fresh else 0
        value = min(self.setpoint.written_a or 0, drawn_a)
        return value if value >= self.spec.min_a else 0

    def settle(
        self,
        now: float,
        setpoint_a: int,
        reason: str,
        handover: BreakBeforeMake,
        facts: PlugFacts | None = None,
    ) -> tuple[int, str]:
        """Break before make, then the ramp: the setpoint to write now, and its reason.

        A plug :meth:`assess` held on ``facts`` for a write under way keeps its decided
        setpoint: that value passed break before make and the ramp when it was decided. Run
        again against the value still in force, they took an in-flight raise back (the ramp's
        hold timer starts anew, break before make waits for another car coming down), and
        when the raise landed the old value was written again: a write per flip on a charger
        that takes seconds per write."""
        if facts is not None and self.holding(facts):
            return setpoint_a, reason
        sp = self.setpoint
        reading = self.reading
        drawing_a = (
            reading.grid_a.max if sp.written_a is None and reading.fresh(now) else 0.0
        )  # never written (start-up): the car is at what it draws
        held = handover.held(setpoint_a, sp.written_a, drawing_a)
        if held is not None:
            setpoint_a = held
            reason += "; increase waits for other cars to come down"
        value = self.ramp.update(
            setpoint_a, written_a=sp.written_a, changed_at=sp.changed_at, now=now
        )
        return value, reason


def unmeasured_draws(
    plugs: Mapping[str, PlugControl], facts: Mapping[str, PlugFacts]
) -> tuple[list[tuple[str, Phases]], list[tuple[str, Phases]]]:
    """The plugs not measured this cycle, each one's circuit and the most it may draw
    (:meth:`PlugControl.offline_draw`): all of them, and those no reserve counts
    (:meth:`PlugControl.reserved_unmeasured`), whose draw only a fresh meter sees."""
    every: list[tuple[str, Phases]] = []
    unreserved: list[tuple[str, Phases]] = []
    for pid, f in facts.items():
        if f.fresh and f.sample is not None:
            continue
        plug = plugs[pid]
        draw = plug.offline_draw(f.written_a)
        every.append(draw)
        if not plug.reserved_unmeasured(f.now):
            unreserved.append(draw)
    return every, unreserved


__all__ = ["Assessment", "PlugControl", "unmeasured_draws"]
