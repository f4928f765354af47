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
from fuseguard.serving.peers import PeerConnections
from fuseguard.serving.throttle import KeyedLogThrottle

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
    #: the host this connection is counted under in :func:`peer_connections` (None: not counted;
    #: the TLS acceptor counts a connection before its handshake and sets this itself)
    counted_peer: str | None = None

    @property
    def _limits(self) -> ServerLimits:
        limits: ServerLimits = getattr(self.config, "limits", DEFAULT_LIMITS)
        return limits

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Refuse a connection over the cap or over its peer's cap; otherwise start the
        request-head deadline."""
        super().connection_made(transport)
        host = self.client[0] if self.client else "?"
        reason = None
        if len(self.connections) > self._limits.max_connections:
            reason = f"more than {self._limits.max_connections} connections"
        elif self.counted_peer is None:
            if peer_connections(self.config).try_open(host):
                self.counted_peer = host
            else:
                reason = per_peer_reason(self._limits.per_peer)
        if reason is not None:
            refused_log(self.config).warning(
                log, "http_connection_refused", reason=reason, host=host,
                device=_client(self.client),
            )  # fmt: skip
            self.transport.close()
            return
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        """Cancel the deadline, release the peer's slot."""
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if self.counted_peer is not None:
            peer_connections(self.config).release(self.counted_peer)
            self.counted_peer = None
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


def refused_log(config: uvicorn.Config) -> KeyedLogThrottle:
    """The server's throttle for ``http_connection_refused`` (one per config, i.e. per server;
    one burst per reason and peer host)."""
    throttle: KeyedLogThrottle | None = getattr(config, "refused_log", None)
    if throttle is None:
        throttle = KeyedLogThrottle()
        config.refused_log = throttle  # type: ignore[attr-defined]
    return throttle


def peer_connections(config: uvicorn.Config) -> PeerConnections:
    """The server's connections per peer (one per config, i.e. per server)."""
    peers: PeerConnections | None = getattr(config, "peer_connections", None)
    if peers is None:
        limits: ServerLimits = getattr(config, "limits", DEFAULT_LIMITS)
        peers = PeerConnections(limits.per_peer)
        config.peer_connections = peers  # type: ignore[attr-defined]
    return peers


def per_peer_reason(max_per_peer: int) -> str:
    """The refusal reason of a peer at its cap."""
    return f"more than {max_per_peer} connections from this peer"


def _client(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "?"
