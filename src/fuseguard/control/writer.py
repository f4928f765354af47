"""The writer: setpoints decided and written, one writer task per charger, the rewrite cadence.

Owns: each charger's decided setpoint and its reason, the value last written and when it was
written and last changed, and when the last increase went out. One task per charger writes the
newest setpoint (coalescing: a slow charger never holds up another's decrease); every setpoint is
re-written at least every ``rewrite_interval_s``, or more often where the charger says its
watchdog needs it (``SupportsWatchdog``: a Bender whose safe-current timeout is below three
rewrite intervals), so the charger-side watchdog (safe current) fires only when fuseguard is
really gone. Writes go through the one guarded device call with
``write_timeout_s``; a failed write is logged and shown on the plug until its next good read.
Nothing is written to a charger that is offline.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import structlog

from fuseguard.control.ports import Charger, SupportsWatchdog
from fuseguard.control.reading import Failed, guarded
from fuseguard.control.types import ControllerConfig
from fuseguard.model.clock import Clock

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class Setpoint:
    """One charger's setpoint: what was decided and why, what was written and when."""

    setpoint_a: int = 0
    reason: str = "starting up"
    written_a: int | None = None
    #: the value being written now (None: no write under way); a slow charger's write may take
    #: seconds, and until it returns the charger may be at it or still at ``written_a``
    in_flight_a: int | None = None
    #: when the write under way began, and how long the last finished write took (landed or
    #: failed): a charger whose writes take a meter period or more is a slow writer
    write_started_at: float = -math.inf
    last_write_s: float = 0.0
    #: the highest value whose write failed since the last write landed (None: the last write
    #: landed). The value decided is not in force, and a failed write may have reached the
    #: charger all the same (a request timed out is not taken back: it may land after the
    #: caller gave up): the charger is at ``written_a`` or at a value it failed to confirm
    #: (``PlugControl.in_flight_a``; docs/safety.md, "A write that timed out")
    failed_a: int | None = None
    #: the last write was given up after ``write_timeout_s`` (its charger slower than that):
    #: the plug takes decreases while counted at ``failed_a`` (``PlugControl._hold``)
    timed_out: bool = False
    written_at: float = -math.inf
    changed_at: float = -math.inf
    #: the last written values and when each was written (oldest first, bounded)
    changes: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=8))

    def write_s(self, now: float) -> float:
        """How long this charger's writes take: the last finished one, or the one under way
        so far if that is longer (a meter period or more: a slow writer)."""
        if self.in_flight_a is None:
            return self.last_write_s
        return max(self.last_write_s, now - self.write_started_at)

    def limit_at(self, t: float, delay_s: float) -> int | None:
        """The limit in force at the charger at clock time ``t``, when a written value takes
        effect ``delay_s`` after its write (None: nothing known to be in force then)."""
        value = None
        for at, written in self.changes:
            if at + delay_s > t:
                break
            value = written
        return value


class Writer:
    """Setpoints of every charger and their writer tasks (see module docstring).

    ``online(pid, now)`` says whether a charger answers (nothing is written otherwise);
    ``on_failure(pid, reason)`` is told about every failed write.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        config: ControllerConfig,
        chargers: Mapping[str, Charger],
        online: Callable[[str, float], bool],
        on_failure: Callable[[str, str], None],
    ) -> None:
        self._clock = clock
        self._rewrite_s = {
            pid: _rewrite_interval_s(config.rewrite_interval_s, ch) for pid, ch in chargers.items()
        }
        self._timeout_s = config.write_timeout_s
        self._period_s = config.meter_period_s  # a write this long or longer is slow
        # the chargers with a write under way or whose last write was slow (limit_lead_s)
        self._watch: set[str] = set()
        self._chargers = dict(chargers)
        self._online = online
        self._on_failure = on_failure
        self._setpoints = {pid: Setpoint() for pid in self._chargers}
        self._events = {pid: asyncio.Event() for pid in self._chargers}
        self.last_raise_at = -math.inf

    def __getitem__(self, pid: str) -> Setpoint:
        return self._setpoints[pid]

    def setpoint_of(self, pid: str) -> tuple[int | None, float]:
        """The value last written to ``pid`` (None: never) and when it last changed (the
        poller's ``setpoint_of``)."""
        sp = self._setpoints[pid]
        return sp.written_a, sp.changed_at

    def limit_lead_s(self, now: float) -> float:
        """How long before a known drop of a limit (the EMS's watchdog expiring) a decrease
        must be decided to be in force when the drop is: 0 without a slow charger; else two of
        the slowest charger's writes (one under way or a rewrite just begun, then the decrease)
        and two meter periods (the decision's cadence; a held plug is decided on once its write
        has landed). Slow: as :meth:`PlugControl.in_flight_a` (docs/safety.md, "A write under
        way")."""
        slowest = 0.0
        for pid in self._watch:
            took = self._setpoints[pid].write_s(now)
            if took >= self._period_s:
                slowest = max(slowest, took)
        return 2.0 * (slowest + self._period_s) if slowest else 0.0

    def decide(self, pid: str, setpoint_a: int, reason: str) -> None:
        """Record the decided setpoint of ``pid`` (written by :meth:`flush`'s wake-up)."""
        sp = self._setpoints[pid]
        sp.setpoint_a = setpoint_a
        sp.reason = reason

    def hold(self, reason: str) -> None:
        """Keep every charger at its last safe setpoint: never above what was written."""
        for sp in self._setpoints.values():
            sp.setpoint_a = min(sp.setpoint_a, sp.written_a or 0)
            sp.reason = reason

    def no_raise(self, note: str) -> None:
        """No setpoint above what was written (a raise waits; a decrease goes ahead), the
        reasons of those held prefixed with ``note``."""
        for sp in self._setpoints.values():
            written = sp.written_a or 0
            if sp.setpoint_a > written:
                sp.setpoint_a = written
                sp.reason = note + sp.reason

    def _due(self, pid: str, now: float) -> bool:
        """A write is due: the setpoint changed, a rewrite is due, or a value failed to confirm
        is not the one written (a write that lands settles what the charger is at)."""
        sp = self._setpoints[pid]
        unsettled = sp.failed_a is not None and sp.failed_a != sp.written_a
        return sp.setpoint_a != sp.written_a or unsettled or self.rewrite_due(pid, now)

    def rewrite_due(self, pid: str, now: float) -> bool:
        """The written setpoint is due to be re-written (the charger-side watchdog)."""
        sp = self._setpoints[pid]
        return sp.written_a is not None and now - sp.written_at >= self._rewrite_s[pid]

    def flush(self, now: float) -> None:
        """Wake the writer of every charger whose setpoint changed or is due for a rewrite."""
        for pid in self._setpoints:
            if self._due(pid, now):
                self._events[pid].set()

    async def serve(self, pid: str) -> None:
        """Write the latest setpoint of ``pid`` whenever woken (runs until cancelled)."""
        event = self._events[pid]
        while True:
            await event.wait()
            event.clear()
            now = self._clock.monotonic()
            if not self._online(pid, now):
                continue
            if not self._due(pid, now):
                continue
            await self.write(pid)

    def _took(self, pid: str, sp: Setpoint, took_s: float) -> None:
        """Record how long a write took; say so when a charger becomes a slow writer (a meter
        period or more: the others make room for it while its writes are under way) and when
        it is quick again."""
        slow_s = self._period_s
        if (took_s >= slow_s) != (sp.last_write_s >= slow_s):
            if took_s >= slow_s:
                log.warning(
                    "charger_slow_writes",
                    charger=pid,
                    write_s=round(took_s, 3),
                    reason="a write took a meter period or more: others make room for its writes",
                )
            else:
                log.info("charger_quick_writes", charger=pid, write_s=round(took_s, 3))
        sp.last_write_s = took_s
        if took_s < slow_s:
            self._watch.discard(pid)

    async def write(self, pid: str) -> None:
        """Write the decided setpoint of ``pid`` once, now."""
        sp = self._setpoints[pid]
        value = sp.setpoint_a
        charger = self._chargers[pid]
        sp.in_flight_a = value
        sp.write_started_at = started = self._clock.monotonic()
        self._watch.add(pid)
        try:
            result = await guarded(
                lambda: charger.set_current_limit(value),
                device=pid,
                timeout_s=self._timeout_s,
                clock=self._clock,
            )
        finally:
            sp.in_flight_a = None
            self._took(pid, sp, self._clock.monotonic() - started)
        if isinstance(result, Failed):
            log.warning(
                "setpoint_write_failed", charger=pid, setpoint_a=value, reason=result.reason
            )
            sp.failed_a = value if sp.failed_a is None else max(sp.failed_a, value)
            sp.timed_out = result.timed_out
            self._on_failure(pid, f"write failed: {result.reason}")
            return
        sp.failed_a = None
        sp.timed_out = False
        now = self._clock.monotonic()
        if value > (sp.written_a or 0):
            self.last_raise_at = now
        if sp.written_a != value:
            log.info(
                "setpoint", charger=pid, setpoint_a=value, previous_a=sp.written_a, reason=sp.reason
            )
            sp.changed_at = now
            sp.changes.append((now, value))
        sp.written_at = now
        sp.written_a = value


def _rewrite_interval_s(default_s: float, charger: Charger) -> float:
    """How often ``charger``'s unchanged limit is re-written: ``default_s``, or its watchdog's
    refresh interval where that is shorter (a charger that declares none keeps the default)."""
    if isinstance(charger, SupportsWatchdog):
        refresh_s = charger.watchdog_refresh_s
        if math.isfinite(refresh_s) and refresh_s > 0:
            return min(default_s, refresh_s)
    return default_s


__all__ = ["Setpoint", "Writer"]
