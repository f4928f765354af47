"""Guarded uvicorn HTTP protocols: a connection cap and a request-head deadline.

h11's here; httptools' in :mod:`.httptools_guard`; :mod:`.choice` picks one.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import h11
import structlog
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from fuseguard.serving.limits import DEFAULT_LIMITS, ServerLimits
from fuseguard.serving.throttle import LogThrottle

log = structlog.get_logger("fuseguard.serving")


class _Guarded(asyncio.Protocol):
    """The connection cap and the request-head deadline of a uvicorn HTTP protocol (a mixin
    before uvicorn's class: ``class P(_Guarded, H11Protocol)``)."""

    config: uvicorn.Config
    connections: set[Any]
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    client: tuple[str, int] | None
    cycle: Any
    _head_timer: asyncio.TimerHandle | None = None

    @property
    def _limits(self) -> ServerLimits:
        limits: ServerLimits = getattr(self.config, "limits", DEFAULT_LIMITS)
        return limits

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Refuse a connection over the cap; otherwise start the request-head deadline."""
        super().connection_made(transport)
        if len(self.connections) > self._limits.max_connections:
            suppressed = refused_log(self.config).admit()
            if suppressed is not None:
                log.warning(
                    "http_connection_refused",
                    device=_client(self.client),
                    reason=f"more than {self._limits.max_connections} connections",
                    suppressed=suppressed,
                )
            self.transport.close()
            return
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        """Cancel the deadline."""
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        """The next request head has the same deadline as the first."""
        super().on_response_complete()  # type: ignore[misc]  # uvicorn's protocol (next in MRO)
        if not self.transport.is_closing():
            self._arm_head_deadline()

    def _arm_head_deadline(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(self._limits.header_timeout_s, self._head_late)

    def _head_late(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being served: the body deadline and the app take over
        log.info(
            "http_connection_timeout",
            device=_client(self.client),
            reason=f"no complete request head within {self._limits.header_timeout_s:g} s",
        )
        self._close_late()

    def _close_late(self) -> None:
        self.transport.close()


class GuardedH11Protocol(_Guarded, H11Protocol):
    """uvicorn's h11 protocol with a connection cap and a request-head deadline (h11 caps the
    head's size: ``max_header_bytes``)."""

    def _close_late(self) -> None:
        with contextlib.suppress(h11.LocalProtocolError):
            self.conn.send(h11.ConnectionClosed())
        self.transport.close()


def refused_log(config: uvicorn.Config) -> LogThrottle:
    """The server's throttle for ``http_connection_refused`` (one per config, i.e. per server)."""
    throttle: LogThrottle | None = getattr(config, "refused_log", None)
    if throttle is None:
        throttle = LogThrottle()
        config.refused_log = throttle  # type: ignore[attr-defined]
    return throttle


def _client(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "?"
