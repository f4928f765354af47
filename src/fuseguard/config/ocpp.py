"""``[api.ocpp]``: the OCPP 1.6J central system on the edge (``docs/devices/ocpp.md``).

The per-charger keys (``driver = "ocpp"``, ``ocpp_id``, ``ocpp_password``, ``safe_current_a``) live
in :class:`fuseguard.config.models.ChargerConfig`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class OcppApiConfig(BaseModel):
    """OCPP 1.6J central system for ``driver = "ocpp"`` chargers (``docs/devices/ocpp.md``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "0.0.0.0"
    port: int = Field(default=9000, ge=0, le=65535, description="0 = any free port")
    tls: bool = Field(
        default=False,
        description="wss:// (security profile 2); without cert_file/key_file the edge's "
        "self-signed pair (SAN: host, api.local.tls_names, localhost, 127.0.0.1)",
    )
    cert_file: Path | None = None
    key_file: Path | None = None
    allow_no_auth: bool = Field(
        default=False,
        description="accept charge points configured without ocpp_password (security profile 0)",
    )
    lease_s: float = Field(
        default=60.0, ge=5, le=3600, description="validity of fuseguard's live-limit profile"
    )
    meter_interval_s: int = Field(
        default=10, ge=1, le=3600, description="MeterValueSampleInterval set after boot"
    )
    heartbeat_s: int = Field(default=60, ge=10, le=86400)
    max_frame_bytes: int = Field(default=65536, ge=4096, le=16_777_216)
    max_pending_connections: int = Field(
        default=128,
        ge=8,
        le=4096,
        description="connections in their opening handshake (TLS included) at once; over it the "
        "oldest that sent no request is closed",
    )
    max_pending_connections_per_peer: int | None = Field(
        default=None,
        ge=1,
        le=4096,
        description="of those, how many one peer (IP address) may hold; more are closed on "
        "connect (default: half of max_pending_connections). Authenticated charge points do not "
        "count, only handshakes in progress: chargers behind one NAT share it only while they "
        "connect",
    )
    open_timeout_s: float = Field(
        default=10.0, ge=1, le=60, description="TLS and opening handshake must finish within this"
    )
    upstream: str | None = Field(
        default=None,
        description="local controller mode: the operator's backend (ws:// or wss://, without the "
        "identity); each charge point is forwarded with its identity and ocpp_password",
    )
    local_auth: Literal["accept_all", "allow_list"] = Field(
        default="accept_all",
        description="who may charge when fuseguard answers itself (no upstream, or it is down)",
    )
    allowed_id_tags: list[str] = Field(default_factory=list, max_length=10_000)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if (self.cert_file is None) != (self.key_file is None):
            msg = "cert_file and key_file go together (neither: tls generates a self-signed pair)"
            raise ValueError(msg)
        if self.upstream is not None and (
            not self.upstream.startswith(("ws://", "wss://")) or len(self.upstream) > 500
        ):
            msg = "upstream must be a ws:// or wss:// URL"
            raise ValueError(msg)
        per_peer = self.max_pending_connections_per_peer
        if per_peer is not None and per_peer > self.max_pending_connections:
            msg = (
                f"max_pending_connections_per_peer ({per_peer}) must be at most "
                f"max_pending_connections ({self.max_pending_connections})"
            )
            raise ValueError(msg)
        if any(not 0 < len(tag) <= 20 for tag in self.allowed_id_tags):
            msg = "allowed_id_tags are OCPP id tags: 1-20 characters"
            raise ValueError(msg)
        return self


__all__ = ["OcppApiConfig"]
