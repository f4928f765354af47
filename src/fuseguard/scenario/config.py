"""Scenario files (TOML): the portable format of ``fuseguard simulate``.

The format is documented in ``docs/scenarios.md``. Every table forbids unknown keys; the error
names the key (``unknown key 'site.fuse'``) so a typo never silently changes a benchmark.
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fuseguard.model.phases import Phases, Rotation
from fuseguard.model.status import ChargeMode

MAIN = "main"

FaultKind = Literal["offline", "slow", "garbage", "stuck_contactor", "frozen"]


class ScenarioError(ValueError):
    """The scenario file is invalid; the message names the file, the key and the reason."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteSpec(_Strict):
    """``[site]``."""

    voltage_v: float = Field(230.0, gt=0)
    fuse_a: float = Field(gt=0)
    duration_s: float = Field(86400.0, gt=0)
    meter: Literal["phases", "total_power"] = "phases"
    meter_period_s: float = Field(1.0, gt=0)
    # Additions (documented in docs/scenarios.md):
    name: str | None = None
    description: str | None = None
    keepalive_period_s: float = Field(30.0, gt=0)
    flex_timeout_s: float = Field(120.0, gt=0)
    meter_phase_assumption: Literal["worst", "balanced"] = "worst"
    slow_delay_s: float = Field(5.0, ge=0)
    meter_fallback_a: float | None = Field(None, ge=0)
    charger_safe_current_a: int = Field(6, ge=0)
    charger_safe_timeout_s: int = Field(60, gt=0)


class CircuitSpec(_Strict):
    """``[[circuits]]``: a sub-circuit with its own fuse, below ``parent``."""

    id: str = Field(min_length=1)
    parent: str = MAIN
    fuse_a: float = Field(gt=0)


class BaseLoadSpec(_Strict):
    """``[base_load]``: per-phase non-EV load (A), piecewise linear in site time (s)."""

    points: list[tuple[float, tuple[float, float, float]]] = Field(min_length=1)

    @model_validator(mode="after")
    def _sorted(self) -> BaseLoadSpec:
        times = [t for t, _ in self.points]
        if times != sorted(times):
            msg = "base_load.points must be sorted by time"
            raise ValueError(msg)
        return self

    def profile(self) -> list[tuple[float, Phases]]:
        """The points as (time, Phases)."""
        return [(t, Phases.of(v)) for t, v in self.points]


class PvSpec(_Strict):
    """``[pv]``: a half-sine PV plant, optionally with passing clouds."""

    peak_w: float = Field(ge=0)
    sunrise_s: float = Field(ge=0)
    sunset_s: float = Field(gt=0)
    # Addition: clouds as [[start_s, end_s, factor], ...] (factor 0..1 of clear sky).
    clouds: list[tuple[float, float, float]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _order(self) -> PvSpec:
        if self.sunset_s <= self.sunrise_s:
            msg = "pv.sunset_s must be after pv.sunrise_s"
            raise ValueError(msg)
        return self

    def cloud_factor(self, t_s: float) -> float:
        """Clear-sky fraction at ``t_s``."""
        factor = 1.0
        for start, end, f in self.clouds:
            if start <= t_s < end:
                factor = min(factor, f)
        return factor


class ChargerSpec(_Strict):
    """``[[chargers]]``."""

    id: str = Field(min_length=1)
    circuit: str = MAIN
    max_a: int = Field(32, ge=6, le=80)
    rotation: Rotation = Rotation.L1L2L3
    mode: ChargeMode = ChargeMode.FAST
    priority: int = 0

    @property
    def evse_uuid(self) -> str:
        """A stable 32-hex EVSE uuid derived from the charger id."""
        return hashlib.md5(self.id.encode(), usedforsecurity=False).hexdigest()


class CarSpec(_Strict):
    """``[[cars]]``: one vehicle session at a charger."""

    charger: str
    arrive_s: float = Field(ge=0)
    depart_s: float
    energy_wh: float = Field(gt=0)
    phases: Literal[1, 2, 3] = 3
    max_a: float = Field(16.0, ge=6)
    # Addition: a name for reports (default "<charger>@<arrive_s>").
    id: str | None = None

    @model_validator(mode="after")
    def _window(self) -> CarSpec:
        if self.depart_s <= self.arrive_s:
            msg = "cars.depart_s must be after arrive_s"
            raise ValueError(msg)
        return self

    @property
    def name(self) -> str:
        """Report name of this car."""
        return self.id or f"{self.charger}@{int(self.arrive_s)}"


class FlexEvent(_Strict):
    """``flex = {activation, current_limit_a, fallback_a}`` (CLEMAP flex management)."""

    activation: bool | None = None
    current_limit_a: float | None = Field(None, ge=0)
    fallback_a: float | None = Field(None, ge=0)


class TargetEvent(_Strict):
    """``target = {charger, current_a, duration_s}`` (CLEMAP Direct EVSE current target)."""

    charger: str
    current_a: int = Field(ge=0)
    duration_s: float = Field(gt=0)


class FaultEvent(_Strict):
    """``fault = {device, kind, duration_s}``; device is "meter" or a charger id."""

    device: str
    kind: FaultKind
    duration_s: float = Field(gt=0)


class BaseStepEvent(_Strict):
    """Addition: ``base_step = {delta_a = [l1, l2, l3], duration_s}``: extra non-EV load."""

    delta_a: tuple[float, float, float]
    duration_s: float = Field(gt=0)


class EventSpec(_Strict):
    """``[[events]]``: exactly one action at ``at_s``."""

    at_s: float = Field(ge=0)
    flex: FlexEvent | None = None
    keepalive: Literal["stop", "start"] | None = None
    target: TargetEvent | None = None
    fault: FaultEvent | None = None
    base_step: BaseStepEvent | None = None

    @model_validator(mode="after")
    def _one(self) -> EventSpec:
        given = [
            k
            for k in ("flex", "keepalive", "target", "fault", "base_step")
            if getattr(self, k) is not None
        ]
        if len(given) != 1:
            msg = f"an event needs exactly one action (flex|keepalive|target|fault), got {given}"
            raise ValueError(msg)
        return self


class Scenario(_Strict):
    """A whole scenario file."""

    site: SiteSpec
    circuits: list[CircuitSpec] = Field(default_factory=list)
    base_load: BaseLoadSpec = BaseLoadSpec(points=[(0.0, (0.0, 0.0, 0.0))])
    pv: PvSpec | None = None
    chargers: Annotated[list[ChargerSpec], Field(min_length=1)]
    cars: list[CarSpec] = Field(default_factory=list)
    events: list[EventSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        circuit_ids = {MAIN}
        for c in self.circuits:
            if c.id in circuit_ids:
                msg = f"circuit {c.id!r} defined twice (or named 'main')"
                raise ValueError(msg)
            if c.parent not in circuit_ids:
                msg = f"circuit {c.id!r}: parent {c.parent!r} must be defined before it"
                raise ValueError(msg)
            circuit_ids.add(c.id)
        charger_ids: set[str] = set()
        for ch in self.chargers:
            if ch.id in charger_ids:
                msg = f"charger {ch.id!r} defined twice"
                raise ValueError(msg)
            if ch.circuit not in circuit_ids:
                msg = f"charger {ch.id!r}: unknown circuit {ch.circuit!r}"
                raise ValueError(msg)
            charger_ids.add(ch.id)
        sessions: dict[str, list[tuple[float, float]]] = {}
        names: set[str] = set()
        for car in self.cars:
            if car.charger not in charger_ids:
                msg = f"car at {car.arrive_s}: unknown charger {car.charger!r}"
                raise ValueError(msg)
            if car.name in names:
                msg = f"car name {car.name!r} used twice"
                raise ValueError(msg)
            names.add(car.name)
            for a, d in sessions.get(car.charger, []):
                if car.arrive_s < d and a < car.depart_s:
                    msg = f"charger {car.charger!r}: car sessions overlap"
                    raise ValueError(msg)
            sessions.setdefault(car.charger, []).append((car.arrive_s, car.depart_s))
        for ev in self.events:
            if ev.target is not None and ev.target.charger not in charger_ids:
                msg = f"event at {ev.at_s}: unknown charger {ev.target.charger!r}"
                raise ValueError(msg)
            if ev.fault is not None:
                if ev.fault.device != "meter" and ev.fault.device not in charger_ids:
                    msg = f"event at {ev.at_s}: unknown fault device {ev.fault.device!r}"
                    raise ValueError(msg)
                if ev.fault.device == "meter" and ev.fault.kind == "stuck_contactor":
                    msg = "a meter has no contactor (fault kind stuck_contactor)"
                    raise ValueError(msg)
                if ev.fault.device != "meter" and ev.fault.kind == "frozen":
                    msg = "fault kind 'frozen' applies to the meter only"
                    raise ValueError(msg)
        return self

    @property
    def circuit_fuses(self) -> dict[str, float]:
        """Fuse per circuit id, main included."""
        fuses = {MAIN: self.site.fuse_a}
        fuses.update({c.id: c.fuse_a for c in self.circuits})
        return fuses

    @property
    def circuit_parents(self) -> dict[str, str | None]:
        """Parent per circuit id (main has None)."""
        parents: dict[str, str | None] = {MAIN: None}
        parents.update({c.id: c.parent for c in self.circuits})
        return parents

    def path_to_main(self, circuit: str) -> list[str]:
        """``circuit`` and its ancestors up to main."""
        parents = self.circuit_parents
        path: list[str] = []
        node: str | None = circuit
        while node is not None:
            path.append(node)
            node = parents[node]
        return path


def _format_errors(source: str, err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown key {loc!r}")
        else:
            lines.append(f"{source}: {loc or '<root>'}: {e['msg']}")
    return "\n".join(lines)


def parse_scenario(data: dict[str, Any], source: str = "<scenario>") -> Scenario:
    """Validate a decoded TOML document; raise :class:`ScenarioError` naming the bad key."""
    try:
        return Scenario.model_validate(data)
    except ValidationError as err:
        raise ScenarioError(_format_errors(source, err)) from None


def loads_scenario(text: str, source: str = "<scenario>") -> Scenario:
    """Parse TOML text."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        msg = f"{source}: not valid TOML: {err}"
        raise ScenarioError(msg) from None
    return parse_scenario(data, source)


def load_scenario(path: Path) -> Scenario:
    """Read and validate a scenario file."""
    return loads_scenario(path.read_text(encoding="utf-8"), str(path))
