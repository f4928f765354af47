"""Stuck contactor: a charger that draws clearly above its written setpoint.

Owns: since when a charger has drawn more than ``written + stuck_margin_a`` after its setpoint
settled, and whether it now counts as stuck (after ``stuck_after_s``). A stuck charger's real draw
is uncontrollable load and it gets setpoint 0; it is judged only on a current measurement, and
released as soon as it draws within the margin again. A charger that diagnoses the weld itself
(``contactor_welded`` in its errors: Bender register 112 bit 6, the virtual charge points) while
drawing above the margin is stuck at once: its own report confirms what the measurement shows. A
cascaded child edge is never stuck: its draw includes load it cannot shed.
"""

from __future__ import annotations

import structlog

from fuseguard.control.policies.facts import PlugFacts
from fuseguard.control.types import ChargerSpec

log = structlog.get_logger(__name__)

#: The error name a charger reports for a welded contactor (``wire.bender.ERROR_BITS`` (112, 6)).
WELDED = "contactor_welded"


class StuckContactor:
    """One charger's stuck-contactor detection."""

    def __init__(self, spec: ChargerSpec, *, margin_a: float, after_s: float) -> None:
        self._spec = spec
        self._margin_a = margin_a
        self._after_s = after_s
        self._since: float | None = None
        self._stuck = False
        self._over = False  # the last judged measurement was above the margin

    @property
    def stuck(self) -> bool:
        """The verdict of the last update."""
        return self._stuck

    @property
    def steady(self) -> bool:
        """No timer runs and nothing is stuck: the next update on the same facts (sample,
        written setpoint, fresh, settled) returns the same and changes nothing, whenever it
        runs (:class:`~fuseguard.control.plug.PlugControl` reuses its verdicts then)."""
        return self._since is None and not self._stuck and not self._over

    def update(self, f: PlugFacts) -> bool:
        """Judge this cycle's facts; returns whether the contactor counts as stuck."""
        sample = f.sample
        if sample is None or f.written_a is None or self._spec.child_edge:
            self._since = None
            self._stuck = False
            self._over = False
            return False
        if not f.fresh or not f.settled:
            # judge a contactor only on a current measurement taken with its setpoint in force
            return self._stuck
        drawn = max(sample.current_a)
        over = drawn > f.written_a + self._margin_a
        self._over = over
        settled = f.measured_at - f.settled_at >= self._after_s
        welded = WELDED in sample.errors  # the charger's own diagnosis: no need to wait
        if over and (settled or welded):
            if self._since is None:
                self._since = f.now
            if not self._stuck and (welded or f.now - self._since >= self._after_s):
                self._stuck = True
                log.error(
                    "charger_stuck",
                    charger=self._spec.id,
                    drawn_a=round(drawn, 1),
                    setpoint_a=f.written_a,
                    reason="draws above its setpoint",
                )
        elif not over:
            if self._stuck:
                log.info("charger_unstuck", charger=self._spec.id, reason="draws within margin")
            self._since = None
            self._stuck = False
        return self._stuck


__all__ = ["StuckContactor"]
