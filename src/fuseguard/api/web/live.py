"""Server-Sent Events for the live page: one controller listener, any number of viewers.

:class:`LiveHub` subscribes once to :meth:`Controller.subscribe`; per cycle it only stores the
status and wakes the viewers (no work in the control loop when nobody watches). Each viewer's
stream renders the newest status when woken, so a slow browser skips cycles instead of queueing
them. Without a new cycle for :data:`PING_S` a ``ping`` event (with the server time) tells the
page that the connection is alive although the data is not moving (the page then says "stale").
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from fuseguard.control.types import ControllerStatus

PING_S = 3.0
#: Viewers at once; more get 503 (each holds a connection and renders every cycle).
MAX_VIEWERS = 50
RETRY_MS = 2000


def sse_event(event: str, data: Any) -> bytes:
    """One SSE frame (``data`` as one line of JSON)."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class LiveHub:
    """Fan-out of the controller's status stream to SSE viewers."""

    def __init__(
        self,
        render: Callable[[ControllerStatus], dict[str, Any]],
        current: Callable[[], ControllerStatus] | None = None,
    ) -> None:
        self._render = render
        self._latest: ControllerStatus | None = current() if current is not None else None
        self._seq = 0
        self._wakers: set[asyncio.Event] = set()
        self._closing = False

    @property
    def viewers(self) -> int:
        """Open streams."""
        return len(self._wakers)

    @property
    def full(self) -> bool:
        """No room for another viewer."""
        return len(self._wakers) >= MAX_VIEWERS

    def on_status(self, status: ControllerStatus) -> None:
        """Controller listener: remember the newest status and wake the viewers (cheap)."""
        self._latest = status
        self._seq += 1
        for waker in self._wakers:
            waker.set()

    def close(self) -> None:
        """End every stream (server shutdown)."""
        self._closing = True
        for waker in self._wakers:
            waker.set()

    async def stream(self, now_iso: Callable[[], str]) -> AsyncIterator[bytes]:
        """The SSE byte stream of one viewer: the current status at once, then every new one."""
        waker = asyncio.Event()
        self._wakers.add(waker)
        try:
            yield f"retry: {RETRY_MS}\n\n".encode()
            seen = -1  # the status known at connect time (if any) goes out at once
            while not self._closing:
                waker.clear()
                if self._latest is not None and self._seq != seen:
                    seen = self._seq
                    yield sse_event("status", self._render(self._latest))
                    continue
                try:
                    await asyncio.wait_for(waker.wait(), PING_S)
                except TimeoutError:
                    yield sse_event("ping", {"time": now_iso()})
        finally:
            self._wakers.discard(waker)


__all__ = ["MAX_VIEWERS", "PING_S", "LiveHub", "sse_event"]
