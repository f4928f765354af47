"""Who may talk to the northbound servers: host allow-lists and a per-peer failed-auth throttle.

Modbus TCP has no authentication, so the Modbus twin admits only the peers of its
``allowed_hosts`` (IP addresses or CIDR networks, like the "allowed hosts" list of inverter
vendors' Modbus TCP servers). The Basic-auth local API throttles failed attempts per peer and logs
one line per burst instead of one per try.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: The default allow-list: this machine only.
LOOPBACK_HOSTS = ("127.0.0.0/8", "::1/128")


def parse_networks(entries: Iterable[str]) -> tuple[IpNetwork, ...]:
    """``["192.168.1.10", "10.0.0.0/24"]`` -> networks; ValueError naming a bad entry."""
    networks: list[IpNetwork] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            msg = f"{entry!r} is not an IP address or CIDR network (e.g. 192.168.1.0/24)"
            raise ValueError(msg) from None
    return tuple(networks)


@dataclass(frozen=True, slots=True)
class HostAllowList:
    """Peers allowed to connect; an IPv4-mapped IPv6 peer counts as its IPv4 address."""

    networks: tuple[IpNetwork, ...]

    @classmethod
    def of(cls, entries: Iterable[str]) -> HostAllowList:
        """From IP/CIDR strings (see :func:`parse_networks`)."""
        return cls(parse_networks(entries))

    def allows(self, host: str | None) -> bool:
        """True when ``host`` (a peer address, maybe with ``%scope``) is in a listed network."""
        if not host:
            return False
        try:
            addr = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        return any(addr.version == net.version and addr in net for net in self.networks)


@dataclass
class _PeerFailures:
    count: int = 0
    first_at: float = 0.0
    blocked_until: float = 0.0
    logged: bool = False


@dataclass
class AuthThrottle:
    """Failed-login throttle per peer (monotonic seconds supplied by the caller).

    After ``max_failures`` wrong guesses within ``window_s`` the peer is refused (429) for
    ``block_s`` without its credentials being checked. A request without credentials is no guess
    (every client's first request may lack them): it is only logged. :meth:`failed` returns True
    only for the first failure of a burst, so the caller logs once per burst, not once per try.
    """

    max_failures: int = 10
    window_s: float = 60.0
    block_s: float = 60.0
    max_peers: int = 4096
    _peers: dict[str, _PeerFailures] = field(default_factory=dict)

    def blocked(self, peer: str, now: float) -> bool:
        """True while ``peer`` is locked out."""
        entry = self._peers.get(peer)
        return entry is not None and now < entry.blocked_until

    def failed(self, peer: str, now: float, *, guess: bool = True) -> bool:
        """Count a failure (a wrong ``guess`` counts toward the block); True: a new burst."""
        entry = self._peers.get(peer)
        if entry is None or (now - entry.first_at > self.window_s and now >= entry.blocked_until):
            if len(self._peers) >= self.max_peers:
                self._forget_old(now)
            entry = _PeerFailures(first_at=now)
            self._peers[peer] = entry
        entry.count += 1 if guess else 0
        if entry.count >= self.max_failures:
            entry.blocked_until = now + self.block_s
        first = not entry.logged
        entry.logged = True
        return first

    def succeeded(self, peer: str) -> None:
        """A good login ends the peer's burst."""
        self._peers.pop(peer, None)

    def _forget_old(self, now: float) -> None:
        for peer in [
            p
            for p, e in self._peers.items()
            if now - e.first_at > self.window_s and now >= e.blocked_until
        ]:
            del self._peers[peer]
        if len(self._peers) >= self.max_peers:  # still full: drop the oldest burst
            del self._peers[min(self._peers, key=lambda p: self._peers[p].first_at)]


__all__ = ["LOOPBACK_HOSTS", "AuthThrottle", "HostAllowList", "IpNetwork", "parse_networks"]
