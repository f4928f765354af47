"""Input and output of the allocator: one snapshot in, one setpoint and reason per plug out.

Everything here is plain data (frozen dataclasses); the JSON edge lives in
:mod:`fuseguard.allocation.snapshot`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from fuseguard.model.fastinit import fast_init
from fuseguard.model.phases import ZERO, Phase, Phases
from fuseguard.model.status import ChargeMode


@fast_init
@dataclass(frozen=True, slots=True)
class Circuit:
    """A node of the circuit tree ("main" at the root, sub-circuits below).

    ``limit_a`` is the per-phase limit in force (for "main": min(fuse, external limit or
    fallback), decided by the controller). ``non_ev_load_a`` is the non-EV current flowing through
    this circuit, its own and its sub-circuits', per phase. ``power_limit_w`` optionally caps the
    total power (sum over phases) through the circuit.
    """

    id: str
    parent: str | None
    limit_a: Phases
    non_ev_load_a: Phases = ZERO
    power_limit_w: float | None = None


@fast_init
@dataclass(frozen=True, slots=True)
class Plug:
    """One charge point connector as the allocator sees it.

    ``phases`` are the grid phases the plug's current flows on (wiring rotation x the phases the car
    uses). ``max_a`` is min(charger max, cable rating, car max). ``priority``: a higher number is
    served first. ``target_a`` is a cap from the Direct EVSE Control API (0 pauses the plug);
    ``target_until`` (timezone-aware) is only shown in the reason, in UTC. ``available`` is
    False when the plug cannot take current now (no car, car full, charger offline).

    Hysteresis state (owned by the controller, filled by :class:`AllocationSession`):
    ``setpoint_a`` is the setpoint in force (0 = paused), ``running_s`` how long it has been
    running, ``paused_s`` how long it has been paused and waiting (None: never paused, a fresh
    start), ``pv_timer_s`` how long the PV condition has asked for a change of state (start when
    paused, stop when running).

    Queue facts (optional, :mod:`fuseguard.allocation.urgency`): ``share_a`` the plug's energy
    share (mean per-phase current since the car was plugged in, A), ``need_wh`` the energy the
    car still needs and ``departure_s`` the seconds until its announced departure;
    ``plan_rank`` the horizon plan's order among the plugs it wants charged above their minimum
    now (0 first; None: not a plan leader), served before the other plugs of its priority.
    ``car_limit_a`` the car's own current limit where the controller learned it (a 16 A car on
    a 32 A plug): only least laxity's cap uses it (:func:`.urgency.cap_a`), never a setpoint.
    ``seen_max_a`` the most the car has been seen to draw this session (A per phase): the car
    can take at least that, so least laxity judges it at no less (:mod:`.urgency`), never a
    setpoint.
    ``phases_known`` False: ``phases`` are the assumption for a car that has not drawn yet (all
    wired phases); the session may probe it (:mod:`fuseguard.allocation.probe`).
    """

    id: str
    circuit: str
    phases: tuple[Phase, ...]
    max_a: int
    min_a: int = 6
    priority: int = 0
    mode: ChargeMode = ChargeMode.FAST
    target_a: int | None = None
    target_until: datetime | None = None
    available: bool = True
    setpoint_a: int = 0
    running_s: float | None = None
    paused_s: float | None = None
    pv_timer_s: float = 0.0
    share_a: float | None = None
    need_wh: float | None = None
    departure_s: float | None = None
    phases_known: bool = True
    plan_rank: int | None = None
    car_limit_a: float | None = None
    seen_max_a: float | None = None


#: the default least-laxity window (s): a plug with an announced departure is urgent once its
#: laxity is at most this. The one default: the site config (``[control] urgent_laxity_s``),
#: the controller's config and the snapshot's JSON form import it (measured in
#: ``bench/notes/quality.md``, round 11: 2 h met more needs than 3 h in the office; round 12: with
#: the seen draw, 1 h meets the same needs from 45 min to 2 h and is fairer, 30 min misses one)
URGENT_LAXITY_S: Final = 3600.0

#: the default weight of a plug on one grid phase in the max-min filling (1.0: every plug's
#: per-phase current counts the same; ``bench/notes/quality.md``, round 14)
SINGLE_PHASE_WEIGHT: Final = 1.0


@dataclass(frozen=True, slots=True)
class AllocationParams:
    """Tunables (defaults follow the anchors: evcc PV timers, Easee-like restart wait)."""

    voltage_v: float = 230.0
    min_run_s: float = 600.0
    min_pause_s: float = 300.0
    pv_enable_threshold_w: float = 0.0
    pv_disable_threshold_w: float = 0.0
    pv_enable_delay_s: float = 60.0
    pv_disable_delay_s: float = 180.0
    #: a plug whose laxity (time to departure minus time to finish at its cap) is below this is
    #: urgent (served first, :mod:`fuseguard.allocation.urgency`)
    urgent_laxity_s: float = URGENT_LAXITY_S
    #: an urgent least-laxity plug is admitted with this times the current it needs to finish by
    #: its departure (whole amps, at most its cap; 0: at its minimum only,
    #: :mod:`fuseguard.allocation.reserve`)
    urgent_reserve: float = 1.0
    #: the max-min filling gives a plug on one grid phase this times the current of a plug on
    #: three (``w ** ((3 - phases) / 2)``: two phases get its square root); 1.0 = plain per-phase
    #: max-min fairness (:mod:`fuseguard.allocation.weights`)
    single_phase_weight: float = SINGLE_PHASE_WEIGHT


@fast_init
@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the allocator needs for one decision.

    ``pv_surplus_w`` is the power available to ``pv``/``minpv`` plugs: export at the grid
    connection plus what those plugs draw now (the controller derives it).
    """

    circuits: tuple[Circuit, ...]
    plugs: tuple[Plug, ...]
    pv_surplus_w: float = 0.0
    params: AllocationParams = field(default_factory=AllocationParams)


@fast_init
@dataclass(frozen=True, slots=True)
class Allocation:
    """The answer: integer setpoints, plain-words reasons and the exact values before rounding.

    ``pv_pending`` lists the PV plugs whose surplus condition asks for a change of state (start a
    paused plug, stop a running one); the session advances their ``pv_timer_s``.
    """

    setpoints: dict[str, int]
    reasons: dict[str, str]
    exact_a: dict[str, float]
    pv_pending: frozenset[str] = frozenset()


class SnapshotError(ValueError):
    """The snapshot is not a valid input; ``path`` names the offending place (JSON-path style)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message
