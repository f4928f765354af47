"""Scenario files (TOML): the portable format of ``fuseguard simulate``.

The format is documented in ``docs/scenarios.md``. Every table forbids unknown keys; the error
names the key (``unknown key 'site.fuse'``) so a typo never silently changes a benchmark.
"""

from __future__ import annotations

import hashlib
import tomllib
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from fuseguard.config import CircuitConfig, ControlConfig, PvConfig
from fuseguard.model.circuits import MAIN, CircuitSpec, CircuitTree, CircuitTreeError
from fuseguard.model.faults import METER_FAULTS, DeviceFault
from fuseguard.model.iec import MAX_CHARGE_CURRENT_A, MIN_CHARGE_CURRENT_A
from fuseguard.model.phases import Phases, Rotation
from fuseguard.model.status import ChargeMode

#: Charger faults the in-process adapters simulate (no reboots; ``rejects_profiles`` only on
#: ``driver = "ocpp"`` chargers).
SCENARIO_CHARGER_FAULTS: frozenset[DeviceFault] = frozenset(
    {
        DeviceFault.OFFLINE,
        DeviceFault.SLOW,
        DeviceFault.GARBAGE,
        DeviceFault.STUCK_CONTACTOR,
        DeviceFault.RCD_TRIP,
        DeviceFault.IGNORES_LIMIT,
        DeviceFault.REJECTS_PROFILES,
    }
)
#: ``[[chargers]] status_delay_s`` unless given: a StatusNotification 2 s after the change
#: (docs/scenarios.md, "OCPP charge points")
OCPP_STATUS_DELAY_S = 2.0
#: Ids as the edge config spells them (``[[chargers]] id``).
ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
#: Fault ``device`` of the grid meter, of a circuit's meter (``meter:<circuit>``) and of the PV
#: meter; ``:`` is in no charger or circuit id, so these never clash with one.
GRID_METER = "meter"
CIRCUIT_METER_PREFIX = "meter:"
PV_METER = "pv:meter"
#: The one meter driver of a scenario: meters are simulated in process, over the site model.
SCENARIO_METER_DRIVER = "virtual"


class ScenarioError(ValueError):
    """The scenario file is invalid; the message names the file, the key and the reason."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteSpec(_Strict):
    """``[site]`` (voltage, fuse and meter period within the bounds of the edge config)."""

    voltage_v: float = Field(230.0, gt=100, lt=500)
    fuse_a: float = Field(gt=0, le=10_000)
    duration_s: float = Field(86400.0, gt=0)
    meter: Literal["phases", "total_power"] = "phases"
    meter_period_s: float = Field(1.0, gt=0, le=60)
    # Additions (documented in docs/scenarios.md):
    name: str | None = None
    description: str | None = None
    keepalive_period_s: float = Field(30.0, gt=0)
    flex_timeout_s: float = Field(120.0, gt=0)
    meter_phase_assumption: Literal["worst", "balanced"] = "worst"
    slow_delay_s: float = Field(5.0, ge=0)
    meter_fallback_a: float | None = Field(None, ge=0)
    charger_safe_current_a: int = Field(6, ge=0, le=MAX_CHARGE_CURRENT_A)
    charger_safe_timeout_s: int = Field(60, gt=0, le=3600)


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


class CircuitLoadSpec(BaseLoadSpec):
    """Addition: ``[[circuit_loads]]``: the non-EV load of a sub-circuit (part of main's too)."""

    circuit: str


class PvSpec(_Strict):
    """``[pv]``: a half-sine PV plant, optionally with passing clouds."""

    peak_w: float = Field(ge=0)
    sunrise_s: float = Field(ge=0)
    sunset_s: float = Field(gt=0)
    # Addition: clouds as [[start_s, end_s, factor], ...] (factor 0..1 of clear sky).
    clouds: list[tuple[float, float, float]] = Field(default_factory=list)
    # Addition: a separate PV meter (the inverter; the edge's ``[pv]``), its period and staleness.
    meter: PvConfig | None = None

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
    """``[[chargers]]`` (one EVSE with one plug; bounds as in the edge config)."""

    id: str = Field(pattern=ID_PATTERN)
    circuit: str = MAIN
    max_a: int = Field(32, ge=MIN_CHARGE_CURRENT_A, le=MAX_CHARGE_CURRENT_A)
    rotation: Rotation = Rotation.L1L2L3
    mode: ChargeMode = ChargeMode.FAST
    priority: int = Field(0, ge=-100, le=100)
    #: "bender" (Modbus: readings on every read, limits at once) or "ocpp" (below)
    driver: Literal["bender", "ocpp"] = "bender"
    #: (ocpp) MeterValueSampleInterval: readings only refresh this often (0: every read)
    meter_interval_s: float = Field(0.0, ge=0, le=3600)
    #: (ocpp) how long the charge point takes to apply a new charging profile
    profile_delay_s: float = Field(0.0, ge=0, le=600)
    #: (ocpp) StatusNotification this long after the connector's state changed (docs/scenarios.md)
    status_delay_s: float = Field(OCPP_STATUS_DELAY_S, ge=0, le=60)
    #: (ocpp) the charge point answers TriggerMessage (RemoteTrigger), which the driver sends
    triggers: bool = True

    @model_validator(mode="after")
    def _ocpp_keys(self) -> ChargerSpec:
        late = self.status_delay_s != OCPP_STATUS_DELAY_S or not self.triggers
        if self.driver != "ocpp" and (self.meter_interval_s or self.profile_delay_s or late):
            msg = (
                f"charger {self.id!r}: meter_interval_s, profile_delay_s, status_delay_s and "
                "triggers need driver = ocpp"
            )
            raise ValueError(msg)
        return self

    @property
    def evse_uuid(self) -> str:
        """A stable 32-hex EVSE uuid derived from the charger id."""
        return hashlib.md5(self.id.encode(), usedforsecurity=False).hexdigest()

    @property
    def plug_uuid(self) -> str:
        """A stable 32-hex uuid of the charger's one plug."""
        return hashlib.md5(f"{self.id}#1".encode(), usedforsecurity=False).hexdigest()


class CarSpec(_Strict):
    """``[[cars]]``: one vehicle session at a charger."""

    charger: str
    arrive_s: float = Field(ge=0)
    depart_s: float
    energy_wh: float = Field(gt=0)
    phases: Literal[1, 2, 3] = 3
    max_a: float = Field(16.0, ge=MIN_CHARGE_CURRENT_A, le=MAX_CHARGE_CURRENT_A)
    # Addition: a name for reports (default "<charger>@<arrive_s>").
    id: str | None = None
    #: the driver announces departure and energy need at arrival (a plug setting)
    announce_departure: bool = False

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
    kind: DeviceFault
    duration_s: float = Field(gt=0)


class BaseStepEvent(_Strict):
    """Addition: ``base_step = {delta_a = [l1, l2, l3], duration_s}``: extra non-EV load."""

    delta_a: tuple[float, float, float]
    duration_s: float = Field(gt=0)
    #: the circuit the load is on (its meter and every meter above see it)
    circuit: str = MAIN


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
    circuits: list[CircuitConfig] = Field(default_factory=list)
    base_load: BaseLoadSpec = BaseLoadSpec(points=[(0.0, (0.0, 0.0, 0.0))])
    circuit_loads: list[CircuitLoadSpec] = Field(default_factory=list)
    pv: PvSpec | None = None
    chargers: Annotated[list[ChargerSpec], Field(min_length=1)]
    cars: list[CarSpec] = Field(default_factory=list)
    events: list[EventSpec] = Field(default_factory=list)
    #: control tuning (the edge's ``[control]`` section; e.g. ``headroom_a``), defaults otherwise
    control: ControlConfig = Field(default_factory=ControlConfig)
    #: set by :func:`fuseguard.scenario.days.repeat_days` only (never from a file)
    _repeat_day_s: float | None = PrivateAttr(default=None)

    @property
    def repeat_day_s(self) -> float | None:
        """The day this scenario repeats, whole, day after day (``repeat_days``; None: it is
        not known to repeat), which the runner may jump over (``scenario/dayjump.py``)."""
        return self._repeat_day_s

    @model_validator(mode="before")
    @classmethod
    def _virtual_meters(cls, data: object) -> object:
        """A circuit's ``meter`` and ``pv.meter`` are in-process meters: driver ``virtual`` (the
        default here), named after their circuit (``pv`` for the PV meter)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        circuits = data.get("circuits")
        if isinstance(circuits, list):
            data["circuits"] = [
                {**c, "meter": _virtual_meter(c["meter"], c.get("id"))}
                if isinstance(c, dict) and isinstance(c.get("meter"), dict)
                else c
                for c in circuits
            ]
        pv = data.get("pv")
        if isinstance(pv, dict) and isinstance(pv.get("meter"), dict):
            data["pv"] = {**pv, "meter": _virtual_meter(pv["meter"], "pv")}
        return data

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        try:
            tree = self.circuit_tree
        except CircuitTreeError as err:
            raise ValueError(str(err)) from None
        self._check_meters_and_loads(tree)
        charger_ids: set[str] = set()
        safe_a = self.site.charger_safe_current_a
        for ch in self.chargers:
            if ch.id in charger_ids:
                msg = f"charger {ch.id!r} defined twice"
                raise ValueError(msg)
            if ch.circuit not in tree:
                msg = f"charger {ch.id!r}: unknown circuit {ch.circuit!r}"
                raise ValueError(msg)
            if safe_a and not MIN_CHARGE_CURRENT_A <= safe_a <= ch.max_a:
                msg = (
                    f"site.charger_safe_current_a {safe_a} A: a charger takes 0 or "
                    f"{MIN_CHARGE_CURRENT_A}..max_a ({ch.max_a} A at {ch.id!r})"
                )
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
                fault = ev.fault
                if (
                    fault.kind is DeviceFault.REJECTS_PROFILES
                    and fault.device in charger_ids
                    and not any(c.id == fault.device and c.driver == "ocpp" for c in self.chargers)
                ):
                    msg = (
                        f"event at {ev.at_s}: charger fault 'rejects_profiles' is not simulated"
                        f' on {fault.device!r} (only on driver = "ocpp" chargers)'
                    )
                    raise ValueError(msg)
                _check_fault(ev.at_s, fault, charger_ids, self.meter_devices)
        return self

    def _check_meters_and_loads(self, tree: CircuitTree) -> None:
        for c in self.circuits:
            if c.meter is not None and c.meter.driver != SCENARIO_METER_DRIVER:
                msg = (
                    f"circuit {c.id!r}: a scenario meter is simulated in process, "
                    f"driver must be {SCENARIO_METER_DRIVER!r}"
                )
                raise ValueError(msg)
        pv_meter = self.pv.meter if self.pv is not None else None
        if pv_meter is not None and pv_meter.driver != SCENARIO_METER_DRIVER:
            msg = f"pv.meter is simulated in process, driver must be {SCENARIO_METER_DRIVER!r}"
            raise ValueError(msg)
        seen: set[str] = set()
        for load in self.circuit_loads:
            if load.circuit == MAIN or load.circuit not in tree:
                msg = f"circuit_loads: {load.circuit!r} is not a sub-circuit (main: base_load)"
                raise ValueError(msg)
            if load.circuit in seen:
                msg = f"circuit_loads: circuit {load.circuit!r} given twice"
                raise ValueError(msg)
            seen.add(load.circuit)
        for ev in self.events:
            if ev.base_step is not None and ev.base_step.circuit not in tree:
                msg = f"event at {ev.at_s}: unknown circuit {ev.base_step.circuit!r}"
                raise ValueError(msg)

    @property
    def meter_devices(self) -> tuple[str, ...]:
        """Fault devices of the meters: the grid meter, every circuit meter, the PV meter."""
        circuit_meters = tuple(
            CIRCUIT_METER_PREFIX + c.id for c in self.circuits if c.meter is not None
        )
        pv = (PV_METER,) if self.pv is not None and self.pv.meter is not None else ()
        return (GRID_METER, *circuit_meters, *pv)

    @cached_property
    def circuit_tree(self) -> CircuitTree:
        """``main`` (``site.fuse_a``) and the sub-circuits: the config's one circuit concept."""
        main = CircuitSpec(id=MAIN, parent=None, fuse_a=self.site.fuse_a)
        return CircuitTree.of([main, *(c.to_spec() for c in self.circuits)])

    @property
    def circuit_fuses(self) -> dict[str, Phases]:
        """Fuse per circuit id and phase, main first."""
        return {c.id: c.fuse for c in self.circuit_tree}

    def path_to_main(self, circuit: str) -> list[str]:
        """``circuit`` and its ancestors up to main."""
        return list(self.circuit_tree.path(circuit))


def _virtual_meter(meter: dict[str, Any], name: object) -> dict[str, Any]:
    out = {"driver": SCENARIO_METER_DRIVER, **meter}
    if isinstance(name, str):
        out.setdefault("alias", name)
    return out


def _check_fault(
    at_s: float, fault: FaultEvent, charger_ids: set[str], meters: tuple[str, ...]
) -> None:
    if fault.device in meters:
        if fault.kind is DeviceFault.STUCK_CONTACTOR:
            msg = "a meter has no contactor (fault kind stuck_contactor)"
            raise ValueError(msg)
        if fault.kind not in METER_FAULTS:
            msg = f"event at {at_s}: fault kind {fault.kind.value!r} does not apply to a meter"
            raise ValueError(msg)
        return
    if fault.device not in charger_ids:
        known = ", ".join(meters)
        msg = f"event at {at_s}: unknown fault device {fault.device!r} (meters: {known})"
        raise ValueError(msg)
    if fault.kind is DeviceFault.FROZEN:
        msg = "fault kind 'frozen' applies to the meter only"
        raise ValueError(msg)
    if fault.kind not in SCENARIO_CHARGER_FAULTS:
        known = ", ".join(sorted(f.value for f in SCENARIO_CHARGER_FAULTS))
        msg = f"event at {at_s}: charger fault {fault.kind.value!r} is not simulated ({known})"
        raise ValueError(msg)


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
