"""Phase lock of the grid meter poll: poll just after the meter publishes, not at a random phase.

A meter that stamps its telegrams (a CEMM: the telegram's own timestamp) publishes telegram ``ts``
at ``ts + theta`` on our clock, ``theta`` being the constant offset between its clock and ours
plus its publishing delay. Every poll bounds ``theta``: a poll sent at ``s`` that still got an
older telegram says ``theta > s - ts`` of the next one; a poll answered at ``a`` with telegram
``ts`` says ``theta <= a - ts``. :class:`MeterPhase` keeps the interval ``[lo, hi]`` (widened by a
generous clock drift allowance as it ages, reset when new evidence contradicts it), probes its
middle with one extra poll while it is wider than :data:`PROBE_WIDTH_S` (a bisection: a few
periods after start-up it is as narrow as the answer's round trip), and, once it is narrower than
a quarter period, schedules the meter polls on the grid ``last_ts + hi + MARGIN_S + k * period/2``:
one poll just after the next telegram's latest possible publication (``EXPECT``, where the
chargers are read too), one half a period later (``HALF``). A telegram that is not there at its
``EXPECT`` poll (a late or irregular meter) is chased every :data:`CHASE_S` a few times.

Fallback: without an interval (a meter that stamps on arrival, as a Modbus meter, never gives a
lower bound; a timestamp that does not advance gives nothing) the schedule is plain polling every
half period at an arbitrary phase. In every mode the next poll is at most half a period after the
previous one, so a telegram is never seen later than with plain polling, and a missed or frozen
telegram goes stale exactly as before (:class:`~fuseguard.control.reading.MeterReading`).
"""

from __future__ import annotations

import enum
import math

MARGIN_S = 0.015
"""The EXPECT poll is sent this long after the latest possible publication (timing jitter)."""
CHASE_S = 0.03
"""A telegram missing at its EXPECT poll is polled for again this often ..."""
CHASE_POLLS = 6
"""... this many times, then at the half-period grid again."""
PROBE_WIDTH_S = 0.03
"""The publication interval is bisected with an extra poll while it is wider than this."""
DRIFT_PER_S = 0.0002
"""How fast the interval widens as it ages (the meter's clock against ours: 200 ppm, more than
a quartz drifts; it makes old evidence give way to new)."""
RESET_AFTER = 3
"""The interval is started again when this many telegrams in a row contradict it (fewer: late
telegrams, caught by the chase and the half-period poll)."""
MIN_GAP_S = 0.005
"""No poll is scheduled closer than this to now."""
FOLLOW = 0.25
"""The meter's schedule follows a telegram up to JITTER_S off it by this share of the
difference (a slowly drifting period is followed, one late tick hardly moves it) ..."""
JITTER_S = 0.03
"""... and a telegram further off starts a new schedule (the meter restarted or re-phased)."""


class PollKind(enum.Enum):
    """Why a meter poll is sent."""

    PLAIN = "plain"  # no phase known: every half period
    EXPECT = "expect"  # just after the next telegram's latest possible publication
    HALF = "half"  # half a period after EXPECT
    CHASE = "chase"  # the telegram was not there at EXPECT
    PROBE = "probe"  # the middle of the publication interval (bisection)


class MeterPhase:
    """When the meter publishes, learned from its answers (see module docstring)."""

    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self.lo = -math.inf  # bounds of theta = publication on our clock - telegram timestamp
        self.hi = math.inf
        self.last_ts: float | None = None  # the newest telegram's own timestamp (s)
        self._sched: float | None = None  # where the newest telegram was due (the meter's clock)
        self._evidence_at = 0.0  # when lo/hi were last tightened (our clock)
        self._pending_lo: float | None = None  # latest send of a poll that got an old telegram
        self._chase_left = 0
        self._probed_ts: float | None = None  # the telegram whose publication was probed
        self.resets = 0  # evidence contradicted the interval (the meter's clock stepped)
        self._contradicted = 0  # telegrams in a row that contradicted it

    @property
    def width_s(self) -> float:
        """How uncertain the publication instant is (inf: unknown)."""
        return self.hi - self.lo

    def locked(self) -> bool:
        """The publication instant is known to within a quarter period."""
        return self.last_ts is not None and self.width_s <= self.period_s / 4.0

    def observe(self, kind: PollKind, sent_at: float, answered_at: float, ts: float) -> None:
        """A poll of ``kind`` sent at ``sent_at`` was answered at ``answered_at`` with a new
        telegram stamped ``ts`` (the meter's clock, s)."""
        if self.last_ts is not None and ts <= self.last_ts:
            self.nothing(kind)  # a timestamp that does not advance tells nothing
            return
        self._chase_left = 0
        lo_k = -math.inf if self._pending_lo is None else self._pending_lo - ts
        hi_k = answered_at - ts
        aged = DRIFT_PER_S * max(0.0, answered_at - self._evidence_at)
        lo, hi = max(self.lo - aged, lo_k), min(self.hi + aged, hi_k)
        if lo > hi:  # the evidence contradicts the interval
            self._contradicted += 1
            if self._contradicted < RESET_AFTER:  # one late telegram (a meter stamping whole
                self._follow(ts)  # seconds published late): keep the interval
                self.last_ts = ts
                self._pending_lo = None
                return
            lo, hi = lo_k, hi_k  # it lasts: the meter's clock stepped, start again
            self.resets += 1
        self._contradicted = 0
        self.lo, self.hi = lo, hi
        self._evidence_at = answered_at
        self._follow(ts)
        self.last_ts = ts
        self._pending_lo = None

    def _follow(self, ts: float) -> None:
        """Move the meter's schedule towards a new telegram stamped ``ts``."""
        period = self.period_s
        if self._sched is not None:
            n = round((ts - self._sched) / period)
            due = self._sched + n * period
            if n >= 1 and abs(ts - due) <= JITTER_S:
                self._sched = due + FOLLOW * (ts - due)
                return
        self._sched = ts  # the first telegram, or one off the schedule: a new schedule

    def repeated(self, kind: PollKind, sent_at: float) -> None:
        """A poll sent at ``sent_at`` got the telegram already seen: the next one was not
        published when the meter answered."""
        if self.last_ts is not None:
            pending = self._pending_lo
            self._pending_lo = sent_at if pending is None else max(pending, sent_at)
        self.nothing(kind)

    def nothing(self, kind: PollKind) -> None:
        """A poll of ``kind`` brought no new telegram (a repeat, a failure): nothing learned
        (the chase is counted by the polls issued, so a meter that never answers ends it)."""
        del kind

    def next_poll(self, now: float, last_at: float) -> tuple[float, PollKind]:
        """When to poll the meter next, and why (never later than ``last_at + period/2``)."""
        half = self.period_s / 2.0
        plain = last_at + half
        earliest = now + MIN_GAP_S
        probe = self._probe_at()
        if not self.locked():
            if probe is not None and earliest < probe < plain:
                return probe, PollKind.PROBE
            return plain, PollKind.PLAIN
        if self._chase_left > 0:
            return min(now + CHASE_S, plain), PollKind.CHASE
        assert self._sched is not None
        anchor = self._sched + self.hi + MARGIN_S
        # k = 0 is the newest telegram's own EXPECT instant: the grid goes on after it
        k = max(1, math.floor((earliest - anchor) / half) + 1)
        at = anchor + k * half
        kind = PollKind.EXPECT if k % 2 == 0 else PollKind.HALF
        if probe is not None and earliest < probe < min(at, plain):
            return probe, PollKind.PROBE
        if plain + MARGIN_S < at:  # the lock moved by more than its margin: plain first
            return plain, PollKind.PLAIN
        return min(at, plain), kind

    def issued(self, kind: PollKind) -> None:
        """A poll of ``kind`` goes out now."""
        if kind is PollKind.EXPECT:
            self._chase_left = CHASE_POLLS
        elif kind is PollKind.CHASE:
            self._chase_left = max(0, self._chase_left - 1)
        elif kind is PollKind.PROBE:
            self._probed_ts = self.last_ts

    def _probe_at(self) -> float | None:
        """The middle of the next telegram's publication interval, while it is wide and not yet
        probed for that telegram."""
        if self.last_ts is None or not math.isfinite(self.width_s):
            return None
        if self.width_s <= PROBE_WIDTH_S or self._probed_ts == self.last_ts:
            return None
        assert self._sched is not None
        return self._sched + self.period_s + (self.lo + self.hi) / 2.0


__all__ = ["CHASE_POLLS", "CHASE_S", "MARGIN_S", "PROBE_WIDTH_S", "MeterPhase", "PollKind"]
