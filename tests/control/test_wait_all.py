"""``control/waiting.py``'s ``wait_all`` runs in the same loop passes as the helper-task wait it
replaced: on random workloads (reads finishing after some passes or some clock time, already
done, never; other tasks stepping every pass; timeouts; waits one after the other; the waiting
task cancelled), the log of every step of every task is the same with both, in the same order.
And the comparison sees a hop more or less (mutants)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import pytest

from fuseguard.control import waiting
from fuseguard.control.polling import Poller
from fuseguard.model.clock import Clock, VirtualClock

Wait = Callable[[Clock, list[asyncio.Task[None]], float], Awaitable[None]]


async def helper_tasks_wait(
    clock: Clock, tasks: list[asyncio.Task[None]], timeout_s: float
) -> None:
    """The poller's wait before round 16 (``Poller._wait_for``), verbatim."""
    pending = [t for t in tasks if not t.done()]
    if not pending:
        return
    everything = asyncio.ensure_future(asyncio.wait(pending))
    timer = asyncio.ensure_future(clock.sleep(timeout_s))
    try:
        await asyncio.wait({everything, timer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        everything.cancel()
        timer.cancel()


def _workload(seed: int, wait: Wait) -> list[tuple[object, ...]]:
    """Run one random workload with ``wait``; the log of every step, with the clock's time."""
    rng = random.Random(seed)
    # a short settle lets timers fire while tasks still step (the chains overlap the others)
    clock = VirtualClock(settle_passes=rng.choice([200, 200, 2, 4, 8]))
    log: list[tuple[object, ...]] = []

    async def read(name: str, passes: int, delay_s: float | None) -> None:
        for i in range(passes):
            log.append((clock.monotonic(), name, "pass", i))
            await asyncio.sleep(0)
        if delay_s is not None:
            await clock.sleep(delay_s)
        log.append((clock.monotonic(), name, "done"))

    async def ticker(name: str, passes: int, every_s: float) -> None:
        for round_ in range(4):
            for i in range(passes):
                log.append((clock.monotonic(), name, round_, i))
                await asyncio.sleep(0)
            await clock.sleep(every_s)

    def start_read(name: str) -> asyncio.Task[None]:
        passes = rng.choice([0, 0, 1, 2, 3, 5, 8])
        delay = rng.choice([None, None, 0.0, 0.1, 0.5, 1.0, 3.0, 100.0])
        return asyncio.create_task(read(name, passes, delay))

    async def waiter() -> None:
        for k in range(rng.randint(1, 4)):
            reads = [start_read(f"r{k}.{i}") for i in range(rng.randint(1, 5))]
            for _ in range(rng.choice([0, 0, 1, 2])):
                log.append((clock.monotonic(), "waiter", k, "yield"))
                await asyncio.sleep(0)
            timeout = rng.choice([0.0, 0.05, 0.5, 1.0, 2.0, 10.0])
            log.append((clock.monotonic(), "waiter", k, "waits", timeout))
            await wait(clock, reads, timeout)
            log.append((clock.monotonic(), "waiter", k, "woke", tuple(r.done() for r in reads)))
            if rng.random() < 0.3:
                await clock.sleep(rng.choice([0.0, 0.5]))

    async def main() -> None:
        tickers = [
            asyncio.create_task(ticker(f"t{i}", rng.randint(1, 9), rng.choice([0.1, 0.5, 1.0])))
            for i in range(rng.randint(1, 4))
        ]
        task = asyncio.create_task(waiter())
        cancel_at = rng.choice([None, None, None, 0.3, 1.0])
        if cancel_at is not None:
            clock.call_later(cancel_at, task.cancel)
        await clock.run_until(30.0)
        log.append((clock.monotonic(), "end", task.done(), task.cancelled()))
        for t in [*tickers, task]:
            t.cancel()
        await asyncio.gather(*tickers, task, return_exceptions=True)

    asyncio.run(main())
    return log


def _new(clock: Clock, tasks: list[asyncio.Task[None]], timeout_s: float) -> Awaitable[None]:
    return waiting.wait_all(clock, tasks, timeout_s)


@pytest.mark.parametrize("seed", range(300))
def test_same_steps_in_the_same_order(seed: int) -> None:
    before = _workload(seed, helper_tasks_wait)
    assert len(before) >= 5
    assert _workload(seed, _new) == before


def test_the_workloads_cover_both_ends_and_a_cancel() -> None:
    """Among the seeds: waits ended by their reads, by their timeout, and a cancelled waiter."""
    woke_done = woke_timeout = cancelled = 0
    for seed in range(300):
        for entry in _workload(seed, _new):
            if entry[1] == "waiter" and entry[3] == "woke":
                done = entry[4]
                assert isinstance(done, tuple)
                woke_done += all(done)
                woke_timeout += not all(done)
            if entry[1] == "end" and entry[3]:
                cancelled += 1
    assert woke_done > 50
    assert woke_timeout > 50
    assert cancelled > 10


@pytest.mark.parametrize(
    "mutant",
    ["no hop after the last read", "extra hop after the timer", "wakes on the first read"],
)
def test_a_hop_more_or_less_is_seen(mutant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison is sharp: a wait one pass early or late on either chain differs."""
    cls = waiting._AllOrTimeout
    if mutant == "no hop after the last read":
        monkeypatch.setattr(cls, "_all_done", cls._first_done)
    elif mutant == "extra hop after the timer":
        slept = cls._slept

        def late(self: waiting._AllOrTimeout) -> None:
            if not self.over:
                asyncio.get_running_loop().call_soon(slept, self)

        monkeypatch.setattr(cls, "_slept", late)
    else:

        def first(self: waiting._AllOrTimeout, _read: asyncio.Future[None]) -> None:
            if not self.over:
                asyncio.get_running_loop().call_soon(self._all_done)

        monkeypatch.setattr(cls, "_read_done", first)
    differ = sum(_workload(seed, _new) != _workload(seed, helper_tasks_wait) for seed in range(60))
    assert differ > 0


def test_the_poller_waits_with_it() -> None:
    assert "wait_all" in Poller._wait_for.__code__.co_names
