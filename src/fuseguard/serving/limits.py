"""The bounds of one embedded HTTP server (see :mod:`fuseguard.serving`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """Bounds of one embedded HTTP server (see the module docstring)."""

    max_body_bytes: int = 64 * 1024
    max_connections: int = 64
    #: connections one peer (host) may hold at once, TLS handshakes included (:mod:`.peers`);
    #: None: no cap below ``max_connections`` (the cloud behind a proxy, the simulators). The
    #: edge's listeners set it from their ``max_connections_per_peer`` (default 16).
    max_connections_per_peer: int | None = None

    @property
    def per_peer(self) -> int:
        """The connections one peer may hold (``max_connections`` when not capped apart)."""
        if self.max_connections_per_peer is None:
            return self.max_connections
        return min(self.max_connections_per_peer, self.max_connections)

    header_timeout_s: float = 10.0
    body_timeout_s: float = 10.0
    keep_alive_s: int = 5
    max_header_bytes: int = 16 * 1024


DEFAULT_LIMITS = ServerLimits()
