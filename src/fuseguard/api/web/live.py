"""Server-Sent Events for the live page: one controller listener, any number of viewers.

:class:`LiveHub` subscribes once to :meth:`Controller.subscribe`. Per cycle the listener only
stores the status and bumps a counter; waking the viewers is scheduled for after the cycle
(``call_soon``), so the control loop does no per-viewer work (and nothing at all when nobody
watches). The ``status`` event is rendered and encoded once per cycle, by the first viewer that
wakes up, and the same bytes go to every viewer (:meth:`LiveHub.frame`). A viewer always gets
the newest frame when it wakes, so a slow browser skips cycles instead of queueing them. Without
a new cycle for :data:`PING_S` a ``ping`` event (with the server time) tells the page that the
connection is alive although the data is not moving (the page then says "stale").

The hub is generic in what it is fed: the edge feeds it controller statuses (rendered by
:meth:`WebDeps.view`), the cloud's edge page feeds it the live snapshots an edge relays over
MQTT (already rendered by that edge, see :mod:`fuseguard.cloud.live`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, TypeVar

from fuseguard.control.types import ControllerStatus

PING_S = 3.0
#: Viewers at once; more get 503 (each holds a connection).
MAX_VIEWERS = 50
RETRY_MS = 2000

S = TypeVar("S")


def sse_event(event: str, data: Any) -> bytes:
    """One SSE frame (``data`` as one line of JSON)."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class LiveHub(Generic[S]):
    """Fan-out of a status stream to SSE viewers, one rendering per status."""

    def __init__(
        self,
        render: Callable[[S], dict[str, Any]],
        current: Callable[[], S | None] | None = None,
    ) -> None:
        self._render = render
        self._latest: S | None = current() if current is not None else None
        self._seq = 0
        self._frame: tuple[int, bytes] | None = None
        self._changed = asyncio.Event()
        self._wake_pending = False
        self._viewers = 0
        self._closing = False
        #: ``status`` frames rendered so far (one per status that a viewer saw).
        self.renders = 0

    @property
    def viewers(self) -> int:
        """Open streams."""
        return self._viewers

    @property
    def full(self) -> bool:
        """No room for another viewer."""
        return self._viewers >= MAX_VIEWERS

    @property
    def latest(self) -> S | None:
        """The newest status fed in (None before the first)."""
        return self._latest

    def on_status(self, status: S) -> None:
        """Listener: remember the newest status; wake the viewers after the cycle (O(1))."""
        self._latest = status
        self._seq += 1
        if self._viewers == 0 or self._wake_pending:
            return
        self._wake_pending = True
        try:
            asyncio.get_running_loop().call_soon(self._wake)
        except RuntimeError:  # no loop (a caller outside asyncio): wake now
            self._wake()

    def _wake(self) -> None:
        self._wake_pending = False
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def close(self) -> None:
        """End every stream (server shutdown)."""
        self._closing = True
        self._wake()

    def frame(self) -> tuple[int, bytes] | None:
        """The ``status`` event of the newest status, rendered once and shared by all viewers."""
        if self._latest is None:
            return None
        if self._frame is None or self._frame[0] != self._seq:
            self._frame = (self._seq, sse_event("status", self._render(self._latest)))
            self.renders += 1
        return self._frame

    async def stream(self, now_iso: Callable[[], str]) -> AsyncIterator[bytes]:
        """The SSE byte stream of one viewer: the current status at once, then every new one."""
        self._viewers += 1
        try:
            yield f"retry: {RETRY_MS}\n\n".encode()
            seen = -1  # the status known at connect time (if any) goes out at once
            while not self._closing:
                changed = self._changed  # before looking, so a status after the look wakes us
                frame = self.frame()
                if frame is not None and frame[0] != seen:
                    seen = frame[0]
                    yield frame[1]
                    continue
                try:
                    await asyncio.wait_for(changed.wait(), PING_S)
                except TimeoutError:
                    yield sse_event("ping", {"time": now_iso()})
        finally:
            self._viewers -= 1


#: The edge's hub: controller statuses in, the live page's dict out.
StatusHub = LiveHub[ControllerStatus]

__all__ = ["MAX_VIEWERS", "PING_S", "LiveHub", "StatusHub", "sse_event"]
