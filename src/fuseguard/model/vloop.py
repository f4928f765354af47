"""An asyncio event loop for virtual time that skips the OS selector while it cannot matter.

Under :class:`~fuseguard.model.clock.VirtualClock` nothing waits on real I/O: every loop pass
has a ready callback (the clock's ``settle`` yields until none is left), so CPython's
``_run_once`` polls the selector with timeout 0 on every pass (``epoll_wait`` and its Python
wrapper, ~15 passes per simulated second), to find nothing.

:class:`VirtualTimeLoop` runs such a pass without the poll when the poll can only return the
loop's own self-pipe: callbacks are ready, no asyncio timer is scheduled (``loop.call_later``:
real time), no file descriptor but the self-pipe is registered (a companion's socket makes every
pass a full one again) and no signal handler is installed (their wake-up goes through the
self-pipe). What such a pass does is then exactly CPython's pass: the ready callbacks present
at its start run in order, cancelled ones are dropped. The one thing deferred is the draining of
the self-pipe, which ``call_soon_threadsafe`` writes a byte to after appending its callback to
the ready queue itself: the callback runs as before, only the byte is read later (a full pass
every ``FULL_PASS_EVERY`` passes reads it; the simulator starts no thread in virtual time).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sized
from typing import Any

FULL_PASS_EVERY = 4096
"""A full pass (selector poll included) at least this often, whatever the state."""


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """The default selector loop with a pass that skips the poll when it cannot matter (see
    the module docstring); ``fast_passes`` counts those passes."""

    def __init__(self) -> None:
        super().__init__()
        loop: Any = self
        self._v_ready: deque[asyncio.Handle] = loop._ready
        self._v_scheduled: Sized = loop._scheduled
        selector: Any = loop._selector
        fds = getattr(selector, "_fd_to_key", None)
        self._v_fds: Sized = fds if fds is not None else {0: None, 1: None}  # unknown: never
        self._v_signals: Sized = getattr(loop, "_signal_handlers", {})
        self._v_left = FULL_PASS_EVERY
        self.fast_passes = 0

    def _run_once(self) -> None:
        ready = self._v_ready
        if (
            ready
            and self._v_left
            and not self._v_scheduled
            and len(self._v_fds) <= 1
            and not self._v_signals
            and not self.get_debug()
        ):
            self._v_left -= 1
            self.fast_passes += 1
            for _ in range(len(ready)):
                handle = ready.popleft()
                if not handle.cancelled():
                    handle._run()
            return
        self._v_left = FULL_PASS_EVERY
        super()._run_once()  # type: ignore[misc]


def new_virtual_time_loop() -> asyncio.AbstractEventLoop:
    """A :class:`VirtualTimeLoop` (an ``asyncio.Runner`` ``loop_factory``)."""
    return VirtualTimeLoop()


__all__ = ["FULL_PASS_EVERY", "VirtualTimeLoop", "new_virtual_time_loop"]
