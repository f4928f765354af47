"""The one source of time.

Nothing in fuseguard calls ``time.time``, ``datetime.now`` or ``asyncio.sleep`` for control
purposes directly: it is handed a :class:`Clock`. :class:`RealClock` runs in wall time (``run``,
``demo``); :class:`VirtualClock` jumps from deadline to deadline, so hours of control run in
seconds (``simulate``, tests).

Virtual time is driven from outside: :meth:`VirtualClock.advance` (or :meth:`run_until`) moves
``now`` to each pending deadline in order, wakes the sleepers due then and lets the event loop run
every task that became ready before moving on. Code under virtual time must therefore not wait on
real I/O (the scenario runner talks to in-process virtual devices).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class TimerHandle(Protocol):
    """A scheduled callback that can be cancelled."""

    def cancel(self) -> None:
        """Do not run the callback."""


class Clock(Protocol):
    """Injected time: wall clock, monotonic seconds, sleeping and timers."""

    def now(self) -> datetime:
        """Current time, timezone-aware UTC."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""

    async def sleep(self, delay_s: float) -> None:
        """Wait ``delay_s`` seconds of this clock's time."""

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` after ``delay_s`` seconds."""


class RealClock:
    """Wall-clock time on the running asyncio loop."""

    def now(self) -> datetime:
        """Current UTC time."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    async def sleep(self, delay_s: float) -> None:
        """``asyncio.sleep``."""
        await asyncio.sleep(max(0.0, delay_s))

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> TimerHandle:
        """``loop.call_later``."""
        return asyncio.get_running_loop().call_later(max(0.0, delay_s), callback)


class _VirtualTimer:
    __slots__ = ("callback", "cancelled")

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


DEFAULT_EPOCH = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)


class VirtualClock:
    """Simulated time that advances only when told to, instantly.

    >>> clock = VirtualClock()
    >>> clock.monotonic()
    0.0
    """

    def __init__(self, start: datetime = DEFAULT_EPOCH, *, settle_passes: int = 200) -> None:
        if start.tzinfo is None:
            msg = "VirtualClock needs a timezone-aware start"
            raise ValueError(msg)
        self._start = start
        self._t = 0.0
        self._heap: list[tuple[float, int, _VirtualTimer]] = []
        self._seq = itertools.count()
        self._settle_passes = settle_passes

    def now(self) -> datetime:
        """Start time plus elapsed virtual seconds."""
        return self._start + timedelta(seconds=self._t)

    def monotonic(self) -> float:
        """Elapsed virtual seconds since start."""
        return self._t

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> TimerHandle:
        """Schedule ``callback`` at ``now + delay_s`` of virtual time."""
        timer = _VirtualTimer(callback)
        heapq.heappush(self._heap, (self._t + max(0.0, delay_s), next(self._seq), timer))
        return timer

    async def sleep(self, delay_s: float) -> None:
        """Wait until virtual time has advanced by ``delay_s``."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not fut.done():
                fut.set_result(None)

        timer = self.call_later(delay_s, wake)
        try:
            await fut
        finally:
            timer.cancel()

    def pending(self) -> list[tuple[float, Callable[[], None]]]:
        """The live timers, in the order they will fire: (deadline, callback); read-only (the
        scenario runner's day-jump proof compares them, ``scenario/statewalk.py``)."""
        live = sorted((d, seq, t) for d, seq, t in self._heap if not t.cancelled)
        return [(d, t.callback) for d, _seq, t in live]

    def next_deadline(self) -> float | None:
        """Virtual time of the next live timer, or None."""
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    async def settle(self) -> None:
        """Let every task that is ready run until it blocks again.

        Yields to the loop until nothing is ready any more (CPython's loop exposes its ready
        queue), at most ``settle_passes`` times; on a loop without that, a fixed number of
        passes. Exact in virtual time, where no task waits on real I/O.
        """
        ready = getattr(asyncio.get_running_loop(), "_ready", None)
        for _ in range(self._settle_passes if ready is not None else 20):
            await asyncio.sleep(0)
            if ready is not None and not ready:
                return

    async def advance(self, delta_s: float) -> None:
        """Move time forward by ``delta_s``, firing every timer due on the way, in order."""
        await self.run_until(self._t + delta_s)

    async def run_until(self, t_s: float) -> None:
        """Move time to ``t_s`` (monotonic seconds), firing due timers in deadline order."""
        await self.settle()
        while True:
            deadline = self.next_deadline()
            if deadline is None or deadline > t_s:
                break
            _, _, timer = heapq.heappop(self._heap)
            self._t = max(self._t, deadline)
            if not timer.cancelled:
                timer.cancelled = True
                timer.callback()
            await self.settle()
        self._t = max(self._t, t_s)
        await self.settle()
