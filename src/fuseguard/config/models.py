"""Site configuration: TOML file + ``FUSEGUARD_...`` environment overrides (pydantic-settings).

A broken config never starts anything: :func:`load_config` raises :class:`ConfigError`, whose
``problems`` each name the key path, the file and line, and what is expected.
Environment overrides use ``FUSEGUARD_`` plus the key path joined by ``__``, e.g.
``FUSEGUARD_API__LOCAL__PASSWORD=...`` or ``FUSEGUARD_SITE__MAIN_FUSE_A=50``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import (
    Field,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from fuseguard.config.apis import (
    ApiConfig,
    CloudLinkConfig,
    EvseApiConfig,
    LocalApiConfig,
    MetricsApiConfig,
    ModbusApiConfig,
    MqttConfig,
    WebApiConfig,
)
from fuseguard.config.chargers import (
    ChargerConfig,
    ControlConfig,
    PlugConfig,
)
from fuseguard.config.common import (
    _TOML_PATH,
    HexUuid,
    PerPhaseA,
    _Model,
    per_phase,
)
from fuseguard.config.site import (
    CircuitConfig,
    MeterConfig,
    MeterDriver,
    MeterEndpointConfig,
    PvConfig,
    SiteConfig,
)


class StorageConfig(_Model):
    """Where state is kept."""

    url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite in data_dir")
    history_raw_hours: float = Field(
        default=48.0, gt=0, le=24 * 31, description="keep the 1 s history samples this long"
    )
    history_minute_days: float = Field(
        default=366.0, gt=0, le=3660, description="keep 1 min aggregates, compliance and sessions"
    )


class LoggingConfig(_Model):
    """Log output."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "console", "json"] = "auto"


class FuseguardConfig(BaseSettings):
    """The whole edge configuration."""

    model_config = SettingsConfigDict(
        env_prefix="FUSEGUARD_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        allow_inf_nan=False,
    )

    site: SiteConfig
    meter: MeterConfig = Field(default_factory=MeterConfig)
    pv: PvConfig | None = None
    chargers: list[ChargerConfig] = Field(default_factory=list)
    control: ControlConfig = Field(default_factory=ControlConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    cloud: CloudLinkConfig = Field(default_factory=CloudLinkConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    data_dir: Path = Path("data")

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
        path = _TOML_PATH.get()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @model_validator(mode="after")
    def _cross(self) -> Self:
        circuits = {"main"} | {c.id for c in self.site.circuits}
        self._check_ocpp()
        ids: set[str] = set()
        uuids: dict[str, str] = {}
        for i, ch in enumerate(self.chargers):
            if ch.id in ids:
                msg = f"chargers[{i}].id {ch.id!r} is used twice"
                raise ValueError(msg)
            ids.add(ch.id)
            if ch.circuit not in circuits:
                msg = f"chargers[{i}].circuit {ch.circuit!r} is not a circuit"
                raise ValueError(msg)
            for where, u in [(f"chargers[{i}].evse_uuid", ch.evse_uuid)] + [
                (f"chargers[{i}].plugs[{j}].uuid", p.uuid) for j, p in enumerate(ch.plugs)
            ]:
                if u in uuids:
                    msg = f"{where}: duplicate uuid {u} (also {uuids[u]})"
                    raise ValueError(msg)
                uuids[u] = where
        return self

    def _check_ocpp(self) -> None:
        identities: set[str] = set()
        for i, ch in enumerate(self.chargers):
            if ch.driver != "ocpp":
                continue
            if ch.ocpp_id in identities:
                msg = f"chargers[{i}].ocpp_id {ch.ocpp_id!r} is used twice"
                raise ValueError(msg)
            identities.add(str(ch.ocpp_id))
            password = ch.ocpp_password.get_secret_value() if ch.ocpp_password else ""
            if not password and not self.api.ocpp.allow_no_auth:
                msg = (
                    f"chargers[{i}].ocpp_password is needed (security profile 1/2), or set "
                    "[api.ocpp] allow_no_auth = true to accept this charge point without one"
                )
                raise ValueError(msg)

    @property
    def storage_url(self) -> str:
        """The storage URL in force (default: SQLite file in the data dir)."""
        if self.storage.url:
            return self.storage.url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'fuseguard.db').resolve()}"


__all__ = [
    "ApiConfig",
    "ChargerConfig",
    "CircuitConfig",
    "CloudLinkConfig",
    "ControlConfig",
    "EvseApiConfig",
    "FuseguardConfig",
    "HexUuid",
    "LocalApiConfig",
    "LoggingConfig",
    "MeterConfig",
    "MeterDriver",
    "MeterEndpointConfig",
    "MetricsApiConfig",
    "ModbusApiConfig",
    "MqttConfig",
    "PerPhaseA",
    "PlugConfig",
    "PvConfig",
    "SiteConfig",
    "StorageConfig",
    "WebApiConfig",
    "per_phase",
]
