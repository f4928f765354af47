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
    bind_port: int = 0,
    max_replies: int | None = None,
) -> list[CemmDiscovery]:
    """Send ``cemm_query`` to ``address:port`` and collect replies for ``duration_s``.

    The vendor client binds 9777 itself; the default here binds an ephemeral port (replies are
    unicast to the sender). Our own echoed query and unparsable datagrams are ignored; replies
    are de-duplicated by MAC. ``max_replies`` returns early once that many CEMMs answered.
    """
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        _DiscoveryProtocol,
        local_addr=(bind_host, bind_port),
        family=socket.AF_INET,
        allow_broadcast=True,
    )
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
