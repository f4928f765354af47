"""CEMM discovery: broadcast ``cemm_query`` to UDP 9777 and collect the JSON replies."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import structlog

from fuseguard.devices.cemm.models import CemmDiscovery, parse_discovery
from fuseguard.wire.cemm import DISCOVERY_PORT, DISCOVERY_QUERY

log = structlog.get_logger(__name__)


class _DiscoveryProtocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.replies: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.replies.put_nowait((data, (str(addr[0]), int(addr[1]))))


async def discover(
    *,
    address: str = "255.255.255.255",
    port: int = DISCOVERY_PORT,
    duration_s: float = 5.0,
    bind_host: str = "0.0.0.0",
    bind_port: int | None = DISCOVERY_PORT,
    max_replies: int | None = None,
) -> list[CemmDiscovery]:
    """Send ``cemm_query`` to ``address:port`` and collect replies for ``duration_s``.

    Where does a CEMM send its answer? The vendor documents only its example client, which binds
    UDP 9777 itself before broadcasting, so a device that answers the sender's port and one that
    always answers to port 9777 (unicast or broadcast) look the same to it. We therefore listen
    where both kinds of answer go: the query leaves from ``bind_port`` (9777 by default), so an
    answer to the sender's port, to 9777 or to the broadcast address on 9777 all arrive. When
    that port is taken (another discovery, or a virtual CEMM on this host), the query leaves
    from an ephemeral port instead and only answers to the sender's port are heard (logged).
    ``bind_port`` None or 0 always uses an ephemeral port.

    Our own echoed query and unparsable datagrams are ignored; replies are de-duplicated by
    MAC. ``max_replies`` returns early once that many CEMMs answered.
    """
    loop = asyncio.get_running_loop()

    async def endpoint(
        bport: int,
    ) -> tuple[asyncio.DatagramTransport, _DiscoveryProtocol]:
        return await loop.create_datagram_endpoint(
            _DiscoveryProtocol,
            local_addr=(bind_host, bport),
            family=socket.AF_INET,
            allow_broadcast=True,
        )

    try:
        transport, protocol = await endpoint(bind_port or 0)
    except OSError as exc:
        if not bind_port:
            raise
        log.warning(
            "cemm_discovery_port_busy",
            device=f"udp {bind_host}:{bind_port}",
            reason=f"{exc.strerror or exc}; ephemeral port, sender-port answers only",
        )
        transport, protocol = await endpoint(0)
    found: dict[str, CemmDiscovery] = {}
    try:
        transport.sendto(DISCOVERY_QUERY, (address, port))
        try:
            async with asyncio.timeout(duration_s):
                while max_replies is None or len(found) < max_replies:
                    data, source = await protocol.replies.get()
                    if data.strip() == DISCOVERY_QUERY:
                        continue
                    try:
                        reply = parse_discovery(data, source)
                    except ValueError as exc:
                        reason = str(exc).splitlines()[0] if str(exc) else "invalid reply"
                        log.info("cemm_discovery_garbage", device=source[0], reason=reason)
                        continue
                    found.setdefault(reply.mac, reply)
        except TimeoutError:
            pass
    finally:
        transport.close()
    return list(found.values())


__all__ = ["discover"]
