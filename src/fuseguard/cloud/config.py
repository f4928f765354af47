"""Cloud configuration: ``cloud.toml`` plus ``FUSEGUARD_CLOUD_...`` environment overrides.

Example (``examples/cloud.toml``)::

    [server]
    host = "0.0.0.0"
    port = 3032
    max_connections = 512           # open HTTP connections at once
    loop = "auto"                   # "uvloop" / "asyncio"; auto: uvloop when installed
    http = "auto"                   # "httptools" / "h11"; auto: httptools when installed

    [database]
    url = "postgresql://fuseguard:secret@db/fuseguard"   # default: SQLite file

    [broker]
    url = "mqtts://broker:8883"     # mqtt://broker:1883 without TLS
    username = "cloud"
    password = "..."
    topic_prefix = "fuseguard"
    ca_file = "/etc/fuseguard/broker-ca.pem"   # default: the system's CAs
    # cert_file / key_file: a client certificate, if the broker asks for one

    [api]
    ack_timeout_s = 5.0
    max_duration_s = 86400
    status_linger_s = 0.05          # statuses wait this long to share a database write

    [metrics]                       # GET /metrics on the server port
    enabled = true
    user = "prometheus"             # Basic auth when password is set
    password = "..."

    [web]                           # the fleet page (GET /fleet): only when admin_password is set
    admin_user = "admin"
    admin_password = "..."

Environment: ``FUSEGUARD_CLOUD_BROKER__URL=mqtt://...``, ``FUSEGUARD_CLOUD_DATABASE__URL=...``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from fuseguard.api.evse_models import DEFAULT_EVSE_API_PORT, DEFAULT_MAX_DURATION_S
from fuseguard.cloud.link import TlsSettings, tls_context
from fuseguard.cloud.protocol import DEFAULT_PREFIX
from fuseguard.serving import EventLoop, HttpParser


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSection(_Section):
    """Where the HTTP API listens, and how.

    ``max_connections``: open HTTP connections at once (one more is closed on connect; keep the
    process's open-file limit above it). The edge's 64 is too few for a replica behind a load
    balancer or many clients. ``loop`` / ``http``: ``auto`` takes uvloop / httptools when
    installed (``pip install fuseguard[cloud]``), else asyncio / h11; the guards are the same.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_EVSE_API_PORT, ge=0, le=65535)
    max_connections: int = Field(default=512, ge=1, le=65_536)
    loop: EventLoop = "auto"
    http: HttpParser = "auto"


class DatabaseSection(_Section):
    """SQLAlchemy URL: ``sqlite:///cloud.db`` (default) or ``postgresql://...``."""

    url: str = "sqlite+aiosqlite:///fuseguard-cloud.db"


class BrokerSection(_Section):
    """The MQTT broker (MQTT 3.1.1) and the cloud's own credentials on it."""

    url: str = "mqtt://127.0.0.1:1883"
    username: str | None = None
    password: SecretStr | None = None
    topic_prefix: str = DEFAULT_PREFIX
    embedded: bool = Field(
        default=False, description="run an in-process amqtt broker on url's port (trying out only)"
    )
    ca_file: Path | None = Field(
        default=None, description="CA certificate(s) of the broker (mqtts://); default system CAs"
    )
    cert_file: Path | None = Field(default=None, description="client certificate (PEM), optional")
    key_file: Path | None = Field(default=None, description="key of cert_file (PEM), optional")

    @model_validator(mode="after")
    def _check_tls(self) -> Self:
        tls_context(self.url, self.tls)  # raises ValueError (and OSError for unreadable files)
        return self

    @property
    def tls(self) -> TlsSettings:
        """The TLS files as the link takes them."""
        return TlsSettings(self.ca_file, self.cert_file, self.key_file)


class ApiSection(_Section):
    """API behaviour."""

    ack_timeout_s: float = Field(default=5.0, gt=0)
    max_duration_s: int = Field(default=DEFAULT_MAX_DURATION_S, ge=1)
    #: How long a received status (or online/offline state) may wait to share a database write
    #: with others (:mod:`fuseguard.cloud.writer`); acknowledged targets never wait. 0: at once.
    status_linger_s: float = Field(default=0.05, ge=0, le=1.0)


class MetricsSection(_Section):
    """Prometheus ``GET /metrics`` on the server port (Basic auth when ``password`` is set)."""

    enabled: bool = False
    user: str = "prometheus"
    password: SecretStr = SecretStr("")


class WebSection(_Section):
    """The fleet page ``GET /fleet``: served only when ``admin_password`` is set (Basic auth)."""

    admin_user: str = Field(default="admin", min_length=1, max_length=64)
    admin_password: SecretStr = SecretStr("")

    @property
    def enabled(self) -> bool:
        """True when a password is configured."""
        return bool(self.admin_password.get_secret_value())


_TOML_PATH: ContextVar[Path | None] = ContextVar("_CLOUD_TOML_PATH", default=None)


class CloudSettings(BaseSettings):
    """Everything ``fuseguard cloud`` needs."""

    model_config = SettingsConfigDict(
        env_prefix="FUSEGUARD_CLOUD_", env_nested_delimiter="__", extra="forbid"
    )

    server: ServerSection = Field(default_factory=ServerSection)
    database: DatabaseSection = Field(default_factory=DatabaseSection)
    broker: BrokerSection = Field(default_factory=BrokerSection)
    api: ApiSection = Field(default_factory=ApiSection)
    metrics: MetricsSection = Field(default_factory=MetricsSection)
    web: WebSection = Field(default_factory=WebSection)
    replica_id: str = Field(
        default_factory=lambda: uuid.uuid4().hex[:12],
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="names this process on the broker (acks come back to it); random by default",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """init > environment > TOML file."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _TOML_PATH.get()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


@contextmanager
def _toml(path: Path | None) -> Iterator[None]:
    token = _TOML_PATH.set(path)
    try:
        yield
    finally:
        _TOML_PATH.reset(token)


def load_cloud_settings(path: Path | str | None = None) -> CloudSettings:
    """Read ``path`` (TOML; optional) with environment overrides; raises on invalid settings."""
    file = None if path is None else Path(path)
    if file is not None and not file.is_file():
        msg = f"cloud config {file} does not exist"
        raise FileNotFoundError(msg)
    with _toml(file):
        return CloudSettings()
