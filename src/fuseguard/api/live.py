"""The controller's last cycle in the northbound APIs' own shapes (live data, plug status)."""

from __future__ import annotations

from dataclasses import dataclass

from fuseguard.api.evse_models import PlugStatusRecord
from fuseguard.api.local_models import LiveData, aggregate_status
from fuseguard.control.controller import Controller
from fuseguard.control.types import ControllerStatus
from fuseguard.model.phases import ZERO, Phases


@dataclass
class ControllerLiveData:
    """:class:`fuseguard.api.local.LiveDataSource` over the controller's last cycle."""

    controller: Controller
    voltage_v: float

    def live_data(self) -> LiveData:
        """``/v1/live/data`` and Modbus 19000-19042."""
        st = self.controller.status()
        sample = st.meter_sample
        voltage = (
            sample.voltage_v
            if sample is not None and sample.voltage_v is not None
            else Phases.uniform(self.voltage_v)
        )
        return LiveData(
            active_power_w=st.grid_power_w,
            reactive_power_var=(
                sample.reactive_power_var
                if sample is not None and sample.reactive_power_var is not None
                else 0.0
            ),
            current_a=st.grid_current_a,
            voltage_v=voltage,
            status=aggregate_status(p.status for p in st.plugs),
            active_power_per_phase_w=sample.power_per_phase_w if sample is not None else None,
        )


def status_records(status: ControllerStatus, evse_uuid: str) -> list[PlugStatusRecord]:
    """Seed-002 status records of one EVSE's plugs from the controller's last cycle."""
    return [
        PlugStatusRecord(
            time=status.time,
            plug_uuid=p.plug_uuid or "",
            plug_label=p.plug_label,
            evse_uuid=evse_uuid,
            status=p.status,
            current_a=p.current_a if p.online else ZERO,
            power_w=p.power_w if p.online else 0.0,
            dyn_current_limit_a=float(p.setpoint_a),
        )
        for p in status.plugs
        if p.evse_uuid == evse_uuid
    ]


__all__ = ["ControllerLiveData", "status_records"]
