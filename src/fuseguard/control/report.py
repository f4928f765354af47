"""Reporting: the controller's state as the APIs and the terminal view see it, and who is told.

Owns: the cycle listeners (a listener that raises is logged once per distinct reason and never
stops the loop). Everything else here only reads the parts (meter reading, plugs, setpoints) to
build the frozen :class:`~fuseguard.control.types.PlugView` records and the grid current shown.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from fuseguard.control.plug import PlugControl
from fuseguard.control.types import ControllerStatus, PlugView
from fuseguard.model.phases import ZERO, Phases
from fuseguard.model.samples import MeterSample

log = structlog.get_logger(__name__)

Listener = Callable[[ControllerStatus], None]


class Listeners:
    """Who is told after every cycle."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._failures: dict[int, str] = {}

    def __bool__(self) -> bool:
        return bool(self._listeners)

    def add(self, listener: Listener) -> None:
        """Tell ``listener`` after every cycle."""
        self._listeners.append(listener)

    def tell(self, status: ControllerStatus) -> None:
        """Call every listener; one that raises is logged (once per reason) and skipped."""
        for i, listener in enumerate(list(self._listeners)):
            try:
                listener(status)
            except Exception as err:
                if self._failures.get(i) != repr(err):
                    log.exception("listener_failed", listener=repr(listener), reason=repr(err))
                self._failures[i] = repr(err)
            else:
                self._failures.pop(i, None)


def grid_current_a(sample: MeterSample | None, voltage_v: float) -> Phases:
    """The grid current to show: measured per phase, else the total power spread evenly."""
    if sample is None:
        return ZERO
    if sample.current_a is not None:
        return sample.current_a
    return Phases.uniform(sample.power_w / (3 * voltage_v))


def plug_view(plug: PlugControl, now: float) -> PlugView:
    """One plug as the APIs show it."""
    spec, reading, sp = plug.spec, plug.reading, plug.setpoint
    s = reading.sample
    return PlugView(
        id=spec.id,
        evse_uuid=spec.evse_uuid,
        plug_uuid=spec.plug_uuid,
        plug_label=spec.plug_label,
        circuit=spec.circuit,
        status=plug.status,
        online=reading.online(now),
        setpoint_a=sp.setpoint_a,
        written_a=sp.written_a,
        reason=sp.reason,
        current_a=s.current_a if s is not None else ZERO,
        grid_current_a=reading.grid_a,
        power_w=s.power_w if s is not None else 0.0,
        energy_wh=s.session_energy_wh if s is not None else None,
        stuck=plug.stuck.stuck,
        error=reading.error or plug.uncontrollable.reason,
        id_tag=s.id_tag if s is not None else None,
    )


__all__ = ["Listener", "Listeners", "grid_current_a", "plug_view"]
