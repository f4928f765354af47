"""Site configuration: TOML file + ``FUSEGUARD_...`` environment overrides (pydantic-settings).

A broken config never starts anything: :func:`load_config` raises :class:`ConfigError`, whose
``problems`` each name the key path, the file and line, and what is expected.
Environment overrides use ``FUSEGUARD_`` plus the key path joined by ``__``, e.g.
``FUSEGUARD_API__LOCAL__PASSWORD=...`` or ``FUSEGUARD_SITE__MAIN_FUSE_A=50``.
"""

from __future__ import annotations

import ipaddress
import re
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from fuseguard.config.ocpp import OcppApiConfig
from fuseguard.model.circuits import MAIN, CircuitSpec, CircuitTree, CircuitTreeError
from fuseguard.model.ids import is_hex_uuid
from fuseguard.model.numbers import NotFiniteError, finite
from fuseguard.model.phases import Phases, Rotation
from fuseguard.model.status import ChargeMode
from fuseguard.wire.cemm import electric_alias
from fuseguard.wire.meters import MeterMapError, builtin_map_names, load_map_file

_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_OCPP_ID = re.compile(r"^[!-~]{1,48}$")  # printable ASCII without spaces; see ChargerConfig


class _Model(BaseModel):
    # allow_inf_nan=False: NaN and infinities are never config values (a NaN fuse removes a limit,
    # an infinite timeout switches off loss detection); every float is refused with its key path.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _hex_uuid(value: str) -> str:
    if not is_hex_uuid(value):
        msg = "must be 32 lowercase hex characters (a uuid without dashes)"
        raise ValueError(msg)
    return value


HexUuid = Annotated[str, Field(description="32 lowercase hex characters")]


def _to_triple(value: object) -> tuple[float, float, float]:
    if isinstance(value, bool):
        msg = "expected a number of amperes or [L1, L2, L3]"
        raise ValueError(msg)
    try:
        if isinstance(value, int | float):
            one = finite(value, "fuse rating")
            return (one, one, one)
        if isinstance(value, list | tuple) and len(value) == 3:
            l1, l2, l3 = (finite(v, f"fuse rating L{i + 1}") for i, v in enumerate(value))
            return (l1, l2, l3)
    except NotFiniteError as err:
        msg = f"expected finite amperes: {err}"
        raise ValueError(msg) from None
    msg = "expected a number of amperes or [L1, L2, L3]"
    raise ValueError(msg)


PerPhaseA = Annotated[
    tuple[float, float, float],
    BeforeValidator(_to_triple),
    Field(description="amperes: one number for all phases, or [L1, L2, L3]"),
]


def per_phase(value: tuple[float, float, float]) -> Phases:
    """A per-phase config value -> :class:`Phases`."""
    return Phases.of(value)


class CircuitConfig(_Model):
    """A sub-circuit (distribution board, garage feeder) below ``parent``."""

    id: str
    parent: str = "main"
    fuse_a: PerPhaseA
    power_limit_w: float | None = Field(default=None, gt=0, le=10_000_000)
    meter: MeterEndpointConfig | None = Field(
        default=None,
        description="a sub-distribution meter: this circuit's non-EV load measured, not estimated",
    )

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _ID.fullmatch(v) or v == "main":
            msg = "must be 1-64 of A-Z a-z 0-9 _ . - and not 'main'"
            raise ValueError(msg)
        return v

    @field_validator("fuse_a")
    @classmethod
    def _fuse(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if not all(0 < x <= 10_000 for x in v):  # also false for NaN
            msg = "fuse rating must be > 0 and <= 10000 A"
            raise ValueError(msg)
        return v

    def to_spec(self) -> CircuitSpec:
        """The one circuit type the controller and the allocator use."""
        return CircuitSpec(
            id=self.id,
            parent=self.parent,
            fuse_a=per_phase(self.fuse_a),
            power_limit_w=self.power_limit_w,
        )


class SiteConfig(_Model):
    """The grid connection and the circuit tree."""

    edge_id: str = Field(description="this edge device's id (CLEMAP edge_device_id)")
    name: str = ""
    voltage_v: float = Field(default=230.0, gt=100, lt=500)
    main_fuse_a: PerPhaseA
    power_limit_w: float | None = Field(default=None, gt=0, le=10_000_000)
    circuits: list[CircuitConfig] = Field(default_factory=list)

    @field_validator("edge_id")
    @classmethod
    def _edge_id(cls, v: str) -> str:
        if not _ID.fullmatch(v):
            msg = "must be 1-64 of A-Z a-z 0-9 _ . -"
            raise ValueError(msg)
        return v

    @field_validator("main_fuse_a")
    @classmethod
    def _fuse(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        return CircuitConfig._fuse(v)

    @model_validator(mode="after")
    def _tree(self) -> Self:
        for i, c in enumerate(self.circuits):
            if c.id in {"main"} | {o.id for o in self.circuits[:i]}:
                msg = f"circuits[{i}].id {c.id!r} is used twice"
                raise ValueError(msg)
        known = {"main"} | {c.id for c in self.circuits}
        for i, c in enumerate(self.circuits):
            if c.parent not in known:
                msg = f"circuits[{i}].parent {c.parent!r} is not a circuit"
                raise ValueError(msg)
        try:
            self.circuit_tree()
        except CircuitTreeError as err:
            raise ValueError(str(err)) from None
        return self

    def circuit_tree(self) -> CircuitTree:
        """``main`` (the grid connection) and every sub-circuit, as one validated tree."""
        main = CircuitSpec(
            id=MAIN, parent=None, fuse_a=self.main_fuse, power_limit_w=self.power_limit_w
        )
        return CircuitTree.of([main, *(c.to_spec() for c in self.circuits)])

    @property
    def main_fuse(self) -> Phases:
        """Main fuse per phase."""
        return per_phase(self.main_fuse_a)


MeterDriver = Literal["cemm", "clemap", "virtual", "modbus", "sunspec"]
#: drivers that speak Modbus TCP (default port 502, not 80)
_MODBUS_DRIVERS = ("modbus", "sunspec")


class MeterEndpointConfig(_Model):
    """How to read one meter: the grid meter, a sub-circuit's meter or the PV meter.

    ``cemm``: a CEMM electricity alias (``p1``, ``p1-usb``, ``emucs``, ``emucs-usb``, ``han``,
    ``dlms-usb``, ``s01``-``s03``, ``mbX``, ``usage``); ``clemap``: a CLEMAP edge; ``modbus``: a
    Modbus TCP energy meter of a built-in ``model`` (or a user ``map_file``,
    docs/devices/meters.md);
    ``sunspec``: a SunSpec meter or inverter (``sunspec_device``), base address discovered.
    """

    driver: MeterDriver = "cemm"
    host: str = "127.0.0.1"
    port: int = Field(default=80, ge=1, le=65535, description="default 502 for modbus/sunspec")
    alias: str = "p1"
    user: str = ""
    password: SecretStr = SecretStr("")
    model: str | None = Field(
        default=None, description="modbus: sdm630 | em24 | em340 | umg604 | abb_b23"
    )
    map_file: Path | None = Field(
        default=None,
        description="modbus: a register map file (TOML) instead of a built-in model; "
        "relative to the config file",
    )
    unit_id: int = Field(default=1, ge=0, le=255, description="modbus/sunspec unit id")
    sunspec_device: Literal["meter", "inverter"] = Field(
        default="meter", description="sunspec: read a meter (201-204) or an inverter (101-103, 701)"
    )
    request_timeout_s: float = Field(default=2.0, gt=0, le=60, description="modbus/sunspec")
    period_s: float = Field(default=1.0, gt=0, le=60)
    stale_after_s: float = Field(
        default=10.0, gt=0, le=3600, description="meter silent this long -> meter-loss fallback"
    )

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: object) -> object:
        """Port 502 for Modbus drivers; ``map_file`` relative to the config file's directory."""
        if not isinstance(data, dict):
            return data
        if data.get("driver") in _MODBUS_DRIVERS and "port" not in data:
            data = {**data, "port": 502}
        toml = _TOML_PATH.get()
        map_file = data.get("map_file")
        if isinstance(map_file, str) and toml is not None and not Path(map_file).is_absolute():
            data = {**data, "map_file": str(toml.parent / map_file)}
        return data

    @model_validator(mode="after")
    def _cemm_alias(self) -> Self:
        """A CEMM meter reads ``electric_power``: any electricity alias family (wire.cemm)."""
        if self.driver == "cemm":
            electric_alias(self.alias)
        return self

    @model_validator(mode="after")
    def _model_or_map(self) -> Self:
        if self.driver != "modbus":
            if self.model is not None or self.map_file is not None:
                msg = "model and map_file are for driver = 'modbus'"
                raise ValueError(msg)
            return self
        if (self.model is None) == (self.map_file is None):
            msg = "driver 'modbus' needs exactly one of model (a built-in map) or map_file"
            raise ValueError(msg)
        if self.model is not None and self.model not in builtin_map_names():
            msg = f"model {self.model!r} is not built in ({', '.join(builtin_map_names())})"
            raise ValueError(msg)
        if self.map_file is not None:
            try:
                load_map_file(self.map_file)
            except MeterMapError as err:
                raise ValueError(str(err)) from None
        return self


class MeterConfig(MeterEndpointConfig):
    """The meter at the grid connection (the safety signal)."""

    phase_assumption: Literal["worst", "balanced"] = Field(
        default="worst",
        description="total-power meters: all non-EV load on every phase (worst) or 1/3 each",
    )


class PvConfig(MeterEndpointConfig):
    """``[pv]``: a separate PV meter for the PV surplus modes (caps the grid-meter surplus).

    A SunSpec inverter (``driver = "sunspec"``, the default device here), a Modbus meter or a
    CEMM alias (``mbX``). The grid meter stays authoritative (docs/devices/meters.md).
    """

    sunspec_device: Literal["meter", "inverter"] = "inverter"
    alias: str = "mb5"


class PlugConfig(_Model):
    """A plug (connector) of an EVSE."""

    uuid: str
    label: str = Field(min_length=1, max_length=64)

    _check = field_validator("uuid")(_hex_uuid)


class ChargerConfig(_Model):
    """One EVSE (charging station) and how to reach it."""

    id: str
    evse_uuid: str
    driver: Literal["bender", "clemap", "ocpp"] = Field(
        default="bender",
        description="bender: a Bender CC612/613 charge controller; clemap: a child edge "
        "(cascading), driven through its local API with rest_port, user and password; its "
        "safe_current_a/safe_timeout_s are the child's FallbackCurrentLimit and keep-alive "
        "timeout; ocpp: an OCPP 1.6J charge point connecting to [api.ocpp] as ocpp_id (plugs "
        "= connectors 1, 2, ...; safe_current_a, default 6 A, is its permanent TxDefaultProfile)",
    )
    ocpp_id: str | None = Field(
        default=None, description="driver ocpp: the charge point identity in the URL"
    )
    ocpp_password: SecretStr | None = Field(
        default=None, description="driver ocpp: HTTP Basic password (security profile 1/2)"
    )
    host: str = "127.0.0.1"
    rest_port: int = Field(default=80, ge=1, le=65535)
    user: str = ""
    password: SecretStr = SecretStr("")
    modbus_port: int = Field(default=502, ge=1, le=65535)
    unit_id: int = Field(default=255, ge=0, le=255)
    circuit: str = "main"
    rotation: Rotation = Rotation.L1L2L3
    phases: Literal[1, 3] = 3
    min_current_a: int = Field(default=6, ge=6, le=80)
    max_current_a: int = Field(default=32, ge=6, le=80)
    mode: ChargeMode = ChargeMode.FAST
    priority: int = Field(default=0, ge=-100, le=100)
    safe_current_a: int = Field(
        default=0, ge=0, le=80, description="charger-side fallback if fuseguard goes silent"
    )
    safe_timeout_s: int = Field(default=60, ge=0, le=3600)
    plugs: list[PlugConfig] = Field(min_length=1)

    _check = field_validator("evse_uuid")(_hex_uuid)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _ID.fullmatch(v):
            msg = "must be 1-64 of A-Z a-z 0-9 _ . -"
            raise ValueError(msg)
        return v

    @field_validator("ocpp_id")
    @classmethod
    def _ocpp_id(cls, v: str | None) -> str | None:
        if v is not None and (not _OCPP_ID.fullmatch(v) or any(c in v for c in "/?%:#")):
            msg = "must be 1-48 printable ASCII characters without spaces, '/', '?', '%', ':', '#'"
            raise ValueError(msg)
        return v

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if self.driver == "ocpp" and self.ocpp_id is None:
            msg = "driver ocpp needs ocpp_id (the charge point identity)"
            raise ValueError(msg)
        if self.driver == "clemap" and len(self.plugs) != 1:
            msg = "a child edge (driver clemap) is one consumer: give it exactly one plug entry"
            raise ValueError(msg)
        if self.min_current_a > self.max_current_a:
            msg = "min_current_a must be <= max_current_a"
            raise ValueError(msg)
        if self.safe_current_a and not (
            self.min_current_a <= self.safe_current_a <= self.max_current_a
        ):
            msg = "safe_current_a must be 0 or within [min_current_a, max_current_a]"
            raise ValueError(msg)
        return self


class ControlConfig(_Model):
    """Control-loop tuning."""

    min_run_s: float = Field(
        default=2700.0,
        ge=0,
        le=86_400,
        description="a started car runs at least this long (turn length)",
    )
    min_pause_s: float = Field(
        default=900.0, ge=0, le=86_400, description="a paused car waits at least this long"
    )
    ramp_up_a_per_s: float = Field(
        default=4.0, gt=0, le=1000, description="max increase per second per plug"
    )
    charger_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="charger silent this long -> assume its last setpoint",
    )
    charger_idle_poll_s: float = Field(
        default=10.0,
        ge=0,
        le=60,
        description="a steady charger is read this often (s; the meter every period; "
        "a charger fast after a setpoint or state change or a meter step; 0 = every period)",
    )
    recently_started_window_s: float = Field(default=60.0, ge=0, le=86_400)
    pv_enable_delay_s: float = Field(default=60.0, ge=0, le=86_400)
    pv_disable_delay_s: float = Field(default=180.0, ge=0, le=86_400)


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


class MetricsApiConfig(_Model):
    """Prometheus ``GET /metrics`` on its own port (off by default: 9100 is often taken)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=9100, ge=0, le=65535, description="0 = any free port")
    user: str = "prometheus"
    password: SecretStr = Field(
        default=SecretStr(""), description="Basic auth password; empty = no auth"
    )


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


_TOML_PATH: ContextVar[Path | None] = ContextVar("_TOML_PATH", default=None)


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
