"""Bridge from the control loop's state to the pure allocator (:mod:`fuseguard.allocation`).

The controller owns the clock; :class:`AllocatorSession` here turns its per-cycle view into an
allocation :class:`~fuseguard.allocation.types.Snapshot` and lets the allocation package's
stateful session keep run/pause timers, the waiting queue and PV timers between cycles.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from fuseguard.allocation.session import AllocationSession
from fuseguard.allocation.types import Allocation, AllocationParams, Circuit, Plug, Snapshot
from fuseguard.model.phases import Phase, Phases

if TYPE_CHECKING:
    from fuseguard.control.controller import ControllerConfig
    from fuseguard.control.plug_settings import PlugSettings


class _PlugLike(Protocol):
    @property
    def spec(self) -> _SpecLike: ...


class _SpecLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def circuit(self) -> str: ...
    @property
    def min_a(self) -> int: ...
    @property
    def priority(self) -> int: ...
    @property
    def mode(self) -> object: ...


class AllocatorSession:
    """Builds snapshots from controller state and runs the allocation session."""

    def __init__(self, config: ControllerConfig, plug_settings: PlugSettings | None = None) -> None:
        self._config = config
        self._plug_settings = plug_settings  # runtime mode/priority overrides
        self._params = AllocationParams(
            voltage_v=config.voltage_v,
            min_run_s=config.min_run_s,
            min_pause_s=config.min_pause_s,
            pv_enable_delay_s=config.pv_enable_delay_s,
            pv_disable_delay_s=config.pv_disable_delay_s,
        )
        self._session = AllocationSession()

    def build_snapshot(
        self,
        *,
        limits: Mapping[str, Phases],
        non_ev: Mapping[str, Phases],
        plugs: Mapping[str, _PlugLike],
        available: Mapping[str, bool],
        phases: Mapping[str, tuple[Phase, ...]],
        max_a: Mapping[str, int],
        caps: Mapping[str, tuple[int, datetime] | None],
        pv_surplus_w: float,
    ) -> Snapshot:
        """The allocator's input for this cycle (without hysteresis state)."""
        circuits = tuple(
            Circuit(
                id=c.id,
                parent=c.parent,
                limit_a=limits[c.id],
                non_ev_load_a=non_ev[c.id],
                power_limit_w=c.power_limit_w,
            )
            for c in self._config.circuits
        )
        plug_inputs = []
        for pid, plug in plugs.items():
            spec = plug.spec
            cap = caps.get(pid)
            mode, priority = spec.mode, spec.priority
            if self._plug_settings is not None:
                mode = self._plug_settings.mode_of(pid, spec.mode)  # type: ignore[arg-type]
                priority = self._plug_settings.priority_of(pid, spec.priority)
            plug_inputs.append(
                Plug(
                    id=pid,
                    circuit=spec.circuit,
                    phases=phases[pid],
                    max_a=max_a[pid],
                    min_a=spec.min_a,
                    priority=priority,
                    mode=mode,  # type: ignore[arg-type]
                    target_a=cap[0] if cap is not None else None,
                    target_until=cap[1] if cap is not None else None,
                    available=available[pid],
                )
            )
        return Snapshot(
            circuits=circuits,
            plugs=tuple(plug_inputs),
            pv_surplus_w=pv_surplus_w,
            params=self._params,
        )

    def step(self, now_s: float, snapshot: Snapshot) -> Allocation:
        """Allocate for this cycle; the session fills in and updates hysteresis state."""
        return self._session.step(snapshot, now_s)

    @property
    def last_snapshot(self) -> Snapshot | None:
        """The last input, with the hysteresis state it was allocated with (for dumps and
        ``fuseguard allocate``: the same input gives the same answer)."""
        return self._session.last_input
