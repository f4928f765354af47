"""Break before make: no car is raised while another is still coming down.

Owns: whether this cycle lowers some car — one still above its written setpoint within
``decrease_grace_s`` of the setpoint taking effect (it is coming down), one this decision sets
below what it draws now, or one whose decrease is not yet in force at the charger (a charger
that applies a limit ``limit_delay_s`` after the write and has not measured since: until the
delay and one more meter period are over, so the grid meter shows whether it came down). While
that holds, every increase waits at the written value. A car still above its setpoint after the
grace does not come down: what it draws above the setpoint (plus ``excess_margin_a``) is counted
as uncontrollable load. The state lives for one cycle: :meth:`BreakBeforeMake.begin` starts it.
"""

from __future__ import annotations

import math

from fuseguard.control.policies.facts import PlugFacts
from fuseguard.model.iec import MIN_CHARGE_CURRENT_A
from fuseguard.model.phases import ZERO, Phases


def excess_a(f: PlugFacts, margin_a: float) -> Phases | None:
    """What a plug draws above its written setpoint plus ``margin_a``, per grid phase
    (None: nothing, or no current measurement taken with that setpoint in force)."""
    if f.sample is None or f.written_a is None or not f.fresh or not f.settled:
        return None
    allowed = float(f.written_a) + margin_a
    a = f.grid_a
    if a.l1 <= allowed and a.l2 <= allowed and a.l3 <= allowed:
        return None  # the usual case, decided without building a Phases
    excess = Phases(max(0.0, a.l1 - allowed), max(0.0, a.l2 - allowed), max(0.0, a.l3 - allowed))
    return excess if excess.max > 0.0 else None


def decrease_pending(f: PlugFacts, evidence_s: float) -> bool:
    """The plug was lowered and nothing shows it came down yet: its measurement predates the
    new limit, and the limit is not in force for ``evidence_s`` (a meter period) yet."""
    return (
        f.written_a is not None
        and f.previous_a is not None
        and f.written_a < f.previous_a
        and not f.settled
        and f.now < f.settled_at + evidence_s
    )


class BreakBeforeMake:
    """The cycle's break-before-make state (one for the whole site)."""

    def __init__(self, *, margin_a: float, grace_s: float, evidence_s: float = 0.0) -> None:
        self._margin_a = margin_a
        self._grace_s = grace_s
        self._evidence_s = evidence_s
        self._decreasing = False

    @property
    def decreasing(self) -> bool:
        """Some car is coming down this cycle: increases wait."""
        return self._decreasing

    def begin(self) -> None:
        """Start a new cycle."""
        self._decreasing = False

    def update(self, f: PlugFacts) -> Phases:
        """A controllable plug before allocation; returns its draw to count as uncontrollable
        load (ZERO: none)."""
        if decrease_pending(f, self._evidence_s):
            self._decreasing = True  # its lower limit is not in force yet: others wait
            return ZERO
        excess = excess_a(f, self._margin_a)
        if excess is None:
            return ZERO
        if f.now - f.settled_at <= self._grace_s:
            self._decreasing = True  # it is coming down: others wait before increasing
            return ZERO
        return excess  # it does not come down: count what it really draws

    def lowered(self, f: PlugFacts, setpoint_a: int) -> None:
        """A controllable plug after allocation: note when the decision lowers it below what
        it draws now."""
        if f.fresh and f.draw_a.max > setpoint_a + self._margin_a:
            self._decreasing = True

    def held(self, setpoint_a: int, written_a: int | None, drawing_a: float = 0.0) -> int | None:
        """The value an increase waits at while cars come down (None: it may go ahead).

        A plug never written yet (``written_a`` None: fuseguard just started) is at what it
        draws now (``drawing_a``, fresh): a car found charging at 32 A and given 14 A comes
        down, it is not raised, so it is not held at 0 (which would pause it for nothing); one
        found at 10 A and given 16 A waits at 10 A."""
        if not self._decreasing:
            return None
        if written_a is None:
            if setpoint_a <= drawing_a + self._margin_a:
                return None  # at or below what it draws: a decrease
            at_a = math.floor(drawing_a)
            return at_a if at_a >= MIN_CHARGE_CURRENT_A else 0
        return written_a if setpoint_a > written_a else None


__all__ = ["BreakBeforeMake", "decrease_pending", "excess_a"]
