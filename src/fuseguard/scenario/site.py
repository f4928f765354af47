"""A scenario's site as edge config sections, and the controller config built from them.

``fuseguard simulate`` runs exactly what the edge runs: the scenario is turned into the same
``[site]`` (circuits with their ``meter``), ``[meter]``, ``[pv]``, ``[[chargers]]`` and
``[control]`` sections a ``site.toml`` would hold,
and :func:`fuseguard.config.controller.controller_config` (the one translation ``fuseguard run``
and ``demo`` use too) makes the controller's config from them. What the scenario does not say
comes from the config classes' own defaults, never from numbers written here.
"""

from __future__ import annotations

from fuseguard.config import (
    ChargerConfig,
    ControlConfig,
    MeterConfig,
    PlugConfig,
    PvConfig,
    SiteConfig,
)
from fuseguard.config.controller import controller_config
from fuseguard.control.types import ControllerConfig
from fuseguard.scenario.config import Scenario

#: ``site.edge_id`` of a simulated site.
SCENARIO_EDGE_ID = "scenario"
#: Label of a scenario charger's one plug.
PLUG_LABEL = "Plug 1"


def site_config(sc: Scenario) -> SiteConfig:
    """``[site]``: voltage, main fuse and the circuits (the scenario's circuits are config ones)."""
    return SiteConfig(
        edge_id=SCENARIO_EDGE_ID,
        name=sc.site.name or "",
        voltage_v=sc.site.voltage_v,
        main_fuse_a=(sc.site.fuse_a,) * 3,
        circuits=list(sc.circuits),
    )


def meter_config(sc: Scenario) -> MeterConfig:
    """``[meter]``: the in-process meter at ``main``, its period and phase assumption."""
    return MeterConfig(
        driver="virtual",
        period_s=sc.site.meter_period_s,
        phase_assumption=sc.site.meter_phase_assumption,
    )


def charger_configs(sc: Scenario) -> list[ChargerConfig]:
    """``[[chargers]]``: one EVSE with one plug per scenario charger."""
    return [
        ChargerConfig(
            id=ch.id,
            evse_uuid=ch.evse_uuid,
            circuit=ch.circuit,
            rotation=ch.rotation,
            max_current_a=ch.max_a,
            mode=ch.mode,
            priority=ch.priority,
            safe_current_a=sc.site.charger_safe_current_a,
            safe_timeout_s=sc.site.charger_safe_timeout_s,
            limit_delay_s=ch.profile_delay_s,
            plugs=[PlugConfig(uuid=ch.plug_uuid, label=PLUG_LABEL)],
        )
        for ch in sc.chargers
    ]


def pv_config(sc: Scenario) -> PvConfig | None:
    """``[pv]``: the separate PV meter (the inverter), if the scenario has one."""
    return sc.pv.meter if sc.pv is not None else None


def control_config(sc: Scenario) -> ControlConfig:
    """``[control]``: the scenario's own section (the config's defaults where it says nothing)."""
    return sc.control


def scenario_controller_config(sc: Scenario) -> ControllerConfig:
    """The controller config of the scenario's site, through the one translation."""
    return controller_config(
        site_config(sc), meter_config(sc), charger_configs(sc), control_config(sc), pv_config(sc)
    )


__all__ = [
    "PLUG_LABEL",
    "SCENARIO_EDGE_ID",
    "charger_configs",
    "control_config",
    "meter_config",
    "pv_config",
    "scenario_controller_config",
    "site_config",
]
