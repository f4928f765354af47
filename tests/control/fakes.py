"""Tiny in-memory meter and chargers for control-loop tests (virtual time, no sockets)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from fuseguard.control.ports import DeviceConnectionError, DeviceResponseError
from fuseguard.model.clock import Clock
from fuseguard.model.phases import ZERO, Phases, Rotation
from fuseguard.model.samples import ChargerSample, MeterSample
from fuseguard.model.status import CpState, OcppState


@dataclass
class FakeCharger:
    """A charger with a car that draws min(limit, car max) on its phases at once."""

    rotation: Rotation = Rotation.L1L2L3
    car_phases: int = 3
    car_max_a: float = 32.0
    plugged: bool = True
    limit_a: int = 0
    offline: bool = False
    stuck_a: float | None = None  # stuck contactor: draws this whatever the limit
    writes: list[int] = field(default_factory=list)
    full: bool = False
    hang: bool = False  # answers nothing at all: reads never return

    async def _maybe_hang(self) -> None:
        if self.hang:
            await asyncio.get_running_loop().create_future()

    def draw_local(self) -> Phases:
        if not self.plugged:
            return ZERO
        amps = (
            self.stuck_a
            if self.stuck_a is not None
            else (0.0 if self.full else min(self.limit_a, self.car_max_a))
        )
        return Phases.of([amps if i < self.car_phases else 0.0 for i in range(3)])

    def draw_grid(self) -> Phases:
        return self.rotation.to_grid(self.draw_local())

    async def read(self) -> ChargerSample:
        await self._maybe_hang()
        if self.offline:
            raise DeviceConnectionError("connection refused")
        local = self.draw_local()
        if not self.plugged:
            cp, ocpp = CpState.A, OcppState.AVAILABLE
        elif local.max > 0:
            cp, ocpp = CpState.C, OcppState.CHARGING
        else:
            cp, ocpp = (
                CpState.B,
                OcppState.SUSPENDEDEVSE if self.limit_a == 0 else OcppState.SUSPENDEDEV,
            )
        return ChargerSample(
            cp_state=cp,
            ocpp_state=ocpp,
            current_a=local,
            power_w=local.total * 230.0,
            signalled_current_a=float(self.limit_a),
            limit_a=float(self.limit_a),
        )

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
