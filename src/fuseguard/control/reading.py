"""Reading: the poll loop, the last good sample of every device, and the ONE guarded device call.

Owns:

* :func:`guarded` — the one place where a device call (read or write) that raises a
  :class:`~fuseguard.control.ports.DeviceError`, times out, or hits a driver bug becomes
  :class:`Failed` with a reason in plain words. Control never sees a driver exception.
* :class:`MeterReading` / :class:`ChargerReading` — the newest good sample of one device, when it
  arrived and the device's current error. Garbage (non-finite numbers) and a frozen meter count
  as failures; a failure is logged once per distinct reason, a recovery once.
* :class:`Poller` — the cadence: the meter twice per meter period (a new telegram is seen within
  half a period); a charger once per period while anything about it moves and every
  ``charger_idle_poll_s`` when steady (see :class:`Poller`); the poll waits at most
  ``poll_wait_s`` for the answers, so a hanging device never holds up the others or the
  decision; its read goes on and lands in a later cycle, and is abandoned as failed after its
  device's timeout.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import structlog

from fuseguard.control.ports import DeviceError
from fuseguard.control.types import ChargerSpec, ControllerConfig, MeterTiming
from fuseguard.model.clock import Clock, TimerHandle
from fuseguard.model.numbers import is_finite_number
from fuseguard.model.phases import ZERO, Phases
from fuseguard.model.samples import ChargerSample, MeterSample
from fuseguard.model.status import PlugStatus, plug_status

log = structlog.get_logger(__name__)

T = TypeVar("T")

STEADY_A = 1.0
"""A charger whose draw moved less than this (A, any phase) since its last read is steady."""
OFFSET_SAMPLES = 120
"""A meter's answers whose offset (arrival minus own timestamp) sets the quickest one: a minute at
two reads per second, so a step of the meter's own clock is forgotten within a minute."""
METER_DROP_A = 2.0
"""A meter drop this large (A, any phase) below its high since the last sweep reads every
charger at once (a charger that draws less than its last sample is the one error of a steady
charger's sample that is not on the safe side)."""


@dataclass(frozen=True, slots=True)
class Failed:
    """A device call that did not work; ``reason`` says why in plain words."""

    reason: str
    #: given up after the call's timeout (the request may still land): see :func:`guarded`
    timed_out: bool = field(default=False, compare=False)


class _ClockTimeout:
    """``asyncio.timeout`` on the injected clock: after ``timeout_s`` of clock time (virtual
    time too) a callback cancels the waiting task, and the cancellation leaves the block as
    :class:`TimeoutError`. A clock callback, not a task: nothing else in the event loop moves
    (a call that returns before the deadline leaves only a cancelled timer behind)."""

    __slots__ = ("_cancelling", "_clock", "_expired", "_handle", "_task", "_timeout_s")

    def __init__(self, clock: Clock, timeout_s: float) -> None:
        self._clock = clock
        self._timeout_s = timeout_s
        self._task: asyncio.Task[object] | None = None
        self._handle: TimerHandle | None = None
        self._cancelling = 0
        self._expired = False

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - guarded always runs in a task
            msg = "a clock timeout needs a task"
            raise RuntimeError(msg)
        self._task = task
        self._cancelling = task.cancelling()
        self._handle = self._clock.call_later(self._timeout_s, self._expire)

    def _expire(self) -> None:
        task = self._task
        if task is not None and not task.done():
            self._expired = True
            task.cancel()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, _tb: object
    ) -> None:
        if self._handle is not None:
            self._handle.cancel()
        task = self._task
        if (
            self._expired
            and task is not None
            and exc_type is asyncio.CancelledError
            and task.uncancel() <= self._cancelling
        ):
            raise TimeoutError from exc  # our own cancel: a timeout (another cancel propagates)


async def guarded(
    call: Callable[[], Awaitable[T]],
    *,
    device: str,
    timeout_s: float | None = None,
    clock: Clock | None = None,
) -> T | Failed:
    """Await ``call()``; any device error, timeout or driver bug becomes :class:`Failed`.

    ``timeout_s`` bounds the call on ``clock`` (the injected clock: virtual time in the
    simulator and the soak, wall time at the edge): the one timeout of a device call. A call cut
    off by it is a request given up, not taken back: it may still reach the device (a Modbus
    request on the wire lands or not), so the caller must treat its outcome as unknown
    (the writer: ``Setpoint.failed_a``, docs/safety.md "A write that timed out").

    A driver bug (any other exception) is logged with its traceback, naming the device: it must
    not stop control, but it must be loud. Cancellation is not a failure and propagates.
    """
    if timeout_s is None:
        timer = None
    elif clock is None:
        msg = "guarded: a timeout needs the clock it is counted on"
        raise TypeError(msg)
    else:
        timer = _ClockTimeout(clock, timeout_s)
    try:
        if timer is None:
            return await call()
        async with timer:
            return await call()
    except DeviceError as err:
        return Failed(str(err) or type(err).__name__)
    except TimeoutError as err:
        if timeout_s is not None and not str(err):
            return Failed(f"no answer within {timeout_s:g} s", timed_out=True)
        return Failed(str(err) or "timed out")
    except Exception as err:
        log.exception("device_driver_error", device=device, reason=repr(err))
        return Failed(f"driver error: {err!r}")


def meter_sample_ok(sample: MeterSample) -> bool:
    """Every number control uses from a meter sample is finite."""
    c = sample.current_a
    try:
        total = sample.power_w + (c.l1 + c.l2 + c.l3 if c is not None else 0.0)
    except TypeError:
        return False
    # a sum is finite only when every term is (NaN and infinities propagate): one check
    return is_finite_number(total)


def charger_sample_ok(sample: ChargerSample) -> bool:
    """Every number control uses from a charger sample is finite."""
    c = sample.current_a
    try:
        total = c.l1 + c.l2 + c.l3 + sample.power_w
        for v in (sample.max_current_a, sample.cable_rating_a):
            if v is not None:
                total += v
    except TypeError:
        return False
    return is_finite_number(total)


class MeterReading:
    """The grid meter's newest good sample, when it came, and its error (see module docstring)."""

    def __init__(
        self, config: ControllerConfig, *, name: str = "meter", timing: MeterTiming | None = None
    ) -> None:
        self._period_s = config.meter_period_s if timing is None else timing.period_s
        self._stale_after_s = config.meter_stale_after_s if timing is None else timing.stale_after_s
        self.name = name
        self.sample: MeterSample | None = None
        # the clock instant the newest good sample stands for (see stands_for)
        self.ok_at: float | None = None
        # when the newest good sample arrived (the frozen check: a meter whose new telegrams
        # keep coming is not frozen, however old its clock says they are)
        self._new_at: float | None = None
        self.error: str | None = None
        # the last good telegram repeated for two periods and nothing new since: lost at once,
        # not only when stale (fresh)
        self.frozen = False
        # arrival minus the meter's own timestamp of recent samples (the meter's clock offset
        # plus each answer's delay): the smallest is the quickest answer
        self._offsets: deque[float] = deque(maxlen=OFFSET_SAMPLES)

    @property
    def period_s(self) -> float:
        """How often this meter sends a new value."""
        return self._period_s

    def fresh(self, now: float) -> bool:
        """The newest good sample is at most ``meter_stale_after_s`` old (by its own
        timestamp, :meth:`stands_for`) and the meter is not frozen: a meter that repeats its
        last telegram for two periods is lost at once (docs/safety.md, round 17)."""
        return (
            not self.frozen and self.ok_at is not None and now - self.ok_at <= self._stale_after_s
        )

    def stands_for(self, sample: MeterSample, now: float) -> float:
        """The clock instant a sample arriving at ``now`` stands for, judged by its own
        timestamp: a slow answer is as old as its reading, not as new as its arrival.

        The meter's clock need not agree with ours: its age is how much later than the quickest
        of the last ``OFFSET_SAMPLES`` answers (relative to their timestamps) it arrived. A meter
        that stamps on arrival (Modbus) has age 0; a timestamp that did not advance with the
        clock ages the sample like a slow answer would."""
        arrived_after = now - sample.timestamp.timestamp()
        self._offsets.append(arrived_after)
        return now - max(0.0, arrived_after - min(self._offsets))

    def update(self, result: MeterSample | Failed, now: float) -> MeterSample | None:
        """Take one read's outcome; returns the sample when it is a new good one."""
        if isinstance(result, Failed):
            self.failed(result.reason)
            return None
        if not meter_sample_ok(result):
            self.failed("meter sample has non-finite values")
            return None
        if result.stale:
            # a meter polled faster than it sends telegrams repeats one now and then; only a
            # lasting repeat is a frozen meter. Counted from the newest telegram's arrival, not
            # from the instant it stands for: after a step back of the meter's clock its new
            # telegrams stand up to the step earlier (stands_for) for a minute, and each repeat
            # in between flipped the meter to "frozen" and the next telegram to "recovered"
            last_new = self._new_at if self._new_at is not None else -math.inf
            if now - last_new > 2 * self._period_s:
                # the very telegram of the last good sample again: frozen, lost at once. A
                # clock stepped back repeats no telegram: its new ones stand below the last
                # timestamp (stale too, and flagged; lost only when stale, as before)
                last = self.sample
                self.frozen = last is not None and result.timestamp == last.timestamp
                self.failed("meter timestamp did not advance (frozen)")
            return None
        if self.error is not None:
            log.info("meter_recovered", device=self.name, after=self.error)
        self.error = None
        self.frozen = False
        self.sample = result
        self.ok_at = self.stands_for(result, now)
        self._new_at = now
        return result

    def failed(self, reason: str) -> None:
        """The meter could not be used; logged once per distinct reason."""
        if reason != self.error:
            log.warning("meter_unavailable", device=self.name, reason=reason)
        self.error = reason


class ChargerReading:
    """One charger's newest good sample, its draw on grid phases, its age and its error."""

    #: for the day jump's state walk (``scenario/statewalk.py``): a memo of :meth:`status`
    __fuseguard_memo__ = ("_status",)

    def __init__(self, spec: ChargerSpec, config: ControllerConfig) -> None:
        self.spec = spec
        # a sample from the current or the previous poll counts as a measurement of now
        self._fresh_s = 1.5 * config.meter_period_s + config.poll_wait_s
        self._timeout_s = config.charger_timeout_s
        self._window_s = config.recently_started_window_s
        self._slow_s = config.meter_period_s  # a read this long or longer is slow
        self.sample: ChargerSample | None = None
        self.sample_at: float | None = None
        # the sample stands for the charger's state up to this instant (its read time, or later
        # while the cadence vouches that nothing about the charger moves: see Poller)
        self.vouched_at: float | None = None
        self.error: str | None = None
        self.charging_since: float | None = None
        self.grid_a: Phases = ZERO
        self.measured_age_s = 0.0
        # the last status and what it was derived from (online, sample, offer, recent start)
        self._status: tuple[bool, ChargerSample | None, int | None, bool, PlugStatus] | None = None

    def age_s(self, now: float) -> float:
        """How old the sample's measurement is now: 0 for a charger measured at the read (its
        sample stands for now while fresh), else the time since the measurement was taken."""
        if self.measured_age_s == 0.0 or self.sample_at is None:
            return 0.0
        return now - self.sample_at + self.measured_age_s

    def online(self, now: float) -> bool:
        """A good sample arrived within ``charger_timeout_s``."""
        return self.vouched_at is not None and now - self.vouched_at <= self._timeout_s

    def fresh(self, now: float) -> bool:
        """The sample is from the current or the previous poll (or vouched for until then)."""
        return self.vouched_at is not None and now - self.vouched_at <= self._fresh_s

    def read_recently(self, now: float) -> bool:
        """A good sample was actually read within the fresh window (a vouched one not counted):
        whatever the charger does now, its next read shows it."""
        return self.sample_at is not None and now - self.sample_at <= self._fresh_s

    def vouch(self, until: float) -> None:
        """The cadence reads this steady charger next at ``until``: its sample stands until then
        (``online``/``fresh`` count from ``until``)."""
        if self.sample_at is not None:
            self.vouched_at = max(self.sample_at, until)

    def doubt(self, now: float) -> None:
        """Something moved (a setpoint, the meter): the sample stands no longer than ``now``."""
        if self.vouched_at is not None and self.vouched_at > now:
            self.vouched_at = now

    def update(self, result: ChargerSample | Failed, now: float, read_s: float = 0.0) -> None:
        """Take one read's outcome (``read_s``: how long the read took).

        A slow read (a meter period or more) is as old as the read: the charger may have
        measured when it was asked, so its sample stands for the read's start
        (``measured_age_s`` at least ``read_s``). Dated at its arrival, a read that straddled a
        raise's landing showed the car at the old value with the raise already in force: no
        raise pending, the car's climb counted as building load, the raise cut back and taken
        again every ~26 s (the soak's seed 3, a 5 s charger, round 17)."""
        if isinstance(result, Failed):
            self.failed(result.reason)
            return
        if not charger_sample_ok(result):
            self.failed("charger sample has non-finite values")
            return
        pid = self.spec.id
        if self.error is not None:
            log.info("charger_recovered", charger=pid, after=self.error)
        self.error = None
        prev = self.sample
        self.sample = result
        current = result.current_a
        if current.l1 < 0 or current.l2 < 0 or current.l3 < 0:
            current = current.maximum(0.0)
        self.grid_a = self.spec.rotation.to_grid(current)
        self.sample_at = now
        self.vouched_at = now
        # a charger that reports its measurements late says how old they are (OCPP)
        age = result.measured_age_s
        age = age if is_finite_number(age) and age > 0 else 0.0
        self.measured_age_s = max(age, read_s) if read_s >= self._slow_s else age
        if result.cp_state.charging and (prev is None or not prev.cp_state.charging):
            self.charging_since = now
        elif not result.cp_state.charging:
            self.charging_since = None
        if prev is not None and prev.cp_state is not result.cp_state:
            log.info(
                "charger_state",
                charger=pid,
                cp=result.cp_state.value,
                ocpp=result.ocpp_state.value if result.ocpp_state else None,
            )

    def failed(self, reason: str) -> None:
        """A read failed; logged once per distinct reason."""
        if reason != self.error:
            log.warning("charger_unavailable", charger=self.spec.id, reason=reason)
        self.error = reason

    def note_error(self, reason: str) -> None:
        """Another part (the writer) failed to use the charger; shown until the next good read."""
        self.error = reason

    def status(self, now: float, offered_a: int | None) -> PlugStatus:
        """The plug status vocabulary of the status API, from this reading and the offer.

        :func:`plug_status` reads only whether the charger is online, the sample's states and
        errors, the offer and whether it started charging less than the window ago: with
        those the same as last time (the same sample object) the answer is the last one."""
        sample = self.sample
        since = self.charging_since
        online = self.online(now)
        recent = since is not None and now - since < self._window_s  # plug_status's test
        memo = self._status
        if (
            memo is not None
            and memo[1] is sample
            and memo[0] is online
            and memo[3] is recent
            and memo[2] == offered_a
        ):
            return memo[4]
        status = plug_status(
            online=online,
            cp=sample.cp_state if sample is not None else None,
            ocpp=sample.ocpp_state if sample is not None else None,
            offered_current_a=float(offered_a or 0),
            has_errors=bool(sample.errors) if sample is not None else False,
            charging_for_s=now - since if since is not None else None,
            recently_started_window_s=self._window_s,
        )
        self._status = (online, sample, offered_a, recent, status)
        return status


MeterCallback = Callable[[MeterSample | None, MeterSample], None]
SetpointOf = Callable[[str], tuple[int | None, float]]
"""``setpoint_of(pid)``: the setpoint last written to a charger (A, ``None``: never) and when it
last changed (clock seconds, ``-inf``: never)."""


def charger_steady(previous: ChargerSample | None, sample: ChargerSample) -> bool:
    """Nothing control uses moved between two reads: state, errors, and draw within STEADY_A."""
    if previous is None:
        return False
    if (
        previous.cp_state is not sample.cp_state
        or previous.ocpp_state is not sample.ocpp_state
        or previous.authorized != sample.authorized
        or previous.errors != sample.errors
    ):
        return False
    a, b = previous.current_a, sample.current_a
    return max(abs(a.l1 - b.l1), abs(a.l2 - b.l2), abs(a.l3 - b.l3)) < STEADY_A


__all__ = [
    "METER_DROP_A",
    "OFFSET_SAMPLES",
    "STEADY_A",
    "ChargerReading",
    "Failed",
    "MeterCallback",
    "MeterReading",
    "SetpointOf",
    "charger_sample_ok",
    "charger_steady",
    "guarded",
    "meter_sample_ok",
]
