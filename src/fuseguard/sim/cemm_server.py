"""Running a virtual CEMM: uvicorn (embedded, shares the caller's loop) + UDP discovery.

``offline`` fault: the handle closes the TCP listener and every open connection, so clients get
*connection refused* (a real CEMM that lost power or network); the discovery responder stays
silent. When the fault clears, the handle listens again on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from dataclasses import dataclass, field
from typing import Any, cast

import structlog
import uvicorn

from fuseguard.serving import EmbeddedServer
from fuseguard.sim.cemm_app import create_cemm_app
from fuseguard.sim.cemm_faults import Fault, FaultState
from fuseguard.sim.cemm_model import CemmModel
from fuseguard.wire.cemm import DISCOVERY_PORT, DISCOVERY_QUERY, DiscoveryReply

log = structlog.get_logger(__name__)


class CemmDiscoveryResponder(asyncio.DatagramProtocol):
    """Answers ``cemm_query`` datagrams with the CEMM's JSON identity.

    Where the answer goes is configurable, because the vendor documents only that its client
    binds 9777 itself: ``reply_port`` None answers the sender's address and port (what the
    vendor client sees, its port being 9777); a port number answers the sender's address on that
    fixed port (a device that always answers to 9777); ``reply_address`` overrides the address
    (e.g. ``255.255.255.255`` for a device that broadcasts its answer).
    """

    def __init__(
        self,
        model: CemmModel,
        advertise_ip: str | None = None,
        *,
        reply_port: int | None = None,
        reply_address: str | None = None,
    ) -> None:
        self.model = model
        self.advertise_ip = advertise_ip
        self.reply_port = reply_port
        self.reply_address = reply_address
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport for replies."""
        self.transport = cast("asyncio.DatagramTransport", transport)

    def reply_body(self, sender_ip: str) -> dict[str, Any]:
        """The discovery datagram for a query from ``sender_ip``."""
        ident = self.model.identity
        reply = DiscoveryReply(
            ip=self.advertise_ip or _local_ip_towards(sender_ip),
            mac=ident.mac,
            version=ident.core,
            type=ident.discovery_type,
            init_state=1,
        )
        return reply.model_dump(mode="json")

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        """Reply to ``cemm_query``; ignore anything else."""
        if data.strip() != DISCOVERY_QUERY or self.transport is None:
            return
        if self.model.fault.kind is Fault.OFFLINE:
            log.info("cemm_discovery_silent", device=self.model.identity.mac, reason="offline")
            return
        body = json.dumps(self.reply_body(str(addr[0])), separators=(", ", ": "))
        target = (
            self.reply_address or str(addr[0]),
            int(addr[1]) if self.reply_port is None else self.reply_port,
        )
        self.transport.sendto(body.encode(), target)


def _local_ip_towards(peer_ip: str) -> str:
    """The local address the kernel would use to reach ``peer_ip``."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((peer_ip, 9))
            return str(s.getsockname()[0])
    except OSError:
        return "127.0.0.1"


@dataclass
class CemmServerHandle:
    """A running virtual CEMM; ``await close()`` stops everything."""

    model: CemmModel
    server: EmbeddedServer
    task: asyncio.Task[None]
    host: str
    port: int
    discovery_port: int | None = None
    discovery_transport: asyncio.DatagramTransport | None = None
    _offline: bool = False
    _pending: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def base_url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    def _on_fault(self, fault: FaultState) -> None:
        offline = fault.kind is Fault.OFFLINE
        if offline == self._offline:
            return
        self._offline = offline
        task = asyncio.get_running_loop().create_task(
            self._go_offline() if offline else self._go_online()
        )
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _go_offline(self) -> None:
        for srv in self.server.servers:
            srv.close()
        for conn in list(self.server.server_state.connections):
            # uvicorn's graceful close: idle keep-alive connections drop now, a request in
            # flight (e.g. the admin call that switched us offline) gets its answer first.
            conn.shutdown()
        log.info("cemm_listener_closed", device=self.model.identity.mac, reason="offline")

    async def _go_online(self) -> None:
        server = self.server
        config = server.config

        def create_protocol(_loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Protocol:
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config,
                server_state=server.server_state,
                app_state=server.lifespan.state,
                _loop=_loop,
            )

        loop = asyncio.get_running_loop()
        listener = await loop.create_server(create_protocol, host=self.host, port=self.port)
        server.servers = [listener]
        log.info("cemm_listener_reopened", device=self.model.identity.mac, reason="fault cleared")

    async def wait_settled(self) -> None:
        """Wait until a pending offline/online switch of the listener has happened."""
        while self._pending:
            await asyncio.gather(*list(self._pending))

    async def close(self) -> None:
        """Stop the HTTP server and the discovery responder."""
        self.model.remove_fault_listener(self._on_fault)
        await self.wait_settled()
        if self.discovery_transport is not None:
            self.discovery_transport.close()
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def serve_cemm(
    model: CemmModel,
    host: str = "127.0.0.1",
    port: int = 0,
    discovery_port: int | None = DISCOVERY_PORT,
    *,
    advertise_ip: str | None = None,
    discovery_reply_port: int | None = None,
    discovery_reply_address: str | None = None,
) -> CemmServerHandle:
    """Serve ``model`` on ``host:port`` (0 = free port) plus UDP discovery on ``discovery_port``.

    Returns once the HTTP listener is accepting; the caller's loop runs everything. The
    handle's ``port``/``discovery_port`` are the bound ones. ``discovery_reply_port`` /
    ``discovery_reply_address``: where discovery answers go (:class:`CemmDiscoveryResponder`).
    """
    app = create_cemm_app(model)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    server = EmbeddedServer(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # re-raise bind errors
            msg = f"virtual CEMM on {host}:{port} exited during startup"
            raise RuntimeError(msg)
        await asyncio.sleep(0.01)  # startup poll of a real listener, not simulation time
    sock = server.servers[0].sockets[0]
    bound_port = int(sock.getsockname()[1])
    handle = CemmServerHandle(model=model, server=server, task=task, host=host, port=bound_port)
    model.on_fault_change(handle._on_fault)
    handle._on_fault(model.fault)
    if discovery_port is not None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: CemmDiscoveryResponder(
                model,
                advertise_ip,
                reply_port=discovery_reply_port,
                reply_address=discovery_reply_address,
            ),
            local_addr=(host, discovery_port),
            allow_broadcast=True,
        )
        handle.discovery_transport = transport
        handle.discovery_port = int(transport.get_extra_info("sockname")[1])
    log.info(
        "cemm_serving",
        device=model.identity.mac,
        reason="started",
        url=handle.base_url,
        discovery_port=handle.discovery_port,
    )
    return handle
