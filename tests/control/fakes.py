"""Tiny in-memory meter and chargers for control-loop tests (virtual time, no sockets).

:class:`FakeCharger` is the one charge-point core (:class:`fuseguard.sim.chargepoint.ChargePoint`)
without time: its car follows every change at once and never fills up, so a test says exactly
what each charger draws.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fuseguard.control.controller import ChargerSpec, CircuitSpec, Controller, ControllerConfig
from fuseguard.control.flex import FlexManagement
from fuseguard.control.ports import DeviceConnectionError, DeviceResponseError
from fuseguard.model.clock import Clock
from fuseguard.model.iec import MAX_CHARGE_CURRENT_A
from fuseguard.model.phases import ZERO, Phases, Rotation
from fuseguard.model.samples import ChargerSample, MeterSample
from fuseguard.sim.chargepoint import ChargePoint
from fuseguard.sim.vehicle import SimVehicle

#: The fake's only instant: nothing it does takes time.
_NOW = 0.0


class FakeCharger:
    """A charger with a car that draws min(limit, car max) on its phases at once (0 below 6 A).

    ``stuck_a`` welds the contactor with the car drawing that much whatever the limit; ``full``
    is a car that takes no current although offered; ``offline`` refuses every call; ``hang``
    never answers a read.
    """

    def __init__(
        self,
        rotation: Rotation = Rotation.L1L2L3,
        car_phases: int = 3,
        car_max_a: float = 32.0,
        plugged: bool = True,
        limit_a: int = 0,
        offline: bool = False,
        stuck_a: float | None = None,
        writes: list[int] | None = None,
        full: bool = False,
        hang: bool = False,
    ) -> None:
        self.core = ChargePoint(
            name="fake",
            max_current_a=MAX_CHARGE_CURRENT_A,
            rotation=rotation,
            limit_a=float(limit_a),
        )
        self.offline = offline
        self.hang = hang  # answers nothing at all: reads never return
        self.writes: list[int] = [] if writes is None else writes
        self._car_phases = car_phases
        self._car_max_a = car_max_a
        self._stuck_a: float | None = None
        self._full = full
        self.plugged = plugged
        self.stuck_a = stuck_a

    # --- what a test sets ----------------------------------------------------------------

    @property
    def rotation(self) -> Rotation:
        return self.core.rotation

    @rotation.setter
    def rotation(self, rotation: Rotation) -> None:
        self.core.rewire(rotation)

    @property
    def car_phases(self) -> int:
        return self._car_phases

    @car_phases.setter
    def car_phases(self, phases: int) -> None:
        self._car_phases = phases
        if self.plugged:  # another car
            self.plugged = False
            self.plugged = True

    @property
    def car_max_a(self) -> float:
        return self._car_max_a

    @car_max_a.setter
    def car_max_a(self, current_a: float) -> None:
        self._car_max_a = current_a
        if self.core.car is not None:
            self.core.car.max_current_a = current_a
            self._settle()

    @property
    def plugged(self) -> bool:
        return self.core.car is not None

    @plugged.setter
    def plugged(self, plugged: bool) -> None:
        if plugged and self.core.car is None:
            car = SimVehicle(
                phases=self._car_phases,
                max_current_a=self._car_max_a,
                response_delay_s=0.0,
                suspended=self._full,
                name="fake-car",
            )
            self.core.plug_in(car, _NOW)
        elif not plugged:
            self.core.unplug(_NOW)
        self._settle()

    @property
    def limit_a(self) -> int:
        return int(self.core.limit_a or 0)

    @limit_a.setter
    def limit_a(self, current_a: int) -> None:
        self.core.write_limit(float(current_a), _NOW)
        self._settle()

    @property
    def stuck_a(self) -> float | None:
        return self._stuck_a

    @stuck_a.setter
    def stuck_a(self, current_a: float | None) -> None:
        self._stuck_a = current_a
        if current_a is None:
            if self.core.stuck:
                self.core.clear_fault("stuck_contactor", _NOW)
        else:
            self.core.stick_at(current_a, _NOW)
        self._settle()

    @property
    def full(self) -> bool:
        return self._full

    @full.setter
    def full(self, full: bool) -> None:
        self._full = full
        if self.core.car is not None:
            self.core.car.suspended = full
            self.core.car_changed(_NOW)
        self._settle()

    def _settle(self) -> None:
        self.core.advance(_NOW)

    # --- what the meter sees -------------------------------------------------------------

    def draw_local(self) -> Phases:
        return self.core.current_a

    def draw_grid(self) -> Phases:
        return self.core.grid_current_a()

    # --- the Charger port ----------------------------------------------------------------

    async def _maybe_hang(self) -> None:
        if self.hang:
            await asyncio.get_running_loop().create_future()

    async def read(self) -> ChargerSample:
        await self._maybe_hang()
        if self.offline:
            raise DeviceConnectionError("connection refused")
        return self.core.sample()

    async def set_current_limit(self, current_a: int) -> None:
        if self.offline:
            raise DeviceConnectionError("connection refused")
        self.limit_a = current_a
        self.writes.append(current_a)


@dataclass
class FakeMeter:
    """Per-phase (or total-power) meter over a base load plus the fake chargers."""

    clock: Clock
    chargers: list[FakeCharger]
    base_a: Phases = ZERO
    per_phase: bool = True
    offline: bool = False
    garbage: bool = False
    frozen: bool = False
    _last_ts: object = None

    def grid_a(self) -> Phases:
        total = self.base_a
        for ch in self.chargers:
            total = total + ch.draw_grid()
        return total

    async def read(self) -> MeterSample:
        if self.offline:
            raise DeviceConnectionError("meter: connection refused")
        if self.garbage:
            raise DeviceResponseError("meter: body is not JSON")
        grid = self.grid_a()
        ts = self._last_ts if self.frozen and self._last_ts is not None else self.clock.now()
        stale = self.frozen and self._last_ts is not None
        self._last_ts = ts
        return MeterSample(
            timestamp=ts,  # type: ignore[arg-type]
            power_w=grid.total * 230.0,
            current_a=grid if self.per_phase else None,
            stale=stale,
        )


@dataclass
class FakeSite:
    """A controller over fake chargers and a fake meter on one ``main`` circuit, with the EMS's
    flex management (:func:`fake_site`); ``async with site.running():`` runs its loop."""

    clock: Clock
    chargers: dict[str, FakeCharger]
    meter: FakeMeter
    flex: FlexManagement
    ctl: Controller

    async def over(
        self, limit_a: float, seconds: float, allowed_s: float, tick_s: float = 0.25
    ) -> list[tuple[float, Phases]]:
        """Advance ``seconds`` in ``tick_s`` steps; the grid over ``limit_a`` on any phase at
        each tick after the first ``allowed_s`` (the time since the call, the grid)."""
        out: list[tuple[float, Phases]] = []
        for tick in range(1, round(seconds / tick_s) + 1):
            await self.clock.advance(tick_s)
            grid = self.meter.grid_a()
            if tick * tick_s > allowed_s and not grid.all_le(Phases.uniform(limit_a), 1e-6):
                out.append((tick * tick_s, grid))
        return out

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The controller's loop runs inside the block and is cancelled after it."""
        task = asyncio.create_task(self.ctl.run())
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def fake_site(
    clock: Clock,
    chargers: dict[str, FakeCharger],
    fuse_a: float,
    base_a: Phases,
    *,
    flex_timeout_s: float = 1e9,
    **config: Any,
) -> FakeSite:
    """``chargers`` (ids in order) below a ``fuse_a`` main with ``base_a`` of building load;
    ``config``: further :class:`ControllerConfig` fields."""
    meter = FakeMeter(clock, list(chargers.values()), base_a=base_a)
    flex = FlexManagement(clock, fuse_a=fuse_a, timeout_s=flex_timeout_s)
    cfg = ControllerConfig(
        circuits=[CircuitSpec("main", None, fuse_a)],
        chargers=[ChargerSpec(id=cid) for cid in chargers],
        **config,
    )
    ctl = Controller(clock=clock, config=cfg, meter=meter, chargers=chargers, flex=flex)
    return FakeSite(clock, chargers, meter, flex, ctl)
