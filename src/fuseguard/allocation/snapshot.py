"""JSON edge of the allocator: parse a snapshot (errors name the JSON path) and dump one.

The ``fuseguard allocate SNAPSHOT.json`` command is in :mod:`fuseguard.cli.allocate`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from fuseguard.allocation.common import check_plugs, circuit_chains
from fuseguard.allocation.types import (
    SINGLE_PHASE_WEIGHT,
    URGENT_LAXITY_S,
    Allocation,
    AllocationParams,
    Circuit,
    Plug,
    Snapshot,
    SnapshotError,
)
from fuseguard.model.phases import Phases, phases_from_names
from fuseguard.model.status import ChargeMode

PerPhase = Annotated[list[float], Field(min_length=3, max_length=3)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class CircuitIn(_Strict):
    """One circuit of the tree."""

    id: str = Field(min_length=1)
    parent: str | None = None
    limit_a: PerPhase
    non_ev_load_a: PerPhase = Field(default_factory=lambda: [0.0, 0.0, 0.0])
    power_limit_w: float | None = Field(default=None, ge=0)


class PlugIn(_Strict):
    """One plug; ``setpoint_a`` .. ``pv_timer_s`` are optional hysteresis state (absent: fresh
    start), ``share_a``, ``need_wh``, ``departure_s``, ``plan_rank``, ``car_limit_a``,
    ``seen_max_a`` optional queue facts (:mod:`.urgency`)."""

    id: str = Field(min_length=1)
    circuit: str
    phases: list[str] = Field(min_length=1, max_length=3)
    min_a: int = Field(default=6, ge=1)
    max_a: int = Field(ge=0)
    priority: int = 0
    mode: ChargeMode = ChargeMode.FAST
    target_a: int | None = Field(default=None, ge=0)
    target_until: AwareDatetime | None = None
    available: bool = True
    setpoint_a: int = Field(default=0, ge=0)
    running_s: float | None = Field(default=None, ge=0)
    paused_s: float | None = Field(default=None, ge=0)
    pv_timer_s: float = Field(default=0.0, ge=0)
    share_a: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    need_wh: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    departure_s: float | None = Field(default=None, allow_inf_nan=False)
    plan_rank: int | None = Field(default=None, ge=0)
    car_limit_a: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    seen_max_a: float | None = Field(default=None, ge=0, allow_inf_nan=False)

    @field_validator("phases")
    @classmethod
    def _phases(cls, value: list[str]) -> list[str]:
        phases_from_names(value)
        return value


class ParamsIn(_Strict):
    """Optional tunables (defaults: :class:`AllocationParams`)."""

    voltage_v: float = Field(default=230.0, gt=0)
    min_run_s: float = Field(default=600.0, ge=0)
    min_pause_s: float = Field(default=300.0, ge=0)
    pv_enable_threshold_w: float = 0.0
    pv_disable_threshold_w: float = 0.0
    pv_enable_delay_s: float = Field(default=60.0, ge=0)
    pv_disable_delay_s: float = Field(default=180.0, ge=0)
    urgent_laxity_s: float = Field(default=URGENT_LAXITY_S, ge=0)
    urgent_reserve: float = Field(default=1.0, ge=0, le=100)
    single_phase_weight: float = Field(default=SINGLE_PHASE_WEIGHT, ge=1, le=10)


class SnapshotIn(_Strict):
    """The snapshot file."""

    circuits: list[CircuitIn] = Field(min_length=1)
    plugs: list[PlugIn] = Field(default_factory=list)
    pv_surplus_w: float = 0.0
    params: ParamsIn = Field(default_factory=ParamsIn)


def _json_path(loc: tuple[int | str, ...]) -> str:
    path = "$"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def snapshot_from_data(data: Any) -> Snapshot:
    """Validate decoded JSON into a :class:`Snapshot`; raise :class:`SnapshotError` with a path."""
    try:
        model = SnapshotIn.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise SnapshotError(_json_path(tuple(err["loc"])), err["msg"]) from None
    snap = Snapshot(
        circuits=tuple(
            Circuit(
                id=c.id,
                parent=c.parent,
                limit_a=Phases.of(c.limit_a),
                non_ev_load_a=Phases.of(c.non_ev_load_a),
                power_limit_w=c.power_limit_w,
            )
            for c in model.circuits
        ),
        plugs=tuple(
            Plug(
                id=p.id,
                circuit=p.circuit,
                phases=phases_from_names(p.phases),
                max_a=p.max_a,
                min_a=p.min_a,
                priority=p.priority,
                mode=p.mode,
                target_a=p.target_a,
                target_until=p.target_until,
                available=p.available,
                setpoint_a=p.setpoint_a,
                running_s=p.running_s,
                paused_s=p.paused_s,
                pv_timer_s=p.pv_timer_s,
                share_a=p.share_a,
                need_wh=p.need_wh,
                departure_s=p.departure_s,
                plan_rank=p.plan_rank,
                car_limit_a=p.car_limit_a,
                seen_max_a=p.seen_max_a,
            )
            for p in model.plugs
        ),
        pv_surplus_w=model.pv_surplus_w,
        params=AllocationParams(**model.params.model_dump()),
    )
    check_snapshot(snap)
    return snap


def check_snapshot(snap: Snapshot) -> None:
    """Structural checks (tree, references, ids); raise :class:`SnapshotError` with a path."""
    index, _ = circuit_chains(snap.circuits)
    check_plugs(snap.plugs, index)


def snapshot_from_json(text: str) -> Snapshot:
    """Parse snapshot JSON text."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SnapshotError("$", f"not JSON: {exc.msg} at line {exc.lineno}") from None
    return snapshot_from_data(data)


def _num(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def snapshot_to_data(snapshot: Snapshot) -> dict[str, Any]:
    """The snapshot as JSON-ready data (the controller's ``--dump-snapshot``)."""
    params = snapshot.params
    return {
        "circuits": [
            {
                "id": c.id,
                "parent": c.parent,
                "limit_a": [_num(v) for v in c.limit_a],
                "non_ev_load_a": [_num(v) for v in c.non_ev_load_a],
                **({} if c.power_limit_w is None else {"power_limit_w": c.power_limit_w}),
            }
            for c in snapshot.circuits
        ],
        "plugs": [
            {
                "id": p.id,
                "circuit": p.circuit,
                "phases": [ph.value for ph in p.phases],
                "min_a": p.min_a,
                "max_a": p.max_a,
                "priority": p.priority,
                "mode": p.mode.value,
                "target_a": p.target_a,
                "target_until": p.target_until.isoformat() if p.target_until else None,
                "available": p.available,
                "setpoint_a": p.setpoint_a,
                "running_s": p.running_s,
                "paused_s": p.paused_s,
                "pv_timer_s": p.pv_timer_s,
                **{
                    k: v
                    for k, v in (
                        ("share_a", p.share_a),
                        ("need_wh", p.need_wh),
                        ("departure_s", p.departure_s),
                        ("plan_rank", p.plan_rank),
                        ("car_limit_a", p.car_limit_a),
                        ("seen_max_a", p.seen_max_a),
                    )
                    if v is not None
                },
            }
            for p in snapshot.plugs
        ],
        "pv_surplus_w": snapshot.pv_surplus_w,
        "params": {
            "voltage_v": params.voltage_v,
            "min_run_s": params.min_run_s,
            "min_pause_s": params.min_pause_s,
            "pv_enable_threshold_w": params.pv_enable_threshold_w,
            "pv_disable_threshold_w": params.pv_disable_threshold_w,
            "pv_enable_delay_s": params.pv_enable_delay_s,
            "pv_disable_delay_s": params.pv_disable_delay_s,
            "urgent_laxity_s": params.urgent_laxity_s,
            "urgent_reserve": params.urgent_reserve,
            "single_phase_weight": params.single_phase_weight,
        },
    }


def snapshot_to_json(snapshot: Snapshot) -> str:
    """The snapshot as JSON text (round-trips through :func:`snapshot_from_json`)."""
    return json.dumps(snapshot_to_data(snapshot), indent=2)


def allocation_to_data(allocation: Allocation) -> dict[str, Any]:
    """``{"setpoints": {...}, "reasons": {...}, "exact_a": {...}}``."""
    return {
        "setpoints": allocation.setpoints,
        "reasons": allocation.reasons,
        "exact_a": {k: round(v, 4) for k, v in allocation.exact_a.items()},
    }


__all__ = [
    "allocation_to_data",
    "check_snapshot",
    "snapshot_from_data",
    "snapshot_from_json",
    "snapshot_to_data",
    "snapshot_to_json",
]
