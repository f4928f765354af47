"""A scenario's meters and non-EV loads beyond the grid meter and ``base_load``.

The same site model carries every meter, so a sub-meter sees exactly what the chargers and loads
of its circuit draw, and the grid meter sees all of it:

* the grid meter (``[site] meter``, fault device ``meter``) at ``main``;
* one sub-meter per ``[[circuits]]`` with a ``meter`` (fault device ``meter:<circuit>``), with
  that meter's own ``period_s`` (how often its values refresh) and ``stale_after_s``;
* the PV meter (``[pv] meter``, fault device ``pv:meter``): the PV plant's own output, like an
  inverter's (production negative), refreshed every ``period_s``.

The controller gets them through the edge's one config translation
(:func:`fuseguard.scenario.site.scenario_controller_config` names the meters and their timing)
and as ``Controller(circuit_meters=..., pv_meter=...)``, exactly as ``fuseguard run`` builds them
from a ``site.toml``. Non-EV load on a sub-circuit (``[[circuit_loads]]``, a ``base_step`` with a
``circuit``) is one more :class:`~fuseguard.sim.site.BaseLoad` on that circuit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fuseguard.model.circuits import MAIN
from fuseguard.model.clock import Clock
from fuseguard.model.phases import ZERO
from fuseguard.scenario.adapters import SiteMeter
from fuseguard.scenario.config import CIRCUIT_METER_PREFIX, GRID_METER, PV_METER, Scenario
from fuseguard.sim.site import BaseLoad, PiecewiseLinear, PvPlant, SiteModel


@dataclass
class ScenarioMeters:
    """Every meter of a scenario's site, by the fault device name that addresses it."""

    grid: SiteMeter
    circuits: dict[str, SiteMeter] = field(default_factory=dict)
    pv: SiteMeter | None = None

    @classmethod
    def build(
        cls, sc: Scenario, site: SiteModel, pv_plant: PvPlant | None, clock: Clock
    ) -> ScenarioMeters:
        """The grid meter, a sub-meter per metered circuit and the PV meter of ``sc``."""
        slow_s = sc.site.slow_delay_s
        grid = SiteMeter(site, MAIN, sc.site.meter, clock=clock, slow_delay_s=slow_s)
        circuits = {
            c.id: SiteMeter(
                site,
                c.id,
                clock=clock,
                slow_delay_s=slow_s,
                name=CIRCUIT_METER_PREFIX + c.id,
                period_s=c.meter.period_s,
            )
            for c in sc.circuits
            if c.meter is not None
        }
        pv = None
        pv_meter = sc.pv.meter if sc.pv is not None else None
        if pv_meter is not None and pv_plant is not None:
            pv = SiteMeter(
                site,
                clock=clock,
                slow_delay_s=slow_s,
                name=PV_METER,
                period_s=pv_meter.period_s,
                source=pv_plant.grid_current_a,
            )
        return cls(grid=grid, circuits=circuits, pv=pv)

    def device(self, name: str) -> SiteMeter | None:
        """The meter a fault event's ``device`` names, or None (a charger)."""
        if name == GRID_METER:
            return self.grid
        if name == PV_METER:
            return self.pv
        if name.startswith(CIRCUIT_METER_PREFIX):
            return self.circuits.get(name.removeprefix(CIRCUIT_METER_PREFIX))
        return None


def circuit_loads(sc: Scenario, site: SiteModel) -> dict[str, BaseLoad]:
    """One non-EV load on every sub-circuit that has a profile or a ``base_step``, on the site."""
    profiles = {load.circuit: load.profile() for load in sc.circuit_loads}
    for ev in sc.events:
        step = ev.base_step
        if step is not None and step.circuit != MAIN:
            profiles.setdefault(step.circuit, [(0.0, ZERO)])
    loads = {}
    for circuit, points in profiles.items():
        load = BaseLoad(PiecewiseLinear(points), circuit=circuit)
        site.add(load)
        loads[circuit] = load
    return loads


__all__ = ["ScenarioMeters", "circuit_loads"]
