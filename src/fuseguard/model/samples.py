"""What devices report, in domain terms (no wire formats, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from fuseguard.model.fastinit import fast_init
from fuseguard.model.phases import Phases
from fuseguard.model.status import CpState, OcppState


@fast_init
@dataclass(frozen=True, slots=True, kw_only=True)
class MeterSample:
    """One reading of the grid (or sub-circuit) meter.

    ``current_a`` is None when the source does not measure per-phase currents (a CEMM P1 meter
    reports only total power): the controller then applies its configured phase assumption.
    ``stale`` is True when the meter's own timestamp did not advance since the previous reading.
    """

    timestamp: datetime
    power_w: float
    current_a: Phases | None = None
    voltage_v: Phases | None = None
    power_per_phase_w: Phases | None = None
    reactive_power_var: float | None = None
    frequency_hz: float | None = None
    energy_import_wh: float | None = None
    energy_export_wh: float | None = None
    stale: bool = False


@fast_init
@dataclass(frozen=True, slots=True, kw_only=True)
class ChargerSample:
    """One reading of a charge point (one connector).

    ``current_a`` is per charger terminal (L1, L2, L3 of the charger, before wiring rotation).
    ``measured_age_s`` is how old the measurements (currents, power) were when the sample was
    read: 0 for a charger measured at the read (Modbus), the time since the last MeterValues for
    an OCPP charge point (the state is always as of the read). ``uncontrollable`` says why the
    charger does not take the limits it is given (it refuses them, cannot take them or ignores
    them), None when it does.
    """

    cp_state: CpState
    ocpp_state: OcppState | None = None
    current_a: Phases = field(default_factory=Phases)
    power_w: float = 0.0
    energy_wh: float | None = None
    session_energy_wh: float | None = None
    charging_duration_s: float | None = None
    signalled_current_a: float | None = None
    limit_a: float | None = None
    max_current_a: float | None = None
    cable_rating_a: float | None = None
    phases_in_use: int | None = None
    authorized: bool = True
    errors: tuple[str, ...] = ()
    firmware: str | None = None
    measured_age_s: float = 0.0
    uncontrollable: str | None = None
    #: the OCPP idTag that started the running transaction (None: unknown or no transaction)
    id_tag: str | None = None

    #: the charger's energy register only counts (reports, the web, MQTT); no control decision
    #: reads it (the session's energy is ``session_energy_wh``): the scenario runner's
    #: day-jump proof does not compare it (``scenario/statewalk.py``)
    __fuseguard_counters__ = ("energy_wh",)
