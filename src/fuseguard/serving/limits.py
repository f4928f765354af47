"""The bounds of one embedded HTTP server (see :mod:`fuseguard.serving`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """Bounds of one embedded HTTP server (see the module docstring)."""

    max_body_bytes: int = 64 * 1024
    max_connections: int = 64
    #: connections one peer (host) may hold at once, TLS handshakes included (:mod:`.peers`)
    max_connections_per_peer: int = 16
    header_timeout_s: float = 10.0
    body_timeout_s: float = 10.0
    keep_alive_s: int = 5
    max_header_bytes: int = 16 * 1024


DEFAULT_LIMITS = ServerLimits()
