"""Hysteresis state between allocations, without a clock: the caller passes ``now_s``.

The control loop calls :meth:`AllocationSession.step` on every meter sample. The session fills each
plug's ``setpoint_a``, ``running_s``, ``paused_s`` and ``pv_timer_s`` from what it remembers, runs
the pure :func:`~fuseguard.allocation.engine.allocate` and updates its timers from the answer.
Safety never waits for a timer: the allocator pauses a plug inside its minimum run time when the
limits demand it; the timers only decide who runs when there is a choice.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from fuseguard.allocation.engine import allocate
from fuseguard.allocation.types import Allocation, Plug, Snapshot
from fuseguard.model.status import ChargeMode


@dataclass(slots=True)
class PlugTimers:
    """What the session remembers about one plug (monotonic seconds of the caller's clock)."""

    setpoint_a: int = 0
    running_since_s: float | None = None
    paused_since_s: float | None = None
    pv_since_s: float | None = None


def _wants_current(plug: Plug) -> bool:
    """A plug that would run if there were room: it waits in the queue while paused."""
    if not plug.available or plug.mode is ChargeMode.OFF or plug.max_a < plug.min_a:
        return False
    return plug.target_a is None or plug.target_a >= plug.min_a


class AllocationSession:
    """Per-plug run/pause timers, the waiting queue and PV enable/disable timers between calls.

    The allocator is a pure function, so a step whose input (hysteresis state included) equals
    the last one reuses the last answer (``reuse``; False allocates every step, the reference
    the equivalence tests compare with).
    """

    reuse: bool = True

    def __init__(self) -> None:
        self._timers: dict[str, PlugTimers] = {}
        self.last_input: Snapshot | None = None  # the last snapshot allocated, state filled in
        self._last: tuple[Snapshot, Allocation] | None = None  # ... and its answer

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
            setpoint_a, running_s, paused_s, pv_timer_s = state
            plugs.append(
                replace(
                    plug,
                    setpoint_a=setpoint_a,
                    running_s=running_s,
                    paused_s=paused_s,
                    pv_timer_s=pv_timer_s,
                )
            )
        return replace(snapshot, plugs=tuple(plugs))

    def step(self, snapshot: Snapshot, now_s: float) -> Allocation:
        """Allocate for ``snapshot`` (its hysteresis fields are ignored) at time ``now_s``."""
        full = self.with_state(snapshot, now_s)
        last = self._last
        if self.reuse and last is not None and last[0] == full:
            allocation = last[1]  # nothing moved: the pure allocator would answer the same
        else:
            allocation = allocate(full)
        self._last = (full, allocation)
        self.last_input = full
        timers: dict[str, PlugTimers] = {}
        for plug in snapshot.plugs:
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
            timers[plug.id] = t
        self._timers = timers
        return allocation
