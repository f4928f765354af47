"""Baseline policies for honest comparison: re-implementations of *documented* behaviour.

These are not the projects themselves, only what their documentation and source describe, run on
the same virtual devices and the same clock as fuseguard:

``static``            the fuse split equally over all chargers once, no measurement (a fixed
                      installer setting).
``round_robin_30s``   evcc's loop as documented: a 30 s interval, one loadpoint adjusted per tick
                      in turn; the increase is capped to the headroom of the highest phase
                      (limit - measured), a negative headroom cuts the current; below 6 A the
                      charger is disabled; meter errors older than 1 min count as overload.
``ten_second_equal``  openWB 2 as documented: every 10 s all chargepoints; per phase, what is left
                      after the non-EV load is split equally among the connected chargepoints
                      using that phase (min current 6 A first, else 0); after 60 s of meter
                      errors a fixed 7000 W budget.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from fuseguard.control.ports import DeviceError
from fuseguard.model.circuits import MAIN
from fuseguard.model.clock import Clock
from fuseguard.model.iec import MIN_CHARGE_CURRENT_A
from fuseguard.model.phases import Phases
from fuseguard.model.samples import ChargerSample
from fuseguard.scenario.adapters import ConnectorCharger, SiteMeter
from fuseguard.scenario.config import Scenario

log = structlog.get_logger(__name__)


@dataclass
class PolicyContext:
    """Everything a policy may use: the same devices and clock for every policy."""

    clock: Clock
    scenario: Scenario
    meter: SiteMeter
    chargers: dict[str, ConnectorCharger]
    main_limit_a: Callable[[], float]
    target_cap_a: Callable[[str], float | None]
    last_setpoints: dict[str, int] = field(default_factory=dict)
    #: sub-circuit meters by circuit id and the PV meter (the baselines measure at main only)
    circuit_meters: dict[str, SiteMeter] = field(default_factory=dict)
    pv_meter: SiteMeter | None = None

    def charger_path(self, charger_id: str) -> list[str]:
        """Circuits from the charger's circuit up to main."""
        spec = next(c for c in self.scenario.chargers if c.id == charger_id)
        return self.scenario.path_to_main(spec.circuit)

    def cap_a(self, charger_id: str, value: float) -> int:
        """Clamp to the charger max and the Direct EVSE target; below 6 A -> 0."""
        spec = next(c for c in self.scenario.chargers if c.id == charger_id)
        value = min(value, spec.max_a)
        target = self.target_cap_a(charger_id)
        if target is not None:
            value = min(value, target)
        v = math.floor(value + 1e-9)
        return v if v >= MIN_CHARGE_CURRENT_A else 0

    async def write(self, charger_id: str, current_a: int) -> None:
        """Write a setpoint; device errors are logged, not raised."""
        try:
            await self.chargers[charger_id].set_current_limit(current_a)
        except DeviceError as err:
            log.warning("baseline_write_failed", device=charger_id, reason=str(err))
            return
        self.last_setpoints[charger_id] = current_a

    async def read(self, charger_id: str) -> ChargerSample | None:
        """Read a charger; None when it fails."""
        try:
            return await self.chargers[charger_id].read()
        except DeviceError as err:
            log.warning("baseline_read_failed", device=charger_id, reason=str(err))
            return None


def _grid_draw(ctx: PolicyContext, charger_id: str, sample: ChargerSample | None) -> Phases:
    spec = next(c for c in ctx.scenario.chargers if c.id == charger_id)
    if sample is None:
        return Phases()
    return spec.rotation.to_grid(sample.current_a)


def _used_phases(ctx: PolicyContext, charger_id: str, sample: ChargerSample | None) -> list[int]:
    draw = _grid_draw(ctx, charger_id, sample)
    used = [i for i in range(3) if draw[i] > 0.5]
    return used or [0, 1, 2]


class StaticPolicy:
    """The fuse split equally over all chargers, written once (and re-written every 5 min)."""

    name = "static"

    def __init__(self, ctx: PolicyContext) -> None:
        self.ctx = ctx

    def setpoints(self) -> dict[str, int]:
        """Equal split of each circuit's fuse over the chargers below it."""
        sc = self.ctx.scenario
        fuses = sc.circuit_fuses
        below: dict[str, list[str]] = {c: [] for c in fuses}
        for ch in sc.chargers:
            for circ in sc.path_to_main(ch.circuit):
                below[circ].append(ch.id)
        out: dict[str, float] = {ch.id: float(ch.max_a) for ch in sc.chargers}
        # Top-down: each circuit's fuse (its weakest phase) split equally over the chargers
        # below it; when that is below 6 A, only as many chargers as can get 6 A are switched on
        # (in id order).
        for circ, fuse in fuses.items():
            ids = [i for i in below[circ] if out[i] >= MIN_CHARGE_CURRENT_A]
            if not ids:
                continue
            k = min(len(ids), int(fuse.min // MIN_CHARGE_CURRENT_A))
            for cid in ids[k:]:
                out[cid] = 0.0
            for cid in ids[:k]:
                out[cid] = min(out[cid], fuse.min / k)
        return {k: (math.floor(v) if v >= MIN_CHARGE_CURRENT_A else 0) for k, v in out.items()}

    async def run(self) -> None:
        """Write the static split, then keep re-writing it."""
        fixed = self.setpoints()
        while True:
            for cid, value in fixed.items():
                await self.ctx.write(cid, value)
            await self.ctx.clock.sleep(300.0)


class RoundRobinPolicy:
    """evcc-style: every 30 s one charger is adjusted to the headroom of the highest phase."""

    name = "round_robin_30s"
    interval_s = 30.0
    meter_timeout_s = 60.0

    def __init__(self, ctx: PolicyContext) -> None:
        self.ctx = ctx
        self._next = 0
        self._meter_ok_at = 0.0

    async def step(self) -> None:
        """One 30 s tick."""
        ctx = self.ctx
        ids = [c.id for c in ctx.scenario.chargers]
        samples = {cid: await ctx.read(cid) for cid in ids}
        now = ctx.clock.monotonic()
        try:
            reading = await ctx.meter.read()
            grid = reading.current_a
            if grid is None:  # total power only: evcc spreads it evenly over three phases
                grid = Phases.uniform(reading.power_w / (3 * ctx.scenario.site.voltage_v))
            self._meter_ok_at = now
        except DeviceError as err:
            log.warning("baseline_meter_failed", device="meter", reason=str(err))
            grid = None
        # Pick the next charger with a vehicle (round robin over all).
        chosen = None
        for k in range(len(ids)):
            cid = ids[(self._next + k) % len(ids)]
            s = samples[cid]
            if s is not None and s.cp_state.vehicle_connected:
                chosen = cid
                self._next = (self._next + k + 1) % len(ids)
                break
        if chosen is None:
            return
        own = _grid_draw(ctx, chosen, samples[chosen]).max
        headrooms: list[float] = []
        for circ in ctx.charger_path(chosen):
            if circ == MAIN:
                if grid is None:
                    stale = now - self._meter_ok_at > self.meter_timeout_s
                    headrooms.append(-math.inf if stale else 0.0)
                else:
                    headrooms.append(ctx.main_limit_a() - grid.max)
            else:
                load = Phases()
                for ch in ctx.scenario.chargers:
                    if circ in ctx.scenario.path_to_main(ch.circuit):
                        load = load + _grid_draw(ctx, ch.id, samples[ch.id])
                headrooms.append((ctx.scenario.circuit_fuses[circ] - load).min)
        headroom = min(headrooms)
        current = float(ctx.last_setpoints.get(chosen, 0))
        base = own if own > 0 else current
        new = 0 if headroom == -math.inf else ctx.cap_a(chosen, max(0.0, base + headroom))
        if own <= 0 and headroom < MIN_CHARGE_CURRENT_A:
            new = 0
        await ctx.write(chosen, new)

    async def run(self) -> None:
        """Tick every 30 s; chargers start at 0 A."""
        for cid in self.ctx.chargers:
            await self.ctx.write(cid, 0)
        while True:
            await self.step()
            await self.ctx.clock.sleep(self.interval_s)


class TenSecondEqualPolicy:
    """openWB-style: every 10 s all chargers, equal split per phase after the non-EV load."""

    name = "ten_second_equal"
    interval_s = 10.0
    meter_timeout_s = 60.0
    meter_error_budget_w = 7000.0

    def __init__(self, ctx: PolicyContext) -> None:
        self.ctx = ctx
        self._meter_ok_at = 0.0

    async def step(self) -> None:
        """One 10 s cycle over all chargepoints."""
        ctx = self.ctx
        sc = ctx.scenario
        ids = [c.id for c in sc.chargers]
        samples = {cid: await ctx.read(cid) for cid in ids}
        now = ctx.clock.monotonic()
        own_total = Phases()
        for cid in ids:
            own_total = own_total + _grid_draw(ctx, cid, samples[cid])
        available: dict[str, list[float]] = {}
        limit = ctx.main_limit_a()
        try:
            reading = await ctx.meter.read()
            grid = reading.current_a
            if grid is None:
                grid = Phases.uniform(reading.power_w / (3 * sc.site.voltage_v))
            self._meter_ok_at = now
            house = grid - own_total
            available[MAIN] = [max(0.0, limit - house[i]) for i in range(3)]
        except DeviceError as err:
            log.warning("baseline_meter_failed", device="meter", reason=str(err))
            if now - self._meter_ok_at > self.meter_timeout_s:
                budget = self.meter_error_budget_w / (3 * sc.site.voltage_v)
                available[MAIN] = [min(budget, limit)] * 3
            else:  # keep the last plan until the meter error is 60 s old
                return
        for circ, fuse in sc.circuit_fuses.items():
            if circ != MAIN:
                available[circ] = fuse.as_list()
        active = [
            cid for cid, s in samples.items() if s is not None and s.cp_state.vehicle_connected
        ]
        used = {cid: _used_phases(ctx, cid, samples[cid]) for cid in active}
        # Stage 1: min current where every counter on the path allows it.
        granted: dict[str, float] = {}
        for cid in active:
            path = ctx.charger_path(cid)
            if all(available[c][p] >= MIN_CHARGE_CURRENT_A for c in path for p in used[cid]):
                granted[cid] = MIN_CHARGE_CURRENT_A
                for c in path:
                    for p in used[cid]:
                        available[c][p] -= MIN_CHARGE_CURRENT_A
            else:
                granted[cid] = 0.0
        # Stage 2: the rest split equally per phase among the chargers using that phase.
        for circ in available:
            users: list[int] = [0, 0, 0]
            for cid in active:
                if granted[cid] > 0 and circ in ctx.charger_path(cid):
                    for p in used[cid]:
                        users[p] += 1
            shares = [available[circ][p] / users[p] if users[p] else 0.0 for p in range(3)]
            for cid in active:
                if granted[cid] > 0 and circ in ctx.charger_path(cid):
                    extra = min(shares[p] for p in used[cid])
                    key = f"{cid}@{circ}"
                    granted[key] = extra
        result: dict[str, int] = {}
        for cid in ids:
            if cid not in active or granted.get(cid, 0.0) <= 0:
                result[cid] = 0
                continue
            extra = min(granted[f"{cid}@{c}"] for c in ctx.charger_path(cid))
            result[cid] = ctx.cap_a(cid, MIN_CHARGE_CURRENT_A + extra)
        for cid, value in result.items():
            await ctx.write(cid, value)

    async def run(self) -> None:
        """A cycle every 10 s."""
        while True:
            await self.step()
            await self.ctx.clock.sleep(self.interval_s)


BASELINES: dict[str, type[StaticPolicy] | type[RoundRobinPolicy] | type[TenSecondEqualPolicy]] = {
    StaticPolicy.name: StaticPolicy,
    RoundRobinPolicy.name: RoundRobinPolicy,
    TenSecondEqualPolicy.name: TenSecondEqualPolicy,
}
