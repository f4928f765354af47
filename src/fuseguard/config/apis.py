"""``[api.*]`` (northbound APIs), ``[mqtt]`` and ``[cloud]``."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any, Self

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from fuseguard.config.common import (
    _Model,
)
from fuseguard.config.ocpp import OcppApiConfig


def _per_peer(default: int, *, of: int) -> Any:
    """The ``max_connections_per_peer`` field of a listener that serves ``of`` connections."""
    return Field(
        default=default,
        ge=1,
        le=of,
        description=f"connections one peer (IP address) may hold at once, of the {of} the "
        "listener serves (TLS handshakes included); more are closed on connect, so one peer "
        "cannot take every slot",
    )


class LocalApiConfig(_Model):
    """CLEMAP local API (HTTPS :7000)."""

    enabled: bool = True
    host: str = "0.0.0.0"
    port: int = Field(default=7000, ge=0, le=65535, description="0 = any free port")
    tls: bool = True
    cert_file: Path | None = None
    key_file: Path | None = None
    tls_names: list[str] = Field(
        default_factory=list,
        max_length=32,
        description="host names and addresses clients use to reach this edge; they go into the "
        "generated certificate's subjectAltName (with host, localhost and 127.0.0.1)",
    )
    docs: bool = Field(default=False, description="serve /docs and /openapi.json (behind auth)")
    user: str = "admin"
    password: SecretStr = SecretStr("")
    keepalive_timeout_s: float = Field(default=120.0, gt=0, le=86400)
    max_connections_per_peer: int = _per_peer(16, of=64)
    default_fallback_a: float | None = Field(
        default=None,
        ge=0,
        le=10_000,
        description="FallbackCurrentLimit until an EMS writes one; unset: the main fuse, but "
        "never above the EMS's last CurrentLimit",
    )


class ModbusApiConfig(_Model):
    """Modbus TCP twin (:5020). Modbus has no authentication: ``allowed_hosts`` may connect."""

    enabled: bool = True
    host: str = Field(
        default="127.0.0.1", description="bind address; loopback unless the EMS is elsewhere"
    )
    port: int = Field(default=5020, ge=0, le=65535, description="0 = any free port")
    allowed_hosts: list[str] = Field(
        default_factory=lambda: ["127.0.0.0/8", "::1/128"],
        max_length=256,
        description="IP addresses or CIDR networks that may connect (read and write); "
        "everyone else is disconnected at once",
    )
    read_only: bool = Field(
        default=False, description="refuse every write (exception 01): the twin only reports"
    )
    max_connections_per_peer: int = _per_peer(8, of=16)

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, v: list[str]) -> list[str]:
        for entry in v:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                msg = f"{entry!r} is not an IP address or CIDR network (e.g. 192.168.1.0/24)"
                raise ValueError(msg) from None
        return v


class EvseApiConfig(_Model):
    """Direct EVSE Control + status API (HTTPS :3032, certificates as for the local API)."""

    enabled: bool = True
    host: str = "0.0.0.0"
    port: int = Field(default=3032, ge=0, le=65535, description="0 = any free port")
    tls: bool = True
    cert_file: Path | None = Field(
        default=None, description="PEM certificate; without it a self-signed one is generated"
    )
    key_file: Path | None = None
    max_duration_s: int = Field(default=86400, ge=1, le=31_536_000)
    docs: bool = Field(default=False, description="serve /docs and /openapi.json (public)")
    max_connections_per_peer: int = _per_peer(16, of=64)


class MetricsApiConfig(_Model):
    """Prometheus ``GET /metrics`` on its own port (off by default: 9100 is often taken)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=9100, ge=0, le=65535, description="0 = any free port")
    user: str = "prometheus"
    password: SecretStr = Field(
        default=SecretStr(""), description="Basic auth password; empty = no auth"
    )
    max_connections_per_peer: int = _per_peer(16, of=64)


class WebApiConfig(_Model):
    """The web dashboard (``docs/web.md``): HTTPS with the edge's certificate by default."""

    enabled: bool = False
    host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=0, le=65535, description="0 = any free port")
    tls: bool = True
    cert_file: Path | None = None
    key_file: Path | None = None
    session_idle_s: float = Field(default=12 * 3600.0, gt=0, le=30 * 86400)
    login_max_failures: int = Field(default=5, ge=1, le=1000)
    login_window_s: float = Field(default=300.0, gt=0, le=86400)
    max_connections_per_peer: int = _per_peer(16, of=64)


class ApiConfig(_Model):
    """Northbound APIs."""

    local: LocalApiConfig = Field(default_factory=LocalApiConfig)
    modbus: ModbusApiConfig = Field(default_factory=ModbusApiConfig)
    evse: EvseApiConfig = Field(default_factory=EvseApiConfig)
    metrics: MetricsApiConfig = Field(default_factory=MetricsApiConfig)
    ocpp: OcppApiConfig = Field(default_factory=OcppApiConfig)
    web: WebApiConfig = Field(default_factory=WebApiConfig)


_TOPIC_LEVELS = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")


class MqttConfig(_Model):
    """MQTT interface and Home Assistant discovery (``docs/mqtt.md``); off without ``url``."""

    url: str | None = Field(default=None, description="mqtt://host:1883 or mqtts://host:8883 (TLS)")
    user: str = ""
    password: SecretStr = SecretStr("")
    ca_file: Path | None = Field(
        default=None, description="CA bundle for mqtts:// (default: the system's CAs)"
    )
    topic_prefix: str = "fuseguard"
    client_id: str | None = Field(default=None, description="default: fuseguard-<edge_id>")
    discovery: bool = Field(default=True, description="publish Home Assistant discovery")
    discovery_prefix: str = "homeassistant"
    min_interval_s: float = Field(
        default=1.0, ge=0.1, le=60, description="at most one publish per topic per interval"
    )
    commands: bool = Field(default=True, description="accept commands on .../set topics")
    max_message_bytes: int = Field(
        default=64 * 1024,
        ge=1,
        le=256 * 1024 * 1024,
        description="an inbound message with a larger payload is dropped (and logged) before "
        "it is queued or parsed",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"(mqtts?|tcp)://[^/\s:]+(:\d{1,5})?/?", v):
            msg = "must be mqtt://host[:port] or mqtts://host[:port]"
            raise ValueError(msg)
        return v

    @field_validator("topic_prefix", "discovery_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not _TOPIC_LEVELS.fullmatch(v) or len(v) > 128:
            msg = "must be topic levels of A-Z a-z 0-9 _ . - separated by / (no wildcards)"
            raise ValueError(msg)
        return v


class CloudLinkConfig(_Model):
    """Optional outbound link to a fuseguard cloud (MQTT)."""

    broker: str | None = Field(
        default=None, description="mqtt://host:port, or mqtts://host:8883 for TLS"
    )
    username: str = ""
    password: SecretStr = SecretStr("")
    status_interval_s: float = Field(default=10.0, gt=0, le=86_400)
    state_interval_s: float = Field(
        default=300.0,
        ge=10,
        le=86_400,
        description="re-publish the retained online state this often (the cloud may lose writes)",
    )
    ca_file: Path | None = Field(
        default=None, description="CA of the broker's certificate (mqtts://); default system CAs"
    )
    cert_file: Path | None = Field(default=None, description="client certificate (PEM), optional")
    key_file: Path | None = Field(default=None, description="key of cert_file (PEM), optional")

    @model_validator(mode="after")
    def _check_tls(self) -> Self:
        tls = (self.ca_file, self.cert_file, self.key_file)
        scheme = (self.broker or "").partition("://")[0].lower()
        if any(f is not None for f in tls) and scheme not in ("mqtts", "ssl"):
            msg = "ca_file/cert_file/key_file need a broker url mqtts://host:port"
            raise ValueError(msg)
        if self.key_file is not None and self.cert_file is None:
            msg = "key_file needs cert_file"
            raise ValueError(msg)
        return self
