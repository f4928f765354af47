"""The virtual OCPP charge point's configuration and what it puts on the wire (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fuseguard.model.status import OcppState
from fuseguard.sim.chargepoint import ChargePoint

#: OCPP 1.6 spelling of the core's connector states
STATUS_16 = {
    OcppState.AVAILABLE: "Available",
    OcppState.OCCUPIED: "Preparing",
    OcppState.RESERVED: "Reserved",
    OcppState.UNAVAILABLE: "Unavailable",
    OcppState.FAULTED: "Faulted",
    OcppState.PREPARING: "Preparing",
    OcppState.CHARGING: "Charging",
    OcppState.SUSPENDEDEVSE: "SuspendedEVSE",
    OcppState.SUSPENDEDEV: "SuspendedEV",
    OcppState.FINISHING: "Finishing",
}
MEASURANDS = (
    "Current.Import",
    "Current.Offered",
    "Power.Active.Import",
    "Energy.Active.Import.Register",
)
INT_KEYS = ("MeterValueSampleInterval", "HeartbeatInterval")
READONLY_KEYS = frozenset(
    {
        "SupportedFeatureProfiles",
        "ChargeProfileMaxStackLevel",
        "ChargingScheduleAllowedChargingRateUnit",
        "MaxChargingProfilesInstalled",
        "NumberOfConnectors",
    }
)
TRIGGERS = ("BootNotification", "Heartbeat", "StatusNotification", "MeterValues")


def iso(moment: datetime) -> str:
    """UTC timestamp as OCPP writes it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True, kw_only=True)
class OcppSimConfig:
    """What a virtual charge point is (identity, central system, hardware, timing)."""

    url: str  #: the central system URL without the identity, e.g. ws://127.0.0.1:9000/ocpp
    identity: str = "CP1"
    password: str | None = None
    connectors: int = 1
    max_current_a: float = 32.0
    profile_delay_s: float = 0.0  #: how long a new composite limit takes to apply
    meter_interval_s: int = 60  #: initial MeterValueSampleInterval
    max_stack_level: int = 8
    max_profiles: int = 20
    tick_s: float = 0.25
    slow_s: float = 3.0
    backoff_min_s: float = 0.5
    backoff_max_s: float = 30.0
    vendor: str = "fuseguard"
    model: str = "virtual-ocpp"


def initial_keys(cfg: OcppSimConfig) -> dict[str, str]:
    """The configuration keys a charge point reports before anyone changed them."""
    return {
        "SupportedFeatureProfiles": "Core,SmartCharging,RemoteTrigger",
        "ChargeProfileMaxStackLevel": str(cfg.max_stack_level),
        "ChargingScheduleAllowedChargingRateUnit": "Current,Power",
        "MaxChargingProfilesInstalled": str(cfg.max_profiles),
        "MeterValuesSampledData": "Energy.Active.Import.Register",
        "MeterValueSampleInterval": str(cfg.meter_interval_s),
        "HeartbeatInterval": "300",
        "NumberOfConnectors": str(cfg.connectors),
    }


def sampled_values(core: ChargePoint, sampled_data: str, context: str) -> list[dict[str, Any]]:
    """The MeterValues ``sampledValue`` list of ``core`` for the measurands of
    ``MeterValuesSampledData`` (``sampled_data``)."""
    wanted = {m.strip() for m in sampled_data.split(",")}
    base = {"context": context, "location": "Outlet", "format": "Raw"}
    values: list[dict[str, Any]] = []
    if "Current.Import" in wanted:
        current = core.current_a
        for phase, amps in zip(("L1", "L2", "L3"), current, strict=True):
            values.append(
                {
                    **base,
                    "measurand": "Current.Import",
                    "phase": phase,
                    "unit": "A",
                    "value": f"{amps:.2f}",
                }
            )
    if "Current.Offered" in wanted:
        values.append(
            {
                **base,
                "measurand": "Current.Offered",
                "unit": "A",
                "value": f"{core.offered_a:.2f}",
            }
        )
    if "Power.Active.Import" in wanted:
        values.append(
            {
                **base,
                "measurand": "Power.Active.Import",
                "unit": "W",
                "value": f"{core.power_w:.1f}",
            }
        )
    if "Energy.Active.Import.Register" in wanted:
        values.append(
            {
                **base,
                "measurand": "Energy.Active.Import.Register",
                "unit": "Wh",
                "value": f"{core.meter_wh:.1f}",
            }
        )
    return values


__all__ = [
    "INT_KEYS",
    "MEASURANDS",
    "READONLY_KEYS",
    "STATUS_16",
    "TRIGGERS",
    "OcppSimConfig",
    "initial_keys",
    "iso",
    "sampled_values",
]
