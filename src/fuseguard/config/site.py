"""``[site]`` (grid connection and circuit tree), ``[meter]`` and ``[pv]``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from fuseguard.config.common import (
    _ID,
    _TOML_PATH,
    PerPhaseA,
    _Model,
    per_phase,
)
from fuseguard.model.circuits import MAIN, CircuitSpec, CircuitTree, CircuitTreeError
from fuseguard.model.phases import Phases
from fuseguard.wire.cemm import electric_alias
from fuseguard.wire.meters import MeterMapError, builtin_map_names, load_map_file


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
    non_ev_load_a: PerPhaseA | None = Field(
        default=None,
        description="the non-EV load assumed on this circuit while it has no meter (A per phase; "
        "default 0: the grid meter alone bounds it through main)",
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

    @field_validator("non_ev_load_a")
    @classmethod
    def _assumed(cls, v: tuple[float, float, float] | None) -> tuple[float, float, float] | None:
        if v is not None and not all(0 <= x <= 10_000 for x in v):  # also false for NaN
            msg = "assumed non-EV load must be >= 0 and <= 10000 A"
            raise ValueError(msg)
        return v

    def to_spec(self) -> CircuitSpec:
        """The one circuit type the controller and the allocator use."""
        return CircuitSpec(
            id=self.id,
            parent=self.parent,
            fuse_a=per_phase(self.fuse_a),
            power_limit_w=self.power_limit_w,
            non_ev_load_a=per_phase(self.non_ev_load_a or (0.0, 0.0, 0.0)),
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
    phase_lock: bool = Field(
        default=True,
        description=(
            "poll just after the meter publishes, learnt from its telegram timestamps "
            "(control/phase.py, docs/safety.md); a meter that stamps on arrival (Modbus) or "
            "publishes irregularly is polled plainly every half period either way"
        ),
    )


class PvConfig(MeterEndpointConfig):
    """``[pv]``: a separate PV meter for the PV surplus modes (caps the grid-meter surplus).

    A SunSpec inverter (``driver = "sunspec"``, the default device here), a Modbus meter or a
    CEMM alias (``mbX``). The grid meter stays authoritative (docs/devices/meters.md).
    """

    sunspec_device: Literal["meter", "inverter"] = "inverter"
    alias: str = "mb5"
