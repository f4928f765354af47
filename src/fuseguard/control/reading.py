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
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from fuseguard.control.ports import Charger, DeviceError, GridMeter
from fuseguard.control.types import ChargerSpec, ControllerConfig, MeterTiming
from fuseguard.model.clock import Clock
from fuseguard.model.numbers import is_finite_number
from fuseguard.model.phases import ZERO, Phases
from fuseguard.model.samples import ChargerSample, MeterSample
from fuseguard.model.status import PlugStatus, plug_status

log = structlog.get_logger(__name__)

T = TypeVar("T")

STEADY_A = 1.0
"""A charger whose draw moved less than this (A, any phase) since its last read is steady."""
METER_DROP_A = 2.0
"""A meter drop this large (A, any phase) below its high since the last sweep reads every
charger at once (a charger that draws less than its last sample is the one error of a steady
charger's sample that is not on the safe side)."""


@dataclass(frozen=True, slots=True)
class Failed:
    """A device call that did not work; ``reason`` says why in plain words."""

    reason: str


async def guarded(
    call: Callable[[], Awaitable[T]], *, device: str, timeout_s: float | None = None
) -> T | Failed:
    """Await ``call()``; any device error, timeout or driver bug becomes :class:`Failed`.

    A driver bug (any other exception) is logged with its traceback, naming the device: it must
    not stop control, but it must be loud. Cancellation is not a failure and propagates.
    """
    try:
        if timeout_s is None:
            return await call()
        async with asyncio.timeout(timeout_s):
            return await call()
    except DeviceError as err:
        return Failed(str(err) or type(err).__name__)
    except TimeoutError as err:
        if timeout_s is not None and not str(err):
            return Failed(f"no answer within {timeout_s:g} s")
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
        self.ok_at: float | None = None
        self.error: str | None = None

    @property
    def period_s(self) -> float:
        """How often this meter sends a new value."""
        return self._period_s

    def fresh(self, now: float) -> bool:
        """A good sample arrived within ``meter_stale_after_s``."""
        return self.ok_at is not None and now - self.ok_at <= self._stale_after_s

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
            # lasting repeat is a frozen meter
            last_ok = self.ok_at if self.ok_at is not None else -math.inf
            if now - last_ok > 2 * self._period_s:
                self.failed("meter timestamp did not advance (frozen)")
            return None
        if self.error is not None:
            log.info("meter_recovered", device=self.name, after=self.error)
        self.error = None
        self.sample = result
        self.ok_at = now
        return result

    def failed(self, reason: str) -> None:
        """The meter could not be used; logged once per distinct reason."""
        if reason != self.error:
            log.warning("meter_unavailable", device=self.name, reason=reason)
        self.error = reason


class ChargerReading:
    """One charger's newest good sample, its draw on grid phases, its age and its error."""

    def __init__(self, spec: ChargerSpec, config: ControllerConfig) -> None:
        self.spec = spec
        # a sample from the current or the previous poll counts as a measurement of now
        self._fresh_s = 1.5 * config.meter_period_s + config.poll_wait_s
        self._timeout_s = config.charger_timeout_s
        self._window_s = config.recently_started_window_s
        self.sample: ChargerSample | None = None
        self.sample_at: float | None = None
        # the sample stands for the charger's state up to this instant (its read time, or later
        # while the cadence vouches that nothing about the charger moves: see Poller)
        self.vouched_at: float | None = None
        self.error: str | None = None
        self.charging_since: float | None = None
        self.grid_a: Phases = ZERO

    def online(self, now: float) -> bool:
        """A good sample arrived within ``charger_timeout_s``."""
        return self.vouched_at is not None and now - self.vouched_at <= self._timeout_s

    def fresh(self, now: float) -> bool:
        """The sample is from the current or the previous poll (or vouched for until then)."""
        return self.vouched_at is not None and now - self.vouched_at <= self._fresh_s

    def vouch(self, until: float) -> None:
        """The cadence reads this steady charger next at ``until``: its sample stands until then
        (``online``/``fresh`` count from ``until``)."""
        if self.sample_at is not None:
            self.vouched_at = max(self.sample_at, until)

    def doubt(self, now: float) -> None:
        """Something moved (a setpoint, the meter): the sample stands no longer than ``now``."""
        if self.vouched_at is not None and self.vouched_at > now:
            self.vouched_at = now

    def update(self, result: ChargerSample | Failed, now: float) -> None:
        """Take one read's outcome."""
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
        """The plug status vocabulary of the status API, from this reading and the offer."""
        sample = self.sample
        since = self.charging_since
        return plug_status(
            online=self.online(now),
            cp=sample.cp_state if sample is not None else None,
            ocpp=sample.ocpp_state if sample is not None else None,
            offered_current_a=float(offered_a or 0),
            has_errors=bool(sample.errors) if sample is not None else False,
            charging_for_s=now - since if since is not None else None,
            recently_started_window_s=self._window_s,
        )


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


class Poller:
    """The poll loop (see module docstring). ``on_meter(previous, sample)`` is called for every
    new good meter sample; ``on_polled()`` after every full-period poll (the meter and the
    chargers due then).

    Charger cadence (``charger_idle_poll_s`` above the meter period): a charger is read every
    period until a read finds it steady (see :func:`charger_steady`) and drawing at most its
    setpoint (+ STEADY_A); then every ``charger_idle_poll_s``, and its sample is vouched for
    until the next read. It is read at the next period again, and its sample no longer vouched
    for beyond that instant, when its setpoint is raised, when its setpoint is lowered below its
    last measured draw (+ STEADY_A: the car must come down), or when the meter dropped by
    METER_DROP_A below its high since the last such sweep (the meter sees every charger's draw;
    see docs/safety.md). A charger with an error (a failed read or write) is read every period.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        config: ControllerConfig,
        meter: GridMeter,
        meter_reading: MeterReading,
        chargers: Mapping[str, Charger],
        readings: Mapping[str, ChargerReading],
        on_meter: MeterCallback,
        on_polled: Callable[[], None],
        setpoint_of: SetpointOf | None = None,
    ) -> None:
        self._clock = clock
        self._config = config
        self._meter = meter
        self._meter_reading = meter_reading
        self._chargers = dict(chargers)
        self._readings = dict(readings)
        self._on_meter = on_meter
        self._on_polled = on_polled
        self._setpoint_of = setpoint_of
        period = config.meter_period_s
        self._idle_s = config.charger_idle_poll_s if config.charger_idle_poll_s > period else 0.0
        self._due = dict.fromkeys(self._chargers, -math.inf)  # next read of a steady charger
        self._read_at = dict.fromkeys(self._chargers, -math.inf)  # last read started
        self._read_sp: dict[str, int | None] = dict.fromkeys(self._chargers)  # setpoint then
        self._sweep = False  # the meter dropped: read every charger at the next period
        self._meter_high: tuple[Phases, float] | None = None  # (currents, power) since the sweep
        self._tick = 0.0

    async def read_meter(self) -> None:
        """Read the meter once and take the outcome."""
        result = await guarded(self._meter.read, device=self._meter_reading.name)
        previous = self._meter_reading.sample
        sample = self._meter_reading.update(result, self._clock.monotonic())
        if sample is not None:
            if self._idle_s and self._meter_dropped(sample):
                self._sweep = True
            self._on_meter(previous, sample)

    async def read_charger(self, pid: str) -> None:
        """Read one charger once, take the outcome and schedule its next read."""
        started = self._tick
        result = await guarded(self._chargers[pid].read, device=pid)
        reading = self._readings[pid]
        previous = reading.sample
        reading.update(result, self._clock.monotonic())
        if not self._idle_s:
            return
        if reading.sample is result and self._settled(pid, previous, reading.sample):
            self._due[pid] = started + self._idle_s
            reading.vouch(started + self._idle_s)
        else:
            self._due[pid] = -math.inf

    def _settled(self, pid: str, previous: ChargerSample | None, sample: ChargerSample) -> bool:
        """The read shows the charger steady and following its last setpoint change."""
        if not charger_steady(previous, sample):
            return False
        if self._setpoint_of is None:
            return True
        written_a = self._setpoint_of(pid)[0]
        return written_a is None or sample.current_a.max <= written_a + STEADY_A

    def _meter_dropped(self, sample: MeterSample) -> bool:
        """The meter dropped by METER_DROP_A below its high since the last sweep."""
        current = sample.current_a if sample.current_a is not None else ZERO
        high = self._meter_high
        if high is None:
            self._meter_high = (current, sample.power_w)
            return False
        high_a, drop_a = high[0], 0.0
        if sample.current_a is not None:
            high_a = high_a.maximum(current)
            drop_a = (high_a - current).max
        high_w = max(high[1], sample.power_w)
        drop_a = max(drop_a, (high_w - sample.power_w) / self._config.voltage_v)
        if drop_a < METER_DROP_A:
            self._meter_high = (high_a, high_w)
            return False
        self._meter_high = (current, sample.power_w)
        return True

    def _due_chargers(self, now: float) -> list[str]:
        """The chargers to read in the poll at ``now`` (all of them without an idle cadence)."""
        if not self._idle_s:
            return list(self._chargers)
        sweep, self._sweep = self._sweep, False
        slack = self._config.meter_period_s / 4.0  # scheduling jitter
        due: list[str] = []
        for pid in self._chargers:
            early = now + slack < self._due[pid]
            quiet = self._readings[pid].error is None and not self._changed_since_read(pid)
            if early and not sweep and quiet:
                continue
            if early:
                self._readings[pid].doubt(now)
            elif self._due[pid] > -math.inf and quiet:
                self._readings[pid].vouch(now)  # its read is due: the sample stands until it lands
            self._read_at[pid] = now
            if self._setpoint_of is not None:
                self._read_sp[pid] = self._setpoint_of(pid)[0]
            due.append(pid)
        return due

    def _changed_since_read(self, pid: str) -> bool:
        """The setpoint was raised, or lowered below the draw, since the last read started."""
        if self._setpoint_of is None:
            return False
        written_a, changed_at = self._setpoint_of(pid)
        if changed_at < self._read_at[pid]:
            return False
        before = self._read_sp[pid]
        sample = self._readings[pid].sample
        if written_a is None or before is None or written_a > before or sample is None:
            return True
        return written_a < sample.current_a.max + STEADY_A

    def _read(self, key: str | None) -> Coroutine[Any, Any, None]:
        return self.read_meter() if key is None else self.read_charger(key)

    async def run(self) -> None:
        """Poll until cancelled (key ``None`` is the meter)."""
        half = self._config.meter_period_s / 2.0
        inflight: dict[str | None, tuple[asyncio.Task[None], float]] = {}
        chargers_due = True
        try:
            while True:
                started = self._clock.monotonic()
                self._tick = started
                keys: list[str | None] = [None]
                if chargers_due:
                    keys.extend(self._due_chargers(started))
                for key in keys:
                    running = inflight.get(key)
                    if running is not None and not running[0].done():
                        self._abandon_if_late(key, running, started)
                        continue
                    inflight[key] = (asyncio.create_task(self._read(key)), started)
                waiting = [inflight[k][0] for k in keys if k in inflight]
                await self._wait_for(waiting, self._config.poll_wait_s)
                if chargers_due:
                    self._on_polled()  # meter and chargers read at the same instant
                chargers_due = not chargers_due
                await self._clock.sleep(max(0.0, half - (self._clock.monotonic() - started)))
        finally:
            for task, _ in inflight.values():
                task.cancel()

    def _abandon_if_late(
        self, key: str | None, running: tuple[asyncio.Task[None], float], now: float
    ) -> None:
        """Cancel a read that has been waiting longer than its device's timeout."""
        task, since = running
        cfg = self._config
        timeout = cfg.meter_timeout_s if key is None else cfg.charger_timeout_s
        if now - since < timeout:
            return
        task.cancel()
        reason = f"no answer within {timeout:g} s"
        if key is None:
            self._meter_reading.failed(reason)
        else:
            self._readings[key].failed(reason)

    async def _wait_for(self, tasks: list[asyncio.Task[None]], timeout_s: float) -> None:
        """Wait until every task is done or ``timeout_s`` of clock time has passed."""
        pending = [t for t in tasks if not t.done()]
        if not pending:
            return
        everything = asyncio.ensure_future(asyncio.wait(pending))
        timer = asyncio.ensure_future(self._clock.sleep(timeout_s))
        try:
            await asyncio.wait({everything, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            everything.cancel()
            timer.cancel()


async def _read_within(
    clock: Clock, meter: GridMeter, name: str, timeout_s: float
) -> MeterSample | Failed:
    """One guarded read bounded by ``timeout_s`` of clock time (virtual time too)."""
    read = asyncio.ensure_future(guarded(meter.read, device=name))
    timer = asyncio.ensure_future(clock.sleep(timeout_s))
    try:
        await asyncio.wait({read, timer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        timer.cancel()
        answered = read.done()
        if not answered:
            read.cancel()
    return read.result() if answered else Failed(f"no answer within {timeout_s:g} s")


async def poll_meter(
    *,
    clock: Clock,
    meter: GridMeter,
    reading: MeterReading,
    timeout_s: float,
    on_sample: MeterCallback,
) -> None:
    """Poll one further meter (a circuit's, the PV meter) until cancelled: twice per its period,
    each read bounded by ``timeout_s``, so a hanging meter only goes stale and holds up nothing."""
    half = reading.period_s / 2.0
    while True:
        started = clock.monotonic()
        result = await _read_within(clock, meter, reading.name, timeout_s)
        previous = reading.sample
        sample = reading.update(result, clock.monotonic())
        if sample is not None:
            on_sample(previous, sample)
        await clock.sleep(max(0.0, half - (clock.monotonic() - started)))


__all__ = [
    "ChargerReading",
    "Failed",
    "MeterReading",
    "Poller",
    "SetpointOf",
    "charger_sample_ok",
    "charger_steady",
    "guarded",
    "meter_sample_ok",
    "poll_meter",
]
