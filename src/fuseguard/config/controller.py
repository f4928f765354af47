"""The one translation of a site config into the controller's config.

``fuseguard run``, ``fuseguard demo`` and ``fuseguard simulate`` all call
:func:`controller_config`; a scenario file is first turned into the same config sections
(:mod:`fuseguard.scenario.site`), so the simulator runs exactly what the edge runs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from fuseguard.config.models import (
    ChargerConfig,
    ControlConfig,
    FuseguardConfig,
    MeterConfig,
    MeterEndpointConfig,
    PvConfig,
    SiteConfig,
)
from fuseguard.control.types import (
    ChargerSpec,
    CircuitSpec,
    ControllerConfig,
    MeterTiming,
    PlannerSettings,
)


def plug_ids(charger: ChargerConfig) -> list[str]:
    """Controller plug ids of a charger: its id, or ``id/2`` ... for further connectors."""
    return [charger.id if i == 0 else f"{charger.id}/{i + 1}" for i in range(len(charger.plugs))]


#: the shortest ``[api.ocpp] lease_s``: an OCPP lease assumed where none is given
OCPP_SHORTEST_LEASE_S = 5.0


def _fallback_after_s(ch: ChargerConfig, ocpp_lease_s: float) -> float:
    """The charger's watchdog timeout, as its driver arms it: the OCPP lease, a child edge's
    keep-alive timeout (120 s unless set), a Bender's ``safe_timeout_s`` (0: no watchdog)."""
    if ch.driver == "ocpp":
        return ocpp_lease_s
    if ch.driver == "clemap":
        return float(ch.safe_timeout_s or 120)
    return float(ch.safe_timeout_s) if ch.safe_timeout_s > 0 else math.inf


def charger_specs(
    chargers: Sequence[ChargerConfig], *, ocpp_lease_s: float = OCPP_SHORTEST_LEASE_S
) -> list[ChargerSpec]:
    """One :class:`ChargerSpec` per plug of every charger, in config order (``ocpp_lease_s``:
    ``[api.ocpp] lease_s``, the OCPP charge points' watchdog timeout)."""
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
                    limit_delay_s=ch.limit_delay_s,
                    reports_late=ch.driver == "ocpp" or ch.limit_delay_s > 0,
                    fallback_a=ch.fallback_current_a(),
                    fallback_after_s=_fallback_after_s(ch, ocpp_lease_s),
                )
            )
    return specs


def meter_label(m: MeterEndpointConfig) -> str:
    """How logs and the status name a meter: driver, model and address."""
    if m.driver == "virtual":  # an in-process meter of fuseguard simulate, named by its alias
        return f"virtual:{m.alias}"
    kind = m.model or (m.sunspec_device if m.driver == "sunspec" else m.alias)
    if m.driver in ("modbus", "sunspec"):
        return f"{m.driver}:{kind}@{m.host}:{m.port}/{m.unit_id}"
    return f"{m.driver}:{kind}@{m.host}:{m.port}"


def _timing(m: MeterEndpointConfig) -> MeterTiming:
    return MeterTiming(period_s=m.period_s, stale_after_s=m.stale_after_s)


def circuit_specs(site: SiteConfig) -> tuple[CircuitSpec, ...]:
    """The circuit tree, every sub-circuit with a ``meter`` naming it (``CircuitSpec.meter``)."""
    meters = {c.id: meter_label(c.meter) for c in site.circuits if c.meter is not None}
    return tuple(
        dataclasses.replace(spec, meter=meters[spec.id]) if spec.id in meters else spec
        for spec in site.circuit_tree().circuits
    )


def controller_config(
    site: SiteConfig,
    meter: MeterConfig,
    chargers: Sequence[ChargerConfig],
    control: ControlConfig,
    pv: PvConfig | None = None,
    *,
    ocpp_lease_s: float = OCPP_SHORTEST_LEASE_S,
) -> ControllerConfig:
    """The control loop's view of a site: circuits, plugs, meter cadence and control tuning
    (``ocpp_lease_s``: ``[api.ocpp] lease_s``; a scenario's OCPP charge points are configured
    as Benders whose ``safe_timeout_s`` is their lease)."""
    c = control
    return ControllerConfig(
        circuits=circuit_specs(site),
        circuit_meter_timing={
            circuit.id: _timing(circuit.meter)
            for circuit in site.circuits
            if circuit.meter is not None
        },
        pv_meter_timing=_timing(pv) if pv is not None else None,
        chargers=charger_specs(chargers, ocpp_lease_s=ocpp_lease_s),
        voltage_v=site.voltage_v,
        meter_period_s=meter.period_s,
        meter_phase_assumption=meter.phase_assumption,
        meter_phase_lock=meter.phase_lock,
        meter_stale_after_s=meter.stale_after_s,
        charger_timeout_s=c.charger_timeout_s,
        charger_idle_poll_s=c.charger_idle_poll_s,
        min_run_s=c.min_run_s,
        min_pause_s=c.min_pause_s,
        ramp_up_a_per_s=c.ramp_up_a_per_s,
        pv_enable_delay_s=c.pv_enable_delay_s,
        pv_disable_delay_s=c.pv_disable_delay_s,
        recently_started_window_s=c.recently_started_window_s,
        underuse_after_s=c.underuse_after_s,
        headroom_a=c.headroom_a,
        # planner "off": no least laxity either (0 s: only a car already past its last chance)
        urgent_laxity_s=c.urgent_laxity_s if c.planner != "off" else 0.0,
        urgent_reserve=c.urgent_reserve,
        single_phase_weight=c.single_phase_weight,
        planner=c.planner,
        planner_settings=PlannerSettings(
            interval_s=c.planner_interval_s,
            step_s=c.planner_step_s,
            horizon_s=c.planner_horizon_s,
            time_limit_s=c.planner_time_limit_s,
            default_stay_s=c.planner_default_stay_s,
            load_window_s=c.planner_load_window_s,
            finish_early_s=c.planner_finish_early_s,
            exact=c.planner_exact,
        ),
    )


def controller_config_of(cfg: FuseguardConfig) -> ControllerConfig:
    """:func:`controller_config` of a whole edge config."""
    return controller_config(
        cfg.site, cfg.meter, cfg.chargers, cfg.control, cfg.pv, ocpp_lease_s=cfg.api.ocpp.lease_s
    )


__all__ = [
    "charger_specs",
    "circuit_specs",
    "controller_config",
    "controller_config_of",
    "meter_label",
    "plug_ids",
]
