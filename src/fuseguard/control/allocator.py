"""Bridge from the control loop's per-cycle view to the pure allocator (``fuseguard.allocation``).

Owns: the allocation session (run/pause timers, the waiting queue and PV timers between cycles)
and the translation of one cycle's limits, non-EV loads and :class:`PlugDemand` records into an
allocation :class:`~fuseguard.allocation.types.Snapshot`. It imports only the controller's leaf
types, never the controller.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import fields
from datetime import UTC
from typing import cast

from fuseguard.allocation.session import AllocationSession
from fuseguard.allocation.types import Allocation, AllocationParams, Circuit, Plug, Snapshot
from fuseguard.control.types import ControllerConfig, PlugDemand
from fuseguard.model.phases import Phases

_TIMER_FIELDS = ("setpoint_a", "running_s", "paused_s", "pv_timer_s")
_SETPOINT_A, _RUNNING_S, _PAUSED_S, _PV_TIMER_S = cast(
    "tuple[int, None, None, float]",
    tuple(f.default for f in fields(Plug) if f.name in _TIMER_FIELDS),
)
"""The hysteresis fields' defaults, in their order (the session fills them in;
``tests/control/test_allocator_plug.py`` checks the positional order against ``Plug``'s)."""


class AllocatorSession:
    """Builds snapshots from the cycle's view and runs the allocation session."""

    def __init__(self, config: ControllerConfig) -> None:
        self._config = config
        self._params = AllocationParams(
            voltage_v=config.voltage_v,
            min_run_s=config.min_run_s,
            min_pause_s=config.min_pause_s,
            pv_enable_delay_s=config.pv_enable_delay_s,
            pv_disable_delay_s=config.pv_disable_delay_s,
            urgent_laxity_s=config.urgent_laxity_s,
            urgent_reserve=config.urgent_reserve,
            single_phase_weight=config.single_phase_weight,
        )
        self._session = AllocationSession()
        # the last demand of every plug and its allocator form: an unchanged demand reuses it
        self._plugs: dict[str, tuple[PlugDemand, Plug]] = {}

    def build_snapshot(
        self,
        *,
        limits: Mapping[str, Phases],
        non_ev: Mapping[str, Phases],
        demands: Sequence[PlugDemand],
        pv_surplus_w: float,
    ) -> Snapshot:
        """The allocator's input for this cycle (without hysteresis state); every circuit limit
        lowered by the configured headroom (A per phase, never below 0)."""
        margin = self._config.headroom_a
        circuits = tuple(
            Circuit(
                id=c.id,
                parent=c.parent,
                limit_a=(limits[c.id] - margin).maximum(0.0) if margin > 0 else limits[c.id],
                non_ev_load_a=non_ev[c.id],
                power_limit_w=c.power_limit_w,
            )
            for c in self._config.circuits
        )
        plugs = tuple(self._plug(d) for d in demands)
        return Snapshot(
            circuits=circuits, plugs=plugs, pv_surplus_w=pv_surplus_w, params=self._params
        )

    def _plug(self, d: PlugDemand) -> Plug:
        """The allocator's view of one plug's demand (the last one again when it is equal)."""
        cached = self._plugs.get(d.spec.id)
        if cached is not None and (cached[0] is d or cached[0] == d):
            return cached[1]
        spec = d.spec
        plug = Plug(  # positional, in the fields' order (a busy site builds one per plug per step)
            spec.id,  # id
            spec.circuit,  # circuit
            d.phases,  # phases
            d.max_a,  # max_a
            spec.min_a,  # min_a
            d.priority,  # priority
            d.mode,  # mode
            d.target_a,  # target_a
            d.target_until.astimezone(UTC) if d.target_until else None,  # target_until
            d.available,  # available
            _SETPOINT_A,  # setpoint_a (the hysteresis fields: their defaults)
            _RUNNING_S,  # running_s
            _PAUSED_S,  # paused_s
            _PV_TIMER_S,  # pv_timer_s
            d.share_a,  # share_a
            d.need_wh,  # need_wh
            d.departure_s,  # departure_s
            d.phases_known,  # phases_known
            d.plan_rank,  # plan_rank
            d.car_limit_a,  # car_limit_a
            d.seen_max_a,  # seen_max_a
        )
        self._plugs[d.spec.id] = (d, plug)
        return plug

    def step(self, now_s: float, snapshot: Snapshot, held: Collection[str] = ()) -> Allocation:
        """Allocate for this cycle; the session fills in and updates hysteresis state (the
        ``held`` plugs' kept as they are: :meth:`AllocationSession.step`)."""
        return self._session.step(snapshot, now_s, held)

    @property
    def last_snapshot(self) -> Snapshot | None:
        """The last input, with the hysteresis state it was allocated with (for dumps and
        ``fuseguard allocate``: the same input gives the same answer)."""
        return self._session.last_input
