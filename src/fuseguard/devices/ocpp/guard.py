"""What an unauthenticated peer can cost the OCPP central system: bounded log, bounded connections.

Red-team findings against the demo (round 9), before this module:

- every bare TCP connect (or garbage instead of an HTTP request) made ``websockets.server`` log
  ``opening handshake failed`` at error level with a ~1.9 KB traceback: 2 000 connects wrote
  3.8 MB of log, rendered in the event loop that runs control;
- every refused handshake logged twice (fuseguard's warning and websockets' ``connection
  rejected``), unthrottled;
- the server had no cap on connections that have not finished their opening handshake (each
  held for up to ``open_timeout``): memory and file descriptors grew with the connect rate; with
  TLS asyncio ran the handshake (256 KiB of buffer each) before any code of ours saw the socket;
  and a request could hold ~1 MB of headers (websockets' own limits) while pending.

:class:`WebsocketsLog` is the logger handed to websockets: a failed opening handshake becomes one
line without a traceback (``ocpp_handshake_failed``, one per burst and peer host with the
suppressed count, so one peer's garbage cannot hide another's first failure),
``connection rejected`` / ``connection open`` / ``connection closed`` go to debug (fuseguard logs
its own lines for those), everything else (a bug in a handler, server start and stop) passes
unchanged. :func:`guarded_connection` makes the connection class that admits at most
``max_pending`` connections in their opening handshake: over the cap the oldest one that has
not sent its request yet is closed (a slow or silent peer, never a charge point whose request is
being answered), so a peer holding connections open cannot lock charge points out, and memory
and descriptors stay bounded whatever the connect rate. One peer (host) may hold at most
``max_pending_per_peer`` of those (default half of ``max_pending``, :class:`PeerConnections`): a
peer opening slow handshakes cannot fill every pending slot, so charge points on other hosts
always find one. Past its share the peer's own oldest connection that has sent no request is
closed (else the new one): the peer stays within its share, yet a charge point behind the same
address still gets in (``ocpp_connection_evicted``, one line per burst and peer). A connection
counts only until its opening handshake is over: an authenticated charge point holds no slot, so
chargers behind one NAT share the limit only while they connect.
The connection class runs the TLS handshake itself, after admission, and drops a request over
:data:`MAX_REQUEST_BYTES`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import sys
from collections.abc import MutableMapping
from contextvars import ContextVar
from typing import Any, ClassVar, cast

import structlog
from websockets.asyncio.connection import Connection
from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from fuseguard.serving.peers import PeerConnections, host_key
from fuseguard.serving.throttle import KeyedLogThrottle, LogThrottle, peer_host

log = structlog.get_logger("fuseguard.devices.ocpp.server")

#: websockets' own info lines that fuseguard logs itself (refusals, sessions): debug only
_DEMOTED = ("connection rejected", "connection open", "connection closed")
#: at most this many characters of a peer's garbage reach the log
_MAX_REASON_CHARS = 200
#: the peer host of the connection whose handshake runs in this task (websockets' log calls do
#: not name the connection; its handler task is created in ``connection_made``, which sets this)
_PEER_HOST: ContextVar[str] = ContextVar("ocpp_peer_host", default="?")
#: the throttle key of a failed opening handshake (one burst per peer host)
_HANDSHAKE_FAILED = "opening handshake failed"


def _reason(exc: BaseException | None) -> str:
    """``Type: message; Cause: message`` of a failed handshake, clipped (peer bytes inside)."""
    parts: list[str] = []
    seen = 0
    while exc is not None and seen < 4:
        parts.append(f"{type(exc).__name__}: {exc}")
        exc = exc.__cause__
        seen += 1
    text = "; ".join(parts) or "unknown"
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    return text if len(text) <= _MAX_REASON_CHARS else text[: _MAX_REASON_CHARS - 3] + "..."


class WebsocketsLog(logging.LoggerAdapter[logging.Logger]):
    """The logger websockets gets for the OCPP server (see the module docstring)."""

    def __init__(self, throttle: KeyedLogThrottle | None = None) -> None:
        super().__init__(logging.getLogger("websockets.server"), {})
        self.handshake_failures = 0
        self._throttle = throttle or KeyedLogThrottle()

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        """Route one websockets log call (all of ``debug`` ... ``error`` end here)."""
        if msg == "opening handshake failed":
            self._handshake_failed(sys.exc_info()[1])
            return
        if isinstance(msg, str) and msg.startswith(_DEMOTED):
            level = min(level, logging.DEBUG)
        super().log(level, msg, *args, **kwargs)

    def process(
        self, msg: object, kwargs: MutableMapping[str, Any]
    ) -> tuple[object, MutableMapping[str, Any]]:
        """Unchanged (no ``extra``)."""
        return msg, kwargs

    def _handshake_failed(self, exc: BaseException | None) -> None:
        self.handshake_failures += 1
        host = _PEER_HOST.get()
        suppressed = self._throttle.admit(_HANDSHAKE_FAILED, host)  # one burst per peer
        if suppressed is None:
            return
        log.info("ocpp_handshake_failed", device="ocpp", peer=host, reason=_reason(exc),
                 suppressed=suppressed)  # fmt: skip


#: an opening handshake request larger than this is dropped unanswered (a charge point's is well
#: under 2 KB; websockets alone allows 128 headers of 8 KiB: ~1 MB held per pending connection)
MAX_REQUEST_BYTES = 16 * 1024


def default_pending_per_peer(max_pending: int) -> int:
    """The default per-peer share of ``max_pending`` connections in their opening handshake."""
    return max(1, max_pending // 2)


class PendingCap:
    """The caps on connections in their opening handshake (in all, and per peer host), and
    their log (one line per burst; per burst and peer for per-peer refusals)."""

    def __init__(
        self,
        max_pending: int,
        throttle: LogThrottle | None = None,
        max_pending_per_peer: int | None = None,
    ) -> None:
        per_peer = (
            default_pending_per_peer(max_pending)
            if max_pending_per_peer is None
            else max_pending_per_peer
        )
        if per_peer > max_pending:
            msg = (
                f"max_pending_connections_per_peer ({per_peer}) must be at most "
                f"max_pending_connections ({max_pending})"
            )
            raise ValueError(msg)
        self.max_pending = max_pending
        #: connections closed by either cap
        self.evicted = 0
        self.oversized_requests = 0
        #: of ``evicted``, those closed because their peer held ``max_pending_per_peer`` already
        self.evicted_per_peer = 0
        self.peers = PeerConnections(per_peer)
        #: the connections counted in ``peers`` (their handshake not over), oldest first
        self._holders: dict[ServerConnection, str] = {}
        self._throttle = throttle or LogThrottle()
        self._oversized_log = LogThrottle()
        self._peer_log = KeyedLogThrottle()

    @property
    def max_pending_per_peer(self) -> int:
        """How many connections one peer host may hold in their opening handshake."""
        return self.peers.max_per_peer

    def admit_peer(self, new: ServerConnection, host: str) -> bool:
        """Count ``new`` against its peer's share. When the peer holds ``max_pending_per_peer``
        pending connections already, close its oldest one that has sent no request (a charge
        point behind the same address still gets in), else ``new``: False, ``new`` was closed and
        not counted. Each connection counted here must be passed to :meth:`peer_done`."""
        key = host_key(host)
        if not self.peers.try_open(key):
            victim = next(
                (
                    c
                    for c, held in self._holders.items()
                    if held == key and c.request is None and not c.transport.is_closing()
                ),
                new,
            )
            victim.transport.abort()
            self.evicted += 1
            self.evicted_per_peer += 1
            self._peer_log.warning(
                log,
                "ocpp_connection_evicted",
                reason=f"peer holds {self.max_pending_per_peer} connections in the opening "
                "handshake",
                host=key,
                device="ocpp",
                peer=key,
            )
            if victim is new:
                return False
            self.peer_done(victim)
            self.peers.try_open(key)  # the victim's slot, just released
        self._holders[new] = key
        return True

    def peer_done(self, connection: ServerConnection) -> None:
        """``connection``'s opening handshake is over, or it is gone: it no longer counts
        against its peer's share (an authenticated charge point holds none). Idempotent."""
        key = self._holders.pop(connection, None)
        if key is not None:
            self.peers.release(key)

    def admit(self, new: ServerConnection) -> bool:
        """Called with each new connection once websockets registered it: over the cap, close
        the oldest connection that has not sent its request (else the new one). False: the new
        one was closed."""
        pending = [
            c
            for c in new.server.handlers
            if c.protocol.state is State.CONNECTING and not c.transport.is_closing()
        ]
        if len(pending) <= self.max_pending:
            return True
        victim = next((c for c in pending if c.request is None), new)
        victim.transport.abort()
        self.evicted += 1
        suppressed = self._throttle.admit()
        if suppressed is not None:
            log.warning(
                "ocpp_connection_evicted",
                device="ocpp",
                reason=f"more than {self.max_pending} connections in the opening handshake",
                suppressed=suppressed,
            )
        return victim is not new

    def oversized(self) -> None:
        """A connection sent more than :data:`MAX_REQUEST_BYTES` without completing its request."""
        self.oversized_requests += 1
        suppressed = self._oversized_log.admit()
        if suppressed is not None:
            log.warning("ocpp_request_too_large", device="ocpp",
                        reason=f"opening handshake request over {MAX_REQUEST_BYTES} bytes",
                        suppressed=suppressed)  # fmt: skip


class _GuardedConnection(ServerConnection):
    cap: ClassVar[PendingCap]
    tls: ClassVar[ssl.SSLContext | None]
    tls_timeout_s: ClassVar[float]
    #: bytes received before the request was complete
    _request_bytes: int = 0

    def data_received(self, data: bytes) -> None:
        if self.request is None:
            self._request_bytes += len(data)
            if self._request_bytes > MAX_REQUEST_BYTES:
                self.cap.oversized()
                self.transport.abort()
                return
        super().data_received(data)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # this callback's own context: the handler task websockets creates below inherits it
        host = peer_host(transport.get_extra_info("peername"))
        _PEER_HOST.set(host)
        tls = self.tls is not None
        if tls:
            # no byte of the ClientHello may reach the HTTP parser before start_tls takes over
            cast("asyncio.Transport", transport).pause_reading()
        super().connection_made(transport)  # registers it with the server
        if self.cap.admit_peer(self, host) and self.cap.admit(self) and tls:
            loop = asyncio.get_running_loop()
            self._tls_task = loop.create_task(self._start_tls(cast("asyncio.Transport", transport)))

    async def handshake(self, *args: Any, **kwargs: Any) -> None:
        """websockets' opening handshake; however it ends (upgraded, refused, failed, timed
        out), the connection no longer counts against its peer's pending share."""
        try:
            await super().handshake(*args, **kwargs)
        finally:
            self.cap.peer_done(self)

    def connection_lost(self, exc: Exception | None) -> None:
        """Once only: with TLS it may come from asyncio and from :meth:`_start_tls`."""
        self.cap.peer_done(self)
        if not self.connection_lost_waiter.done():
            super().connection_lost(exc)

    async def _start_tls(self, raw: asyncio.Transport) -> None:
        """TLS on an admitted connection (so the cap counts TLS handshakes too); then websockets
        reads and writes through it."""
        assert self.tls is not None
        loop = asyncio.get_running_loop()
        transport: asyncio.Transport | None = None
        try:
            if not raw.is_closing():  # else evicted before its TLS began
                transport = await loop.start_tls(
                    raw, self, self.tls, server_side=True, ssl_handshake_timeout=self.tls_timeout_s
                )
        except Exception as exc:  # any failure is the peer's; the connection just ends
            log.debug("ocpp_tls_handshake_failed", device="ocpp", reason=_reason(exc))
            transport = None
        if transport is None:  # failed, or the peer left during the handshake
            raw.abort()
            self.connection_lost(None)  # asyncio may not tell the app protocol before TLS is up
            return
        # websockets binds its flow control and writes to the transport it was made with
        Connection.connection_made(self, transport)


def guarded_connection(
    cap: PendingCap, tls: ssl.SSLContext | None = None, tls_timeout_s: float = 10.0
) -> type[ServerConnection]:
    """A :class:`ServerConnection` class (websockets' ``create_connection``) bound to ``cap``;
    with ``tls`` it runs the TLS handshake itself, after admission (give websockets no ``ssl``)."""
    attrs = {"cap": cap, "tls": tls, "tls_timeout_s": tls_timeout_s}
    return type("GuardedConnection", (_GuardedConnection,), attrs)


__all__ = ["PendingCap", "WebsocketsLog", "default_pending_per_peer", "guarded_connection"]
