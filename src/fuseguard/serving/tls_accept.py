"""TLS connections admitted before their handshake: the connection cap counts handshakes too.

``loop.create_server(ssl=...)`` builds an SSL transport for every accepted socket (asyncio's
``SSLProtocol`` allocates a 256 KiB read buffer in its constructor) and runs the handshake
before the HTTP protocol's ``connection_made`` sees the connection, so the HTTP protocol's cap
(:class:`fuseguard.serving.protocols._Guarded`) only applied after the handshake. Bare TCP
connects that never send a ClientHello were therefore unbounded until ``header_timeout_s``: on
the demo's :7000, 4 000 of them took the edge process from 113 MB to 1.3 GB of RSS (and glibc
kept it after they were gone) - an out-of-memory kill of the control loop from the LAN with no
credentials.

:class:`TlsAcceptor` accepts on the listening socket itself and closes a new socket at once while
``handshakes in progress + open connections >= max_connections``; an admitted socket goes to
``loop.connect_accepted_socket`` (TLS with the handshake deadline). Memory is then bounded by
the cap whatever the rate of connects. A peer is also refused at accept while it holds
``max_connections_per_peer`` connections, its handshakes in progress included
(:mod:`.peers`): one peer's bare connects cannot take every slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable

import structlog

from fuseguard.serving.peers import PeerConnections
from fuseguard.serving.throttle import KeyedLogThrottle, peer_host

log = structlog.get_logger("fuseguard.serving")

#: how long accepting pauses after an accept error (EMFILE: out of file descriptors), as asyncio
_ACCEPT_RETRY_S = 0.5


class TlsAcceptor:
    """Accepts TLS connections on ``sock`` with at most ``max_connections`` handshaking or open.

    ``open_connections`` returns how many connections the HTTP protocol holds (uvicorn's
    ``server_state.connections``). Has the ``close``/``wait_closed`` of an asyncio server, so
    uvicorn's shutdown can treat it as one. Refusals are logged through ``refused_log`` (one
    line per burst, reason and peer). An admitted connection is counted in ``peers`` from its
    accept; once its handshake is done the protocol owns that count (its ``counted_peer``) and
    releases it when the connection is lost; a failed handshake releases it here.
    """

    def __init__(
        self,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.Protocol],
        ssl_context: ssl.SSLContext,
        *,
        handshake_timeout_s: float,
        max_connections: int,
        open_connections: Callable[[], int],
        peers: PeerConnections,
        refused_log: KeyedLogThrottle | None = None,
    ) -> None:
        sock.setblocking(False)  # sock_accept on a blocking socket would block the loop
        self._sock = sock
        self._factory = protocol_factory
        self._ssl = ssl_context
        self._handshake_timeout_s = handshake_timeout_s
        self._max = max_connections
        self._open = open_connections
        self._handshakes: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._refused_log = refused_log or KeyedLogThrottle()
        self._peers = peers  # the server's: its HTTP protocols release what is counted here

    @property
    def handshakes(self) -> int:
        """TLS handshakes in progress."""
        return len(self._handshakes)

    def start(self) -> None:
        """Start accepting."""
        name = f"tls-accept:{self._sock.getsockname()}"
        self._task = asyncio.get_running_loop().create_task(self._accept_forever(), name=name)

    def close(self) -> None:
        """Stop accepting and abandon the handshakes in progress (their sockets are closed)."""
        if self._task is not None:
            self._task.cancel()
        for task in self._handshakes:
            task.cancel()

    async def wait_closed(self) -> None:
        """Wait until the accept loop and the abandoned handshakes are gone."""
        tasks = [t for t in (self._task, *self._handshakes) if t is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _accept_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, addr = await loop.sock_accept(self._sock)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # EMFILE and friends must not end accepting
                log.warning(
                    "tls_accept_failed",
                    device=_name(self._sock),
                    reason=f"{type(exc).__name__}: {exc}",
                    retry_s=_ACCEPT_RETRY_S,
                )
                await asyncio.sleep(_ACCEPT_RETRY_S)
                continue
            host = peer_host(addr)
            if len(self._handshakes) + self._open() >= self._max:
                conn.close()
                self._note_refused(addr, f"more than {self._max} connections (handshakes included)")
                continue
            if not self._peers.try_open(host):
                conn.close()
                limit = self._peers.max_per_peer
                self._note_refused(
                    addr, f"more than {limit} connections from this peer (handshakes included)"
                )
                continue
            task = loop.create_task(self._handshake(conn, host))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)

    async def _handshake(self, conn: socket.socket, host: str) -> None:
        loop = asyncio.get_running_loop()
        protocol = self._factory()
        # counted at accept: the protocol releases the count when its connection is lost
        protocol.counted_peer = host  # type: ignore[attr-defined]
        try:
            conn.setblocking(False)
            await loop.connect_accepted_socket(
                lambda: protocol,
                conn,
                ssl=self._ssl,
                ssl_handshake_timeout=self._handshake_timeout_s,
            )
        except asyncio.CancelledError:
            conn.close()
            self._release_unmade(protocol, host)
            raise
        except Exception as exc:  # a failed handshake is the peer's problem
            conn.close()
            self._release_unmade(protocol, host)
            log.debug("tls_handshake_failed", device=host, reason=f"{type(exc).__name__}: {exc}")

    def _release_unmade(self, protocol: asyncio.Protocol, host: str) -> None:
        """Release the count of a connection whose protocol never saw ``connection_made``."""
        if getattr(protocol, "transport", None) is None:
            self._peers.release(host)
            protocol.counted_peer = None  # type: ignore[attr-defined]

    def _note_refused(self, addr: object, reason: str) -> None:
        self._refused_log.warning(
            log, "http_connection_refused", reason=reason, host=peer_host(addr), device=_peer(addr)
        )


def _name(sock: socket.socket) -> str:
    with contextlib.suppress(OSError):
        return str(sock.getsockname())
    return "?"


def _peer(addr: object) -> str:
    if isinstance(addr, tuple) and len(addr) >= 2:
        return f"{addr[0]}:{addr[1]}"
    return "?"
