"""Hysteresis state between allocations, without a clock: the caller passes ``now_s``.

The control loop calls :meth:`AllocationSession.step` on every meter sample. The session fills each
plug's ``setpoint_a``, ``running_s``, ``paused_s`` and ``pv_timer_s`` from what it remembers, runs
the pure :func:`~fuseguard.allocation.engine.allocate` and updates its timers from the answer.
Safety never waits for a timer: the allocator pauses a plug inside its minimum run time when the
limits demand it; the timers only decide who runs when there is a choice. The session also runs
the phase probe of a waiting car of unknown phases (:mod:`.probe`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from fuseguard.allocation import probe as ph
from fuseguard.allocation.engine import allocate
from fuseguard.allocation.finite import non_finite_inputs
from fuseguard.allocation.types import Allocation, Circuit, Plug, Snapshot
from fuseguard.model.status import ChargeMode


@dataclass(slots=True)
class _Probe:
    """The phase probe in progress: the probed plug, since when, whom it paused."""

    plug: str
    since_s: float
    paused: set[str]


@dataclass(slots=True)
class PlugTimers:
    """What the session remembers about one plug (monotonic seconds of the caller's clock)."""

    setpoint_a: int = 0
    running_since_s: float | None = None
    paused_since_s: float | None = None
    pv_since_s: float | None = None


def with_timers(
    p: Plug, setpoint_a: int, running_s: float | None, paused_s: float | None, pv_timer_s: float
) -> Plug:
    """``p`` with these hysteresis fields: ``dataclasses.replace`` built directly (half the
    cost; ``tests/allocation/test_session_memo.py`` checks that every field is carried over)."""
    return Plug(
        p.id,
        p.circuit,
        p.phases,
        p.max_a,
        p.min_a,
        p.priority,
        p.mode,
        p.target_a,
        p.target_until,
        p.available,
        setpoint_a,
        running_s,
        paused_s,
        pv_timer_s,
        p.share_a,
        p.need_wh,
        p.departure_s,
        p.phases_known,
        p.plan_rank,
        p.car_limit_a,
        p.seen_max_a,
    )


def _same(a: Snapshot, b: Snapshot) -> bool:
    """``a == b``, the plugs compared first: they differ on most steps while a car charges
    (its energy share and run time move), and an unchanged plug is the same object (an identity
    check), whereas every circuit is built anew each step. Equal exactly when ``a == b`` is
    (a dataclass compares its fields' tuples, element by element, identity first: so does
    this, the float too, whose NaN is equal to itself there)."""
    pv_a, pv_b = a.pv_surplus_w, b.pv_surplus_w
    return (
        a.plugs == b.plugs
        and (pv_a is pv_b or pv_a == pv_b)
        and a.circuits == b.circuits
        and a.params == b.params
    )


def _idle(snapshot: Snapshot) -> bool:
    """No plug of ``snapshot`` can be given current whatever the limits, loads and PV surplus:
    each is off or unavailable (no car ready). The allocator rules such a plug out first
    (outcome ``off`` / ``not available``) and nothing it computes from the circuits reaches the
    answer: every setpoint 0, every reason one of those two sentences, no PV timer."""
    return all(not p.available or p.mode is ChargeMode.OFF for p in snapshot.plugs)


def _tree(circuits: tuple[Circuit, ...]) -> tuple[tuple[str, str | None, float | None], ...]:
    """The circuit tree without its limits and loads (what decides the row layout)."""
    return tuple((c.id, c.parent, c.power_limit_w) for c in circuits)


def _wants_current(plug: Plug) -> bool:
    """A plug that would run if there were room: it waits in the queue while paused."""
    if not plug.available or plug.mode is ChargeMode.OFF or plug.max_a < plug.min_a:
        return False
    return plug.target_a is None or plug.target_a >= plug.min_a


class AllocationSession:
    """Per-plug run/pause timers, the waiting queue and PV enable/disable timers between calls.

    The allocator is a pure function, so a step whose input (hysteresis state included) equals
    the last one reuses the last answer; and while no plug can take current (every plug off or
    unavailable: an empty site), the answer does not depend on the limits, the non-EV loads or
    the PV surplus, so a step whose plugs, parameters and circuit tree equal those of the last
    such answer reuses it whatever the loads do, as long as every limit and load is finite
    (a non-finite one is refused by the allocator). ``reuse`` False allocates every step, the
    reference the equivalence tests compare with; ``idle_reuse`` False turns off only the
    empty-site shortcut.
    """

    reuse: bool = True
    idle_reuse: bool = True
    #: for the day jump's state walk (``scenario/statewalk.py``): ``_idle`` only saves
    #: allocations whose answer it equals (a memo), ``idle_reused`` only counts for the tests
    #: (no decision reads it; ``tests/scenario/test_idle_memo_walk.py``)
    __fuseguard_memo__ = ("_idle",)
    __fuseguard_counters__ = ("idle_reused",)

    def __init__(self) -> None:
        self._timers: dict[str, PlugTimers] = {}
        self.last_input: Snapshot | None = None  # the last snapshot allocated, state filled in
        self._last: tuple[Snapshot, Allocation] | None = None  # ... and its answer
        self._idle: tuple[Snapshot, Allocation] | None = None  # the last answer with no plug able
        self.idle_reused = 0  # steps answered from ``_idle`` (tests check the shortcut is taken)
        self._probe: _Probe | None = None
        self._probe_tried: dict[str, float] = {}  # plug -> when the trial last ran

    def timers(self, plug_id: str) -> PlugTimers | None:
        """The remembered state of one plug (None: never seen)."""
        return self._timers.get(plug_id)

    def with_state(self, snapshot: Snapshot, now_s: float) -> Snapshot:
        """``snapshot`` with every plug's hysteresis fields filled in from the session (a plug
        whose fields already hold those values is taken as it is, not copied)."""
        plugs: list[Plug] = []
        for plug in snapshot.plugs:
            t = self._timers.get(plug.id)
            if t is None or not plug.available:
                state: tuple[int, float | None, float | None, float] = (0, None, None, 0.0)
            else:
                state = (
                    t.setpoint_a,
                    None if t.running_since_s is None else max(0.0, now_s - t.running_since_s),
                    None if t.paused_since_s is None else max(0.0, now_s - t.paused_since_s),
                    0.0 if t.pv_since_s is None else max(0.0, now_s - t.pv_since_s),
                )
            if (plug.setpoint_a, plug.running_s, plug.paused_s, plug.pv_timer_s) == state:
                plugs.append(plug)
                continue
            plugs.append(with_timers(plug, *state))
        # dataclasses.replace(snapshot, plugs=...), built directly
        return Snapshot(snapshot.circuits, tuple(plugs), snapshot.pv_surplus_w, snapshot.params)

    def step(self, snapshot: Snapshot, now_s: float, held: Collection[str] = ()) -> Allocation:
        """Allocate for ``snapshot`` (its hysteresis fields are ignored) at time ``now_s``.

        ``held``: plugs out of this allocation only for a moment (a write to a slow charger
        under way: the controller holds them at their setpoint); their run/pause timers are
        kept as they were, where an unavailable plug's start anew (a car paused just before
        would otherwise owe no minimum pause, one running would start its minimum run again)."""
        full = self.with_state(snapshot, now_s)
        released = self._end_probe(full, now_s)
        if self._probe is not None:
            full = ph.probe_snapshot(full, self._probe.plug)
        allocation = self._allocate(full)
        if self._probe is None and not released and self._start_probe(full, allocation, now_s):
            assert self._probe is not None
            full = ph.probe_snapshot(full, self._probe.plug)
            allocation = self._allocate(full)
        if self._probe is not None:
            self._probe.paused = ph.paused_by_probe(full, allocation, self._probe.paused)
        self._last = (full, allocation)
        self.last_input = full
        timers: dict[str, PlugTimers] = {}
        for plug in snapshot.plugs:
            if held and plug.id in held and plug.id in self._timers:
                timers[plug.id] = self._timers[plug.id]
                continue
            old = self._timers.get(plug.id) if plug.available else None
            t = old if old is not None else PlugTimers()
            new_a = allocation.setpoints[plug.id]
            if new_a > 0:
                if t.setpoint_a == 0 or t.running_since_s is None:
                    t.running_since_s = now_s
                t.paused_since_s = None
            else:
                if t.setpoint_a > 0:
                    t.paused_since_s = now_s  # stopped: the minimum pause starts now
                elif not _wants_current(plug):
                    t.paused_since_s = None
                elif t.paused_since_s is None:
                    # starts waiting in the queue; a car that has not been stopped owes no
                    # minimum pause, so its waiting time starts as if that had passed
                    t.paused_since_s = now_s - full.params.min_pause_s
                t.running_since_s = None
            if plug.id in allocation.pv_pending:
                if t.pv_since_s is None:
                    t.pv_since_s = now_s
            else:
                t.pv_since_s = None
            t.setpoint_a = new_a
            if plug.id in released and new_a == 0 and t.paused_since_s is not None:
                # paused for a probe, not for a turn change: it owes no minimum pause
                t.paused_since_s = min(t.paused_since_s, now_s - full.params.min_pause_s)
            timers[plug.id] = t
        self._timers = timers
        return allocation

    def _allocate(self, full: Snapshot) -> Allocation:
        last = self._last
        if self.reuse and last is not None and _same(last[0], full):
            return last[1]  # nothing moved: the pure allocator would answer the same
        idle = self._idle
        if (
            self.reuse
            and self.idle_reuse
            and idle is not None
            and idle[0].plugs == full.plugs
            and idle[0].params == full.params
            and _tree(idle[0].circuits) == _tree(full.circuits)
            and not non_finite_inputs(full)
        ):
            # the same plugs, none able to take current: only limits, loads or PV moved
            self.idle_reused += 1
            return idle[1]
        allocation = allocate(full)
        if _idle(full) and not non_finite_inputs(full):
            self._idle = (full, allocation)
        return allocation

    def _end_probe(self, full: Snapshot, now_s: float) -> set[str]:
        """End the probe in progress when it is over; returns the plugs it paused (released)."""
        pr = self._probe
        if pr is None:
            return set()
        p = next((q for q in full.plugs if q.id == pr.plug), None)
        if (
            p is not None
            and not p.phases_known
            and p.available
            and now_s - pr.since_s < ph.TIMEOUT_S
        ):
            return set()
        self._probe = None
        return pr.paused

    def _start_probe(self, full: Snapshot, allocation: Allocation, now_s: float) -> bool:
        """Start a probe of the first waiting plug of unknown phases that would fit as a 1-phase
        car (tried at most every ``RECHECK_S`` per plug)."""
        tried = self._probe_tried
        min_pause = full.params.min_pause_s
        for i, p in enumerate(full.plugs):
            if not ph.is_candidate(p, allocation.setpoints[p.id], min_pause):
                continue
            if now_s - tried.get(p.id, -ph.RECHECK_S) < ph.RECHECK_S:
                continue
            tried[p.id] = now_s
            if ph.would_fit_single_phase(full, i, allocation):
                self._probe = _Probe(plug=p.id, since_s=now_s, paused=set())
                return True
            return False  # one trial per step at most
        if len(tried) > 4 * len(full.plugs):  # forget plugs long gone
            ids = {p.id for p in full.plugs}
            self._probe_tried = {k: v for k, v in tried.items() if k in ids}
        return False
