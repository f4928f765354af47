import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from fuseguard.model.clock import RealClock, VirtualClock


async def test_virtual_clock_runs_hours_instantly_and_in_order() -> None:
    clock = VirtualClock()
    seen: list[tuple[str, float]] = []

    async def ticker(name: str, period: float) -> None:
        while True:
            await clock.sleep(period)
            seen.append((name, clock.monotonic()))

    tasks = [asyncio.create_task(ticker("fast", 1.0)), asyncio.create_task(ticker("slow", 30.0))]
    loop = asyncio.get_running_loop()
    wall0 = loop.time()
    await clock.run_until(3600.0)
    wall = loop.time() - wall0
    for t in tasks:
        t.cancel()
    assert sum(1 for n, _ in seen if n == "fast") == 3600
    assert sum(1 for n, _ in seen if n == "slow") == 120
    times = [t for _, t in seen]
    assert times == sorted(times)
    assert clock.now() == clock.now().replace() and clock.monotonic() == 3600.0
    assert wall < 30  # generous: the point is that it does not take an hour


async def test_virtual_timers_cancel_and_now() -> None:
    start = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)
    clock = VirtualClock(start)
    fired: list[float] = []
    h = clock.call_later(10, lambda: fired.append(clock.monotonic()))
    clock.call_later(5, lambda: fired.append(clock.monotonic()))
    h.cancel()
    await clock.advance(20)
    assert fired == [5.0]
    assert clock.now() == start + timedelta(seconds=20)
    assert clock.next_deadline() is None


def test_virtual_clock_needs_aware_start() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        VirtualClock(datetime(2026, 1, 1))


async def test_real_clock() -> None:
    clock = RealClock()
    t0 = clock.monotonic()
    await clock.sleep(0.01)
    assert clock.monotonic() > t0
    assert clock.now().tzinfo is UTC
    fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    clock.call_later(0.01, lambda: fut.set_result(None))
    await asyncio.wait_for(fut, 1)
