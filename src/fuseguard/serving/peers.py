"""Connections per peer: one peer can never take every connection slot of a server.

A server's connection cap (``max_connections``) bounds memory, but one peer holding that many
connections open (idle keep-alives, slow requests, or TLS connects that never send a
ClientHello) locked everyone else out until its connections timed out: an EMS on another host
could no longer write its ``CurrentLimit``. :class:`PeerConnections` counts the connections of
each peer (by host, not host:port) so that a server can refuse a peer past
``max_connections_per_peer`` while other peers still get in. A TLS connection counts from the
moment it is accepted, its handshake included (:mod:`.tls_accept`).

Peers behind one NAT or reverse proxy share one address and so one count: raise the key for
such a setup.
"""

from __future__ import annotations

import ipaddress

#: the default of the edge's HTTP listeners' ``max_connections_per_peer`` (their cap is 64)
DEFAULT_MAX_PER_PEER = 16


def host_key(host: str) -> str:
    """The key a peer is counted under: its address, an IPv4-mapped IPv6 one as IPv4."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


class PeerConnections:
    """How many connections each peer holds; at most ``max_per_peer`` each (see the module)."""

    def __init__(self, max_per_peer: int = DEFAULT_MAX_PER_PEER) -> None:
        if max_per_peer < 1:
            msg = f"max_connections_per_peer must be at least 1, not {max_per_peer}"
            raise ValueError(msg)
        self.max_per_peer = max_per_peer
        self._open: dict[str, int] = {}

    def count(self, host: str) -> int:
        """The connections ``host`` holds now."""
        return self._open.get(host_key(host), 0)

    def full(self, host: str) -> bool:
        """True when ``host`` holds ``max_per_peer`` connections already (refuse another)."""
        return self.count(host) >= self.max_per_peer

    def try_open(self, host: str) -> bool:
        """Count one more connection of ``host``; False (nothing counted) when it is full."""
        key = host_key(host)
        held = self._open.get(key, 0)
        if held >= self.max_per_peer:
            return False
        self._open[key] = held + 1
        return True

    def release(self, host: str) -> None:
        """One connection of ``host`` is gone (once per successful :meth:`try_open`)."""
        key = host_key(host)
        held = self._open.get(key, 0) - 1
        if held > 0:
            self._open[key] = held
        else:
            self._open.pop(key, None)  # the map holds only peers with connections: bounded

    @property
    def peers(self) -> int:
        """How many peers hold a connection now."""
        return len(self._open)


__all__ = ["DEFAULT_MAX_PER_PEER", "PeerConnections", "host_key"]
