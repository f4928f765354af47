"""Run ASGI apps inside the host's event loop (stack.md 2.1, "EmbeddedServer").

Several apps (local API, dashboard, simulators) can run side by side in one process::

    handle = await serve_app(app, "127.0.0.1", 0)   # port 0: pick a free port
    print(handle.port)
    ...
    await handle.close()

The socket is bound here, before uvicorn starts, so a busy port raises ``OSError`` in the caller
(uvicorn itself would ``sys.exit``) and ``port`` is known at once. Signals stay with the host
application: :class:`EmbeddedServer` does not install handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field

import structlog
import uvicorn
from starlette.types import ASGIApp

log = structlog.get_logger(__name__)

_STARTUP_TIMEOUT_S = 10.0
_SHUTDOWN_TIMEOUT_S = 10.0


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves SIGINT/SIGTERM to the host application."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Install nothing."""
        yield


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


async def serve_app(
    app: ASGIApp,
    host: str,
    port: int,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    *,
    log_level: str = "warning",
) -> ServerHandle:
    """Start ``app`` on ``host:port`` (0 = free port) and return once it accepts connections."""
    sock = bind_socket(host, port)
    bound_port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        app,
        lifespan="auto",
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        log_config=None,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = EmbeddedServer(config)
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
