"""The one translation of a site config into the controller's config.

``fuseguard run``, ``fuseguard demo`` and ``fuseguard simulate`` all call
:func:`controller_config`; a scenario file is first turned into the same config sections
(:mod:`fuseguard.scenario.site`), so the simulator runs exactly what the edge runs.
"""

from __future__ import annotations

from collections.abc import Sequence

from fuseguard.config.models import (
    ChargerConfig,
    ControlConfig,
    FuseguardConfig,
    MeterConfig,
    SiteConfig,
)
from fuseguard.control.types import ChargerSpec, ControllerConfig


def plug_ids(charger: ChargerConfig) -> list[str]:
    """Controller plug ids of a charger: its id, or ``id/2`` ... for further connectors."""
    return [charger.id if i == 0 else f"{charger.id}/{i + 1}" for i in range(len(charger.plugs))]


def charger_specs(chargers: Sequence[ChargerConfig]) -> list[ChargerSpec]:
    """One :class:`ChargerSpec` per plug of every charger, in config order."""
    specs = []
    for ch in chargers:
        for pid, plug in zip(plug_ids(ch), ch.plugs, strict=True):
            specs.append(
                ChargerSpec(
                    id=pid,
                    circuit=ch.circuit,
                    rotation=ch.rotation,
                    min_a=ch.min_current_a,
                    max_a=ch.max_current_a,
                    mode=ch.mode,
                    priority=ch.priority,
                    evse_uuid=ch.evse_uuid,
                    wired_phases=ch.phases,
                    plug_uuid=plug.uuid,
                    plug_label=plug.label,
                    child_edge=ch.driver == "clemap",
                )
            )
    return specs


def controller_config(
    site: SiteConfig,
    meter: MeterConfig,
    chargers: Sequence[ChargerConfig],
    control: ControlConfig,
) -> ControllerConfig:
    """The control loop's view of a site: circuits, plugs, meter cadence and control tuning."""
    c = control
    return ControllerConfig(
        circuits=site.circuit_tree().circuits,
        chargers=charger_specs(chargers),
        voltage_v=site.voltage_v,
        meter_period_s=meter.period_s,
        meter_phase_assumption=meter.phase_assumption,
        meter_stale_after_s=meter.stale_after_s,
        charger_timeout_s=c.charger_timeout_s,
        charger_idle_poll_s=c.charger_idle_poll_s,
        min_run_s=c.min_run_s,
        min_pause_s=c.min_pause_s,
        ramp_up_a_per_s=c.ramp_up_a_per_s,
        pv_enable_delay_s=c.pv_enable_delay_s,
        pv_disable_delay_s=c.pv_disable_delay_s,
        recently_started_window_s=c.recently_started_window_s,
    )


def controller_config_of(cfg: FuseguardConfig) -> ControllerConfig:
    """:func:`controller_config` of a whole edge config."""
    return controller_config(cfg.site, cfg.meter, cfg.chargers, cfg.control)


__all__ = ["charger_specs", "controller_config", "controller_config_of", "plug_ids"]
