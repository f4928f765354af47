"""Waiting for the poller's reads: every read done, or a clock timeout, whichever comes first.

:func:`wait_all` is what the poller did before round 16 with two helper tasks,

    everything = asyncio.ensure_future(asyncio.wait(pending))
    timer = asyncio.ensure_future(clock.sleep(timeout_s))
    await asyncio.wait({everything, timer}, return_when=asyncio.FIRST_COMPLETED)
    # finally: everything.cancel(); timer.cancel()

without the tasks: plain callbacks at the same places in the event loop's ready queue. The
waiting task wakes in the same loop pass and at the same place in it as before, so every
other callback runs in the same order against it (round p5 found that moving the poller's
wake-up by a pass moves results). The hops replayed, one loop pass each (``call_soon``):

- the helpers' first steps (both queued at the call, one after the other): the first registers
  a done callback on every read (``asyncio.wait``'s ``_on_completion``; at once on a read done
  by then), the second starts the clock timer (``clock.sleep``'s ``call_later``);
- the last read done -> its callback -> the ``asyncio.wait`` helper wakes -> that helper done
  -> the outer ``asyncio.wait``'s callback sets the waiter -> the waiting task wakes;
- the timer fires -> the sleeping helper wakes -> that helper done -> the outer callback (the
  first of the two chains to get there sets the waiter, as before).

What is left out only ever ran without effect: the steps that cancel the helper still pending
when the waiter wakes (its clock timer is cancelled at the wake instead of one pass later: the
virtual clock reads its timers only once the loop has settled) and callbacks that found their
waiter already done. ``tests/control/test_wait_all.py`` compares the order of every step with
the helper-task version on random workloads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from fuseguard.model.clock import Clock, TimerHandle


class _AllOrTimeout:
    """One wait (see module docstring): the chains of callbacks and the waiter they set."""

    __slots__ = ("_left", "_loop", "_on_done", "_reads", "over", "timer", "waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop, reads: set[asyncio.Future[None]]) -> None:
        self._loop = loop
        self._reads = reads
        self._left = len(reads)  # reads not done yet (``asyncio.wait``'s counter)
        self._on_done = self._read_done  # one bound method: removed by equality
        self.waiter: asyncio.Future[None] = loop.create_future()
        self.timer: TimerHandle | None = None
        self.over = False  # the waiting task woke (or was cancelled): every chain stops

    def start(self, clock: Clock, timeout_s: float) -> None:
        """The two helpers' first steps (queued together at the call, so one callback)."""
        if self.over:
            return  # cancelled before they ran: a task cancelled before its first step
        for read in self._reads:
            read.add_done_callback(self._on_done)
        self.timer = clock.call_later(timeout_s, self._timed_out)

    def _read_done(self, _read: asyncio.Future[None]) -> None:
        """``asyncio.wait``'s ``_on_completion`` (ALL_COMPLETED): the last read wakes its
        helper task (at the next pass)."""
        self._left -= 1
        if self._left == 0 and not self.over:
            self._loop.call_soon(self._all_done)

    def _all_done(self) -> None:
        """The ``asyncio.wait`` helper woke: it removes its callbacks and is done; its done
        callback (the outer wait's) runs at the next pass."""
        if self.over:
            return
        for read in self._reads:
            read.remove_done_callback(self._on_done)
        self._loop.call_soon(self._first_done)

    def _timed_out(self) -> None:
        """The clock timer fired: the sleeping helper wakes at the next pass."""
        if not self.over:
            self._loop.call_soon(self._slept)

    def _slept(self) -> None:
        """The sleeping helper woke and is done: the outer wait's callback at the next pass."""
        if not self.over:
            self._loop.call_soon(self._first_done)

    def _first_done(self) -> None:
        """The outer ``asyncio.wait``'s callback (FIRST_COMPLETED): wakes the waiting task
        (at the next pass), unless the other helper's got there first."""
        if not self.waiter.done():
            self.waiter.set_result(None)

    def close(self) -> None:
        """The waiting task woke (or was cancelled): stop every chain, cancel the timer."""
        self.over = True
        if self.timer is not None:
            self.timer.cancel()
        for read in self._reads:
            if not read.done():
                read.remove_done_callback(self._on_done)


async def wait_all(clock: Clock, reads: Iterable[asyncio.Future[None]], timeout_s: float) -> None:
    """Wait until every one of ``reads`` is done or ``timeout_s`` of clock time has passed
    (returns at once, without yielding, when every read is done already)."""
    pending = {r for r in reads if not r.done()}
    if not pending:
        return
    loop = asyncio.get_running_loop()
    wait = _AllOrTimeout(loop, pending)
    loop.call_soon(wait.start, clock, timeout_s)
    try:
        await wait.waiter
    finally:
        wait.close()


__all__ = ["wait_all"]
