"""Site configuration (TOML + environment), its loader and its one translation for the controller.

A broken config never starts anything: :func:`load_config` raises :class:`ConfigError`, whose
``problems`` each name the key path, the file and line, and what is expected.
"""

from fuseguard.config.loader import (
    ConfigError,
    ConfigProblem,
    check_config,
    config_to_dict,
    load_config,
    locate_keys,
)
from fuseguard.config.models import (
    ApiConfig,
    ChargerConfig,
    CircuitConfig,
    CloudLinkConfig,
    ControlConfig,
    EvseApiConfig,
    FuseguardConfig,
    LocalApiConfig,
    LoggingConfig,
    MeterConfig,
    MeterEndpointConfig,
    ModbusApiConfig,
    PlugConfig,
    PvConfig,
    SiteConfig,
    StorageConfig,
    per_phase,
)

__all__ = [
    "ApiConfig",
    "ChargerConfig",
    "CircuitConfig",
    "CloudLinkConfig",
    "ConfigError",
    "ConfigProblem",
    "ControlConfig",
    "EvseApiConfig",
    "FuseguardConfig",
    "LocalApiConfig",
    "LoggingConfig",
    "MeterConfig",
    "MeterEndpointConfig",
    "ModbusApiConfig",
    "PlugConfig",
    "PvConfig",
    "SiteConfig",
    "StorageConfig",
    "check_config",
    "config_to_dict",
    "load_config",
    "locate_keys",
    "per_phase",
]
