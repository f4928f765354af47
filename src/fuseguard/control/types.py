"""The controller's shared types in one leaf module: what it is configured with, what it reports.

Imported by the controller's parts, the allocator bridge, the config translation and the APIs;
it imports only :mod:`fuseguard.model`, so it can never be part of an import cycle.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from fuseguard.allocation.types import SINGLE_PHASE_WEIGHT, URGENT_LAXITY_S
from fuseguard.model.circuits import MAIN, CircuitSpec, CircuitTree
from fuseguard.model.fastinit import fast_init
from fuseguard.model.iec import MIN_CHARGE_CURRENT_A
from fuseguard.model.phases import Phase, Phases, Rotation
from fuseguard.model.samples import MeterSample
from fuseguard.model.status import ChargeMode, PlugStatus


@dataclass(frozen=True, slots=True)
class ChargerSpec:
    """One controlled charge point (connector)."""

    id: str
    circuit: str = MAIN
    rotation: Rotation = Rotation.L1L2L3
    min_a: int = MIN_CHARGE_CURRENT_A
    max_a: int = 32
    mode: ChargeMode = ChargeMode.FAST
    priority: int = 0
    evse_uuid: str | None = None
    wired_phases: Literal[1, 3] = 3
    plug_uuid: str | None = None
    plug_label: str = "Plug 1"
    child_edge: bool = False  # a cascaded edge: its draw includes load it cannot shed
    #: how long after a write a new limit takes effect at the charger (OCPP: the profile delay)
    limit_delay_s: float = 0.0
    #: the charger reports a car's start late (OCPP: StatusNotification, then MeterValues): a
    #: rise of the meter may be its car starting unseen (docs/safety.md, "Start window"); a
    #: charger measured at the read shows a start within the meter period
    reports_late: bool = False
    #: what the charger falls back to by itself when fuseguard goes silent (its watchdog: a
    #: Bender's safe current, an OCPP charge point's safe profile when the lease runs out, a
    #: child edge's FallbackCurrentLimit), A per phase; 0: no fallback above a pause. An
    #: unreachable plug reserves at least this (docs/safety.md, "Charger unreachable")
    fallback_a: int = 0
    #: the charger's watchdog timeout (s; inf: none): it cannot fall back earlier than this
    #: after the last write that reached it (a Bender's safe_timeout_s, an OCPP lease)
    fallback_after_s: float = math.inf


@dataclass(frozen=True, slots=True)
class MeterTiming:
    """Reading cadence and staleness of one meter besides the grid meter (a circuit's, PV)."""

    period_s: float = 1.0
    stale_after_s: float = 10.0


#: how departures and needs steer the allocation (``[control] planner``): "off", least laxity
#: first (:mod:`fuseguard.allocation.urgency`) or the receding-horizon plan
#: (:mod:`fuseguard.control.planner`) as caps on top of least laxity
PlannerMode = Literal["off", "least_laxity", "horizon"]


@dataclass(frozen=True, slots=True)
class PlannerSettings:
    """The receding-horizon planner's tuning (``[control] planner_*``)."""

    interval_s: float = 300.0  # re-plan at least this often (and on a change of cars or needs)
    step_s: float = 300.0  # the plan's step (the first hour; later steps are 3 times longer)
    horizon_s: float = 43200.0
    time_limit_s: float = 1.0  # solver time limit per plan
    cap_window_s: float = 3600.0  # a car's cap: its planned mean current over this stretch
    #: a car without an announced departure is assumed to stay this long from plug-in (s;
    #: 0: to the end of the horizon)
    default_stay_s: float = 0.0
    #: the plan's non-EV load: the peak over this window (s; 0: this cycle's value, held)
    load_window_s: float = 0.0
    #: the plan aims to meet an announced need this long before the departure (s; at most a
    #: quarter of the time left), a reserve for what the plan does not model (turns, ramps)
    finish_early_s: float = 0.0
    #: the needs-met count as an exact MILP (else its LP relaxation, bounded in time)
    exact: bool = False


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    """Everything the loop needs to know about the site (no I/O details)."""

    circuits: Sequence[CircuitSpec]
    chargers: Sequence[ChargerSpec]
    voltage_v: float = 230.0
    meter_period_s: float = 1.0
    meter_phase_assumption: Literal["worst", "balanced"] = "worst"
    meter_stale_after_s: float = 10.0
    meter_timeout_s: float = 2.0
    poll_wait_s: float = 0.5
    #: poll the grid meter just after it publishes (control/phase.py); ``[meter] phase_lock``,
    #: on by default in a site config (a config built here directly, as in tests, polls plainly)
    meter_phase_lock: bool = False
    charger_timeout_s: float = 10.0
    # a steady charger is read this often (<= meter_period_s: every period, as the meter)
    charger_idle_poll_s: float = 0.0
    write_timeout_s: float = 3.0
    rewrite_interval_s: float = 20.0
    min_run_s: float = 2700.0
    min_pause_s: float = 900.0
    ramp_up_a_per_s: float = 4.0
    pv_enable_delay_s: float = 60.0
    pv_disable_delay_s: float = 180.0
    recently_started_window_s: float = 60.0
    #: A per phase kept free below every circuit limit in the allocator's snapshot
    headroom_a: float = 0.0
    #: least laxity first: an announced car with at most this laxity (s) is urgent
    urgent_laxity_s: float = URGENT_LAXITY_S
    #: an urgent car is admitted with this times the current it needs to finish (0: its minimum)
    urgent_reserve: float = 1.0
    #: the allocator's weight of a one-phase plug in the max-min filling (1.0: plain)
    single_phase_weight: float = SINGLE_PHASE_WEIGHT
    planner: PlannerMode = "least_laxity"
    planner_settings: PlannerSettings = field(default_factory=PlannerSettings)
    peak_window_s: float = 900.0
    stuck_margin_a: float = 2.0
    excess_margin_a: float = 1.0
    decrease_grace_s: float = 6.0
    raise_after_s: float = 5.0
    idle_after_s: float = 60.0
    idle_reprobe_s: float = 900.0
    stuck_after_s: float = 5.0
    underuse_margin_a: float = 2.0
    underuse_after_s: float = 30.0
    underuse_probe_s: float = 300.0
    phase_detect_a: float = 1.0
    #: cadence and staleness of every sub-circuit meter (by circuit id) and of the PV meter
    circuit_meter_timing: Mapping[str, MeterTiming] = field(default_factory=dict)
    pv_meter_timing: MeterTiming | None = None

    def tree(self) -> CircuitTree:
        """The circuit tree, validated, with every charger on one of its circuits."""
        tree = CircuitTree.of(self.circuits)
        for spec in self.chargers:
            if spec.circuit not in tree:
                msg = f"charger {spec.id!r} is on unknown circuit {spec.circuit!r}"
                raise ValueError(msg)
        return tree


@fast_init
@dataclass(frozen=True, slots=True)
class PlugDemand:
    """What one plug asks of the allocator in one cycle (the per-plug policies' verdicts).

    ``phases`` are the grid phases the car loads, ``max_a`` the most it can take now (charger,
    cable, car, demand cap), ``target_a``/``target_until`` a Direct EVSE Control cap and its end
    (timezone-aware UTC), ``available`` False when the plug cannot take current now (no car,
    car full, charger offline, stuck contactor). ``mode`` and ``priority`` are the values in
    force this cycle (the spec's, unless overridden at run time).
    """

    spec: ChargerSpec
    available: bool
    phases: tuple[Phase, ...]
    max_a: int
    mode: ChargeMode
    priority: int
    target_a: int | None = None
    target_until: datetime | None = None
    #: queue facts (``allocation/urgency.py``): energy share (mean per-phase A since plug-in),
    #: energy still needed and seconds to the announced departure (None: unknown)
    share_a: float | None = None
    need_wh: float | None = None
    departure_s: float | None = None
    #: False: ``phases`` are the all-wired-phases assumption for a car that has not drawn yet
    phases_known: bool = True
    #: the horizon plan's order among the plugs it wants above their minimum now (None: none)
    plan_rank: int | None = None
    #: the car's own current limit learned this session (A; ``policies/demand.py``; None:
    #: unknown): least laxity's cap, not a limit on the setpoint
    car_limit_a: float | None = None
    #: the most the car has been seen to draw this session (A per phase; ``policies/demand.py``;
    #: None: nothing seen): least laxity's lower bound of its rate, not a limit
    seen_max_a: float | None = None


@dataclass(frozen=True, slots=True)
class PlugView:
    """One plug, as the APIs and the terminal view show it."""

    id: str
    evse_uuid: str | None
    plug_uuid: str | None
    plug_label: str
    circuit: str
    status: PlugStatus
    online: bool
    setpoint_a: int
    written_a: int | None
    reason: str
    current_a: Phases
    grid_current_a: Phases
    power_w: float
    energy_wh: float | None
    stuck: bool
    error: str | None
    #: the OCPP idTag of the running transaction, where the charger says it
    id_tag: str | None = None


@dataclass(frozen=True, slots=True)
class ControllerStatus:
    """A consistent picture of the last cycle."""

    time: datetime
    meter_ok: bool
    meter_fallback: bool
    meter_sample: MeterSample | None
    grid_current_a: Phases
    grid_power_w: float
    main_limit_a: Phases
    flex_fallback: bool
    limits_a: Mapping[str, Phases]
    non_ev_load_a: Mapping[str, Phases]
    plugs: tuple[PlugView, ...]
    cycles: int
    last_cycle_ms: float
    #: sub-circuits whose own meter is lost (their non-EV load is the fallback estimate)
    circuit_meter_fallback: tuple[str, ...] = ()
    #: the PV meter's fresh power (production negative), None without a fresh PV sample
    pv_power_w: float | None = None


__all__ = [
    "MAIN",
    "ChargerSpec",
    "CircuitSpec",
    "ControllerConfig",
    "ControllerStatus",
    "MeterTiming",
    "PlannerMode",
    "PlannerSettings",
    "PlugDemand",
    "PlugView",
]
