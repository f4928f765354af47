"""Jumps over whole days of a repeated scenario (``fuseguard simulate --days N``; issue 18 item 2).

A scenario repeated day after day (:func:`fuseguard.scenario.days.repeat_days`) prescribes the
same world every day: the same cars at the same chargers at the same times of day, the same
events, base load and PV. At a quiet, settled point (the one the jumps over quiet stretches
start from, :mod:`fuseguard.scenario.jump`: no car, no fault, no target, the site unchanged for
longer than the controller remembers) at world time ``w``, the runner captures the whole state
of the simulation (:mod:`fuseguard.scenario.statewalk`: controller, poller, writer, every policy
and memo, the virtual devices and site physics, every suspended task and every pending timer of
the virtual clock) and compares it with the capture taken at ``w - day``. If the two are equal
modulo the clock's advance between them (every float equal or later by exactly that advance), the
day from ``w`` is a deterministic function of an equal state and equal inputs, so it repeats the
day from ``w - day``, and by induction every later day does: the run from ``w`` is the run from
``w - day``, translated.

So instead of running ``k`` more days, the world moves ``k`` days ahead of the clock (as for a
quiet stretch; the world timers of the skipped days are dropped: the recorder accounts for their
effects) and the recorder adds the template day ``[w - day, w)`` ``k`` times: its sums
(overload A·s, fairness), its non-compliant episodes, its cars' tracks (energy, unmet need,
pause cycles), its faults' fallback times and its timeline rows, each moved by whole days. A jump
may land in the last day, before its first car whose departure the end cuts (those run tick by
tick; ``DayJump.keep_last_day`` True keeps the whole last day, the round-7 rule). Report numbers
are the tick run's up to the order of float additions in the sums (identical at the report's
precision); timeline rows identical. Proof: ``tests/scenario/test_scenario_dayjump.py``.

Refused (the run goes on day by day; the reason is logged at debug level): the states differ
(the log names the first differing path), something reachable cannot be walked (the walk fails
closed), the clock's advance over the day is not a whole number of orbit periods, the recorder's
own cadences (fairness window, Jain samples) not in the same phase a day apart, a car
announces its departure (the plug settings keep the last car's announcement), a non-compliant
episode or a base-load step is in force, the template is not one whole day of recorder ticks.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import structlog

from fuseguard.model.phases import ZERO
from fuseguard.scenario.config import Scenario
from fuseguard.scenario.metrics import CarTrack, Episode, FaultTrack, MetricState
from fuseguard.scenario.recorder import Recorder
from fuseguard.scenario.statewalk import Capture, UnwalkableError, first_difference
from fuseguard.sim.site import BaseLoad

log = structlog.get_logger(__name__)

#: the sums of :class:`MetricState` a day adds to (overload A·s apart)
_SUMS = (
    "jain_weighted",
    "jain_weight",
    "jain_samples",
    "share_weighted",
    "share_weight",
    "share_samples",
)


@dataclass(frozen=True)
class _Checkpoint:
    """What the recorder held at a quiet point, and the whole state of the run there."""

    state: MetricState
    rows: int
    episodes: int
    capture: Capture
    phase: tuple[float, float]


class DayJump:
    """Captures at quiet points and the jump over whole days (see the module docstring).

    ``capture`` walks the run's whole state (:func:`fuseguard.scenario.statewalk.capture`;
    :class:`~fuseguard.scenario.statewalk.UnwalkableError` when it cannot), ``period_s`` is the
    orbit period of the quiet jumps (the clock's advance over a day must be a multiple of it);
    ``periodic_until_s``: the end of the stretch over which the scenario's world repeats day
    after day (the run's end, or the first arrival of a car whose departure the end cuts).
    """

    #: False (the default since round 12, the lead's call at the merge): a day jump may land in
    #: the last day, as long as the skipped days lie where the world repeats
    #: (``periodic_until_s``: before the first car whose departure the end cuts): exact by the
    #: same argument (the skipped interval's world is the template's, translated; the cars the
    #: end cuts run tick by tick). True: it lands at least a day before the end, so the whole
    #: last day runs (the round-7 rule); measured in ``bench/notes/simspeed.md`` (round 12)
    keep_last_day = False

    def __init__(
        self,
        recorder: Recorder,
        loads: Iterable[BaseLoad],
        day_s: float,
        end_s: float,
        *,
        capture: Callable[[], Capture],
        period_s: float,
        periodic_until_s: float | None = None,
    ) -> None:
        self._rec = recorder
        self._loads = list(loads)
        self.day_s = day_s
        self._end_s = end_s
        self._periodic_until_s = end_s if periodic_until_s is None else periodic_until_s
        self._capture = capture
        self._period_s = period_s
        self._points: dict[float, _Checkpoint] = {}
        self._template: _Checkpoint | None = None
        #: why each day jump was refused at a point that had a capture a day before (world time,
        #: reason), in order; the same reasons go to the debug log
        self.refusals: list[tuple[float, str]] = []
        #: how many states were captured (each costs a walk)
        self.captures = 0

    def _refuse(self, w: float, reason: str) -> int:
        self.refusals.append((w, reason))
        log.debug("day_jump_refused", at_s=w, reason=reason)
        return 0

    def days_at(self, w: float) -> int:
        """How many whole days can be skipped from the quiet point at world time ``w`` (0: none;
        the point's capture is kept for the point a day later)."""
        rec, day = self._rec, self.day_s
        if w > self._limit_s() - day:
            return 0  # no whole day left to skip from here
        if rec.state.open_episode() is not None or any(b.offset_a != ZERO for b in self._loads):
            return self._refuse(w, "a non-compliant episode or a base-load step in force")
        before = self._points.get(w - day)
        self._points = {t: c for t, c in self._points.items() if t > w - day}
        try:
            state = self._capture()
        except UnwalkableError as err:
            return self._refuse(w, f"state not walkable: {err}")
        except (RecursionError, ValueError, TypeError, AttributeError) as err:  # fail closed
            return self._refuse(w, f"state not walkable: {type(err).__name__}: {err}")
        self.captures += 1
        tl = rec.timeline
        here = _Checkpoint(
            copy.deepcopy(rec.state),
            0 if tl is None else tl.n,
            len(rec.state.episodes),
            state,
            rec.phase(w),
        )
        self._points[w] = here
        if before is None:
            return 0
        advance = here.capture.clock_s - before.capture.clock_s
        if advance <= 0 or advance % self._period_s:
            return self._refuse(w, f"clock advance {advance!r} s not a multiple of the period")
        if tl is not None and here.rows - before.rows != round(day / rec.period_s):
            return self._refuse(w, "the template is not one whole day of recorder ticks")
        if here.phase != before.phase:
            # the recorder is not compared (it only measures), but its fairness window and Jain
            # samples must fall in the same place of the day for the template to repeat
            return self._refuse(
                w, f"recorder cadences out of phase: {before.phase} vs {here.phase}"
            )
        diff = first_difference(before.capture, here.capture)
        if diff is not None:
            return self._refuse(w, f"state differs from a day before: {diff}")
        self._template = before
        return max(0, int((self._limit_s() - w) // day))

    def _limit_s(self) -> float:
        """The latest world time a day jump may land at."""
        if self.keep_last_day:
            return self._end_s - self.day_s
        return min(self._end_s, self._periodic_until_s)

    def replay(self, w: float, days: int) -> None:
        """Add the template day ``[w - day, w)`` to the recorder ``days`` times (``w``: the
        quiet point of :meth:`days_at`, the world is about to move ``days`` days ahead)."""
        rec, day = self._rec, self.day_s
        before, here = self._template, self._points[w]
        assert before is not None, "replay() follows a days_at() that found a template"
        st, b = rec.state, before.state
        delta = {c: [a - x for a, x in zip(acc, b.overload_as[c], strict=True)]
                 for c, acc in st.overload_as.items()}  # fmt: skip
        sums = {name: getattr(st, name) - getattr(b, name) for name in _SUMS}
        template = st.episodes[before.episodes : here.episodes]
        for j in range(1, days + 1):
            for c, acc in st.overload_as.items():
                for p in range(3):
                    acc[p] += delta[c][p]
            for name, value in sums.items():
                setattr(st, name, getattr(st, name) + value)
            shift = j * day
            st.episodes += [
                Episode(e.start_s + shift, None if e.end_s is None else e.end_s + shift)
                for e in template
            ]
        _copy_tracks(rec.tracks.values(), w - day, w, days, day)
        _copy_faults(rec.faults, w - day, w, days, day)
        tl = rec.timeline
        if tl is not None:
            rows = slice(before.rows, here.rows)
            for j in range(1, days + 1):
                to = slice(tl.n, tl.n + here.rows - before.rows)
                tl.t_s[to] = tl.t_s[rows].astype(float) + j * day
                for key in ("grid_a", "limit_a", "ev_a", "charger_a", "setpoint_a"):
                    arr = getattr(tl, key)
                    arr[to] = arr[rows]
                tl.n = to.stop
        rec.skip_days(days * day)
        self._points.clear()


def _copy_tracks(tracks: Iterable[CarTrack], lo: float, hi: float, days: int, day: float) -> None:
    """The cars of the skipped days end as their template day's cars did."""
    tracks = list(tracks)
    template = {(t.charger, t.arrive_s): t for t in tracks if lo <= t.arrive_s < hi}
    for t in tracks:
        j = int((t.arrive_s - lo) // day)
        if not 1 <= j <= days:
            continue
        src = template.get((t.charger, t.arrive_s - j * day))
        if src is None:
            continue
        t.delivered_wh, t.unmet_wh, t.cycles = src.delivered_wh, src.unmet_wh, src.cycles
        t.paused, t.was_drawing, t.present = src.paused, src.was_drawing, False


def _copy_faults(faults: list[FaultTrack], lo: float, hi: float, days: int, day: float) -> None:
    """The faults of the skipped days held their fallback as their template day's did."""
    template = {(f.device, f.kind, f.start_s): f for f in faults if lo <= f.start_s < hi}
    for f in faults:
        j = int((f.start_s - lo) // day)
        if not 1 <= j <= days:
            continue
        src = template.get((f.device, f.kind, f.start_s - j * day))
        if src is not None:
            f.fallback_s, f.condition = src.fallback_s, src.condition


def day_jump(
    sc: Scenario,
    recorder: Recorder,
    loads: Iterable[BaseLoad],
    *,
    capture: Callable[[], Capture],
    period_s: float,
) -> DayJump | None:
    """The day jumps of ``sc`` (None: not a repeated scenario, or a car announces departure)."""
    day = sc.repeat_day_s
    if day is None or any(car.announce_departure for car in sc.cars):
        return None
    end = sc.site.duration_s
    cut = [car.arrive_s for car in sc.cars if car.arrive_s < end < car.depart_s]
    return DayJump(
        recorder,
        loads,
        day,
        end,
        capture=capture,
        period_s=period_s,
        periodic_until_s=min(cut, default=end),
    )


__all__ = ["DayJump", "day_jump"]
