"""The virtual-time event loop (``model/vloop.py``): it runs what CPython's loop runs, in the
same order, and polls the OS selector whenever something real may come from it."""

from __future__ import annotations

import asyncio
import signal
import socket
import threading

from fuseguard.model.clock import VirtualClock
from fuseguard.model.vloop import VirtualTimeLoop, new_virtual_time_loop


def _workload(log: list[tuple[float, str]]) -> asyncio.Future[None]:
    """Tasks sleeping on a virtual clock, waking each other, creating and cancelling tasks
    and waiting with ``asyncio.wait``: every step logged with its clock time."""

    async def main() -> None:
        clock = VirtualClock()
        event = asyncio.Event()

        async def sleeper(name: str, delay_s: float, n: int) -> None:
            for i in range(n):
                await clock.sleep(delay_s)
                log.append((clock.monotonic(), f"{name}{i}"))
                if i % 3 == 2:
                    event.set()

        async def waiter() -> None:
            while True:
                await event.wait()
                event.clear()
                log.append((clock.monotonic(), "woken"))
                short = asyncio.ensure_future(clock.sleep(0.25))
                helper = asyncio.ensure_future(asyncio.sleep(0))
                done, _ = await asyncio.wait({short, helper}, return_when=asyncio.FIRST_COMPLETED)
                log.append((clock.monotonic(), f"waited {len(done)}"))
                short.cancel()

        tasks = [
            asyncio.create_task(sleeper("a", 0.5, 40)),
            asyncio.create_task(sleeper("b", 0.75, 30)),
            asyncio.create_task(waiter()),
        ]
        await clock.run_until(25.0)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        log.append((clock.monotonic(), "end"))

    return main()  # type: ignore[return-value]


def test_the_same_steps_in_the_same_order_as_cpythons_loop() -> None:
    plain: list[tuple[float, str]] = []
    fast: list[tuple[float, str]] = []
    asyncio.run(_workload(plain))
    with asyncio.Runner(loop_factory=new_virtual_time_loop) as runner:
        runner.run(_workload(fast))
        loop = runner.get_loop()
        assert isinstance(loop, VirtualTimeLoop)
        assert loop.fast_passes > 100  # the shortcut was taken
    assert len(plain) > 100
    assert fast == plain


def test_a_registered_socket_is_polled_on_every_pass() -> None:
    """While a reader is registered the selector is polled: a byte arriving while other
    callbacks keep the ready queue busy is seen on the next pass (a loop that skipped the
    poll would see it only at its periodic full pass, thousands of passes later)."""

    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualTimeLoop)
        a, b = socket.socketpair()
        a.setblocking(False)
        seen: list[bytes] = []
        loop.add_reader(a.fileno(), lambda: seen.append(a.recv(16)))
        before = loop.fast_passes
        b.send(b"x")
        passes = 0
        while not seen and passes < 1000:
            await asyncio.sleep(0)  # the ready queue is never empty
            passes += 1
        loop.remove_reader(a.fileno())
        a.close()
        b.close()
        return passes, loop.fast_passes - before

    with asyncio.Runner(loop_factory=new_virtual_time_loop) as runner:
        passes, fast = runner.run(main())
    assert passes <= 2
    assert fast == 0


def test_an_asyncio_timer_or_a_signal_handler_makes_every_pass_a_full_one() -> None:
    async def main() -> tuple[int, int, int]:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualTimeLoop)
        handle = loop.call_later(3600.0, lambda: None)  # a real-time timer is scheduled
        before = loop.fast_passes
        for _ in range(20):
            await asyncio.sleep(0)
        with_timer = loop.fast_passes - before
        handle.cancel()
        loop.add_signal_handler(signal.SIGUSR1, lambda: None)
        before = loop.fast_passes
        for _ in range(20):
            await asyncio.sleep(0)
        with_signal = loop.fast_passes - before
        loop.remove_signal_handler(signal.SIGUSR1)
        before = loop.fast_passes
        for _ in range(20):
            await asyncio.sleep(0)
        return with_timer, with_signal, loop.fast_passes - before

    with asyncio.Runner(loop_factory=new_virtual_time_loop) as runner:
        with_timer, with_signal, without = runner.run(main())
    assert with_timer <= 1  # (the pass that drops the cancelled timer's head)
    assert with_signal == 0
    assert without >= 19


def test_a_callback_from_a_thread_runs() -> None:
    async def main() -> bool:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool] = loop.create_future()
        threading.Thread(target=lambda: loop.call_soon_threadsafe(fut.set_result, True)).start()
        while not fut.done():
            await asyncio.sleep(0)
        return fut.result()

    with asyncio.Runner(loop_factory=new_virtual_time_loop) as runner:
        assert runner.run(main()) is True
