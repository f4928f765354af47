"""Run ASGI apps inside the host's event loop (stack.md 2.1, "EmbeddedServer").

Several apps (local API, dashboard, simulators) can run side by side in one process::

    handle = await serve_app(app, "127.0.0.1", 0)   # port 0: pick a free port
    print(handle.port)
    ...
    await handle.close()

The socket is bound here, before uvicorn starts, so a busy port raises ``OSError`` in the caller
(uvicorn itself would ``sys.exit``) and ``port`` is known at once. Signals stay with the host
application: :class:`EmbeddedServer` does not install handlers.

The servers run in the same process and event loop as the control loop, so every connection is
bounded (:class:`ServerLimits`): at most ``max_connections`` at once (one more is closed on
connect), a request head must be complete within ``header_timeout_s`` of connecting or of the
previous response (slow-loris), a body may have at most ``max_body_bytes`` (a larger
``Content-Length`` is answered 413 before a byte of it is read; a chunked body is cut off at the
limit) and must arrive within ``body_timeout_s`` (else 408). A request head that grows past
``max_header_bytes`` is refused (h11: 400 while the head is incomplete, so a complete head read
at once may be up to one socket read larger; httptools: 431, counted exactly). TLS is 1.2 or
newer and a handshake must finish within ``header_timeout_s``; a handshake in progress counts
against ``max_connections`` (:mod:`.tls_accept`). With ``max_connections_per_peer`` (the edge's
listeners: 16 of 64) one peer (host) may hold at most that many, handshakes included
(:mod:`.peers`), so it cannot take every slot. The request parser is h11
(uvicorn's default) or httptools (:func:`http_protocol`, faster; the same guards);
:func:`loop_factory` picks uvloop's event loop when wanted and installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import structlog
import uvicorn
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fuseguard.serving.choice import (
    EventLoop,
    HttpParser,
    LoopUnavailableError,
    http_protocol,
    loop_factory,
)
from fuseguard.serving.limits import DEFAULT_LIMITS, ServerLimits
from fuseguard.serving.protocols import GuardedH11Protocol, peer_connections, refused_log
from fuseguard.serving.tls_accept import TlsAcceptor

log = structlog.get_logger(__name__)

_STARTUP_TIMEOUT_S = 10.0
_SHUTDOWN_TIMEOUT_S = 10.0


class PortInUseError(OSError):
    """A server could not listen on its address; names the service and the setting to change."""

    def __init__(self, service: str, host: str, port: int, key: str, detail: str) -> None:
        super().__init__(f"{service}: cannot listen on {host}:{port} ({detail}); set {key}")
        self.service = service
        self.host = host
        self.port = port
        #: the config key that sets the port, e.g. ``api.local.port``
        self.key = key
        self.detail = detail


_CLOSE = [(b"connection", b"close"), (b"content-type", b"application/json")]


async def _answer(send: Send, status: int, error: str, message: str) -> None:
    body = json.dumps({"error": error, "message": message}).encode()
    headers = [*_CLOSE, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """ASGI middleware: bounded request bodies, read only when the app asks for them.

    A declared ``Content-Length`` above the limit is answered 413 at once, without calling the app
    (no credentials are needed to learn the size limit). Otherwise the app's ``receive`` counts the
    bytes and has a deadline; when the app reads too much or too slowly, ``receive`` raises a 413
    or 408 :class:`~starlette.exceptions.HTTPException` that the app's own error handler answers.
    So an app that checks credentials before reading the body (the local and EVSE APIs) never
    reads a byte of an unauthenticated body.
    """

    def __init__(self, app: ASGIApp, limits: ServerLimits = DEFAULT_LIMITS) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the declared length, then run the app with a bounded ``receive``."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.max_body_bytes
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            log.info(
                "http_body_refused",
                device=_peer(scope),
                reason=f"Content-Length {declared[:20]!r} above {limit} bytes",
            )
            await _answer(send, 413, "payload_too_large", f"request body above {limit} bytes")
            return
        await self.app(scope, self._bounded(scope, receive), send)

    def _bounded(self, scope: Scope, receive: Receive) -> Receive:
        limit = self.limits.max_body_bytes
        timeout_s = self.limits.body_timeout_s
        loop = asyncio.get_running_loop()
        received = 0
        deadline: float | None = None

        async def bounded_receive() -> Message:
            nonlocal received, deadline
            if deadline is None:
                deadline = loop.time() + timeout_s
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                log.info("http_body_timeout", device=_peer(scope), reason=f"{timeout_s:g} s")
                msg = f"request body not complete within {timeout_s:g} s"
                raise HTTPException(408, msg, {"connection": "close"}) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    log.info("http_body_refused", device=_peer(scope), reason="body over limit")
                    raise HTTPException(
                        413, f"request body above {limit} bytes", {"connection": "close"}
                    )
                if not message.get("more_body", False):
                    deadline = loop.time() + 86_400.0  # body complete: only disconnects follow
            return message

        return bounded_receive


def _peer(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "?"


class _LimitedConfig(uvicorn.Config):
    """A uvicorn config that carries the :class:`ServerLimits` for its connections."""

    limits: ServerLimits = DEFAULT_LIMITS


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves SIGINT/SIGTERM to the host application and ticks once a
    second, not ten times.

    uvicorn's ``main_loop`` wakes every 0.1 s to see whether it should exit (and refreshes its
    ``Date`` header every tenth time): with the edge's own servers that was ~7 % of the edge's
    Python samples at 100 chargers (round 15), and 1000 wake-ups a second in a process serving
    100 virtual chargers. Here it wakes once a second (the ``Date`` header has one-second
    resolution anyway) and at once when ``should_exit`` is set, from any thread.
    """

    _exit_event: asyncio.Event | None = None
    _exit_loop: asyncio.AbstractEventLoop | None = None
    _exit_requested: bool = False

    @property
    def should_exit(self) -> bool:
        """Set to stop the server (uvicorn's flag); wakes :meth:`main_loop` at once."""
        return self._exit_requested

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self._exit_requested = value
        event, loop = self._exit_event, self._exit_loop
        if value and event is not None and loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing waits
                loop.call_soon_threadsafe(event.set)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Install nothing."""
        yield

    async def main_loop(self) -> None:
        """uvicorn's loop: ``on_tick`` once a second (its ``Date`` header refresh every time)
        until ``should_exit``, which ends the wait at once."""
        self._exit_loop = asyncio.get_running_loop()
        self._exit_event = event = asyncio.Event()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            if not self._exit_requested:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_TICK_S):
                        await event.wait()
            counter = (counter + 10) % 864000  # uvicorn counts tenths of a second
            should_exit = await self.on_tick(counter)


#: How often an :class:`EmbeddedServer` looks at its state when nothing asks it to stop.
_TICK_S = 1.0


class _GuardedServer(EmbeddedServer):
    """An :class:`EmbeddedServer` on given sockets whose TLS handshakes have a deadline and a cap.

    asyncio gives a TLS handshake 60 s by default and uvicorn has no setting for it; a connection
    that never finishes its handshake holds a file descriptor that long. Here the handshake gets
    the request-head deadline (``header_timeout_s``), and a TLS connection is admitted (or closed
    at once) before its handshake starts, counting handshakes in progress against
    ``max_connections`` (:class:`~fuseguard.serving.tls_accept.TlsAcceptor`: before, each
    handshake cost ~300 KB of memory with no bound on their number).
    """

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's startup for pre-bound ``sockets``, with ``ssl_handshake_timeout`` set."""
        if not sockets:
            await super().startup(sockets)
            return
        await self.lifespan.startup()
        if self.lifespan.should_exit:
            self.should_exit = True
            return
        config = self.config
        limits: ServerLimits = getattr(config, "limits", DEFAULT_LIMITS)

        def create_protocol(_loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Protocol:
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config,
                server_state=self.server_state,
                app_state=self.lifespan.state,
                _loop=_loop,
            )

        loop = asyncio.get_running_loop()
        if config.ssl is not None:
            # TLS: admitted before the handshake, so the cap bounds handshakes too (tls_accept)
            acceptors = [
                TlsAcceptor(
                    sock,
                    create_protocol,
                    config.ssl,
                    handshake_timeout_s=limits.header_timeout_s,
                    max_connections=limits.max_connections,
                    open_connections=lambda: len(self.server_state.connections),
                    refused_log=refused_log(config),
                    peers=peer_connections(config),
                )
                for sock in sockets
            ]
            for acceptor in acceptors:
                acceptor.start()
            self.servers = acceptors  # type: ignore[assignment]  # close()/wait_closed() only
            self.started = True
            return
        self.servers = [
            await loop.create_server(create_protocol, sock=sock, backlog=config.backlog)
            for sock in sockets
        ]
        self.started = True


@dataclass(eq=False)
class ServerHandle:
    """A running embedded server."""

    server: EmbeddedServer
    task: asyncio.Task[None]
    host: str
    port: int
    scheme: str
    _sockets: list[socket.socket] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Base URL, e.g. ``https://127.0.0.1:7000``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    async def close(self) -> None:
        """Stop accepting, finish open requests, run lifespan shutdown."""
        self.server.should_exit = True
        try:
            async with asyncio.timeout(_SHUTDOWN_TIMEOUT_S):
                await asyncio.shield(self.task)
        except TimeoutError:
            self.server.force_exit = True
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        finally:
            for sock in self._sockets:
                sock.close()
        log.info("server_stopped", device=self.url, reason="close requested")


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind and listen before uvicorn starts: the port is known at once, a busy one raises."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, socktype, proto, _, addr = infos[0]
    sock = socket.socket(family, socktype, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(addr)
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def limited_config(
    app: ASGIApp,
    limits: ServerLimits = DEFAULT_LIMITS,
    http: HttpParser = "h11",
    **kwargs: Any,
) -> uvicorn.Config:
    """A loaded uvicorn config: ``app`` behind :class:`BodyLimit`, guarded connections, TLS >= 1.2.

    ``http`` chooses the request parser (:func:`http_protocol`); ``kwargs`` go to
    :class:`uvicorn.Config` (``ssl_certfile``, ``log_level``, ...).
    """
    config = _LimitedConfig(
        BodyLimit(app, limits),
        http=http_protocol(http),
        limit_concurrency=limits.max_connections + 1,  # uvicorn's 503 only past our own cap
        timeout_keep_alive=limits.keep_alive_s,
        h11_max_incomplete_event_size=limits.max_header_bytes,
        **kwargs,
    )
    config.limits = limits
    config.load()
    if config.ssl is not None:
        config.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
    return config


async def serve_app(
    app: ASGIApp,
    host: str,
    port: int,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    *,
    log_level: str = "warning",
    limits: ServerLimits = DEFAULT_LIMITS,
    http: HttpParser = "h11",
) -> ServerHandle:
    """Start ``app`` on ``host:port`` (0 = free port) and return once it accepts connections.

    Every connection is bounded by ``limits`` (with either parser, ``http``); a busy port raises
    ``OSError`` naming it.
    """
    sock = bind_socket(host, port)
    bound_port = int(sock.getsockname()[1])
    try:
        config = limited_config(
            app,
            limits,
            http,
            lifespan="auto",
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
            log_config=None,
            log_level=log_level,
            access_log=False,
            timeout_graceful_shutdown=5,
        )
    except BaseException:
        sock.close()
        raise
    server = _GuardedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"uvicorn:{host}:{bound_port}")
    try:
        async with asyncio.timeout(_STARTUP_TIMEOUT_S):
            while not server.started:
                if task.done():
                    break
                await asyncio.sleep(0.005)  # startup plumbing, not control time
    except TimeoutError:
        server.should_exit = True
        task.cancel()
        sock.close()
        raise
    if task.done() and not server.started:
        sock.close()
        exc = task.exception()
        msg = f"server on {host}:{bound_port} failed to start"
        raise OSError(msg) from exc
    scheme = "https" if ssl_certfile else "http"
    handle = ServerHandle(server, task, host, bound_port, scheme, [sock])
    log.info("server_started", device=handle.url, reason="serve_app")
    return handle


__all__ = [
    "DEFAULT_LIMITS",
    "BodyLimit",
    "EmbeddedServer",
    "EventLoop",
    "GuardedH11Protocol",
    "HttpParser",
    "LoopUnavailableError",
    "PortInUseError",
    "ServerHandle",
    "ServerLimits",
    "bind_socket",
    "http_protocol",
    "limited_config",
    "loop_factory",
    "serve_app",
]
