"""The OCPP start-up pause (round 15, `bench/notes/edge.md`), against the whole control loop.

An edge starts beside OCPP charge points whose cars already charge on the stations' own
default profile. The chargers are unreadable for the first half minute (not connected yet); the
grid meter (total power only, the ``worst`` phase assumption, like a CEMM) shows the cars'
draw, which is building load as long as no charger says it is theirs. The meter publishes once
a second and is read twice: every other read repeats a sample. When the chargers become
readable, their MeterValues (taken before the meter's newest sample) explain the draw. The
first decision with them readable must not pause the cars on the split of a sample made while
they were unreadable (docs/safety.md, "One meter sample, one split"): before round 16 it did
whenever that decision came on a repeated sample, and `min_pause_s` then held the cars for
15 minutes.
"""

from __future__ import annotations

import asyncio
import math
from datetime import datetime, timedelta

import pytest

from fuseguard.control.controller import ChargerSpec, CircuitSpec, Controller, ControllerConfig
from fuseguard.control.ports import DeviceConnectionError
from fuseguard.model.clock import VirtualClock
from fuseguard.model.phases import ZERO, Phases
from fuseguard.model.samples import ChargerSample, MeterSample
from fuseguard.model.status import CpState, OcppState

CARS = 4
CAR_A = 6.0  # the cars draw 6 A on three phases (the bench's cars at their station's default)
STATION_DEFAULT_A = 16  # what a station offers until the edge writes a profile
PROFILE_DELAY_S = 1.0
METER_INTERVAL_S = 10.0  # MeterValues
BASE_A = 5.0  # per phase: 15 A on every phase under the `worst` assumption
FUSE_A = 40.0  # room for 4 x 6 A beside 15 A; none with the cars taken for building load
READABLE_AT_S = 30.0


pytestmark = pytest.mark.usefixtures("errors_only_logs")


class StartingStation:
    """An OCPP charge point not connected until ``readable_at``, whose car draws CAR_A while the
    limit in force is at least 6 A (the station's default before the first write), reporting
    its currents with MeterValues every METER_INTERVAL_S."""

    def __init__(self, clock: VirtualClock, readable_at: float) -> None:
        self.clock = clock
        self.readable_at = readable_at
        self.writes: list[tuple[float, int]] = []
        self.rotation = None

    def _limit_at(self, t: float) -> int:
        value = STATION_DEFAULT_A
        for at, amps in self.writes:
            if at + PROFILE_DELAY_S <= t:
                value = amps
        return value

    def draw_at(self, t: float) -> float:
        return CAR_A if self._limit_at(t) >= 6 else 0.0

    async def read(self) -> ChargerSample:
        now = self.clock.monotonic()
        if now < self.readable_at:
            raise DeviceConnectionError("charge point not connected")
        metered_at = math.floor(now / METER_INTERVAL_S) * METER_INTERVAL_S
        amps = self.draw_at(metered_at)
        drawing = self.draw_at(now) > 0.0
        return ChargerSample(
            cp_state=CpState.C if drawing else CpState.B,
            ocpp_state=OcppState.CHARGING if drawing else OcppState.SUSPENDEDEVSE,
            current_a=Phases.uniform(amps),
            power_w=amps * 3 * 230.0,
            measured_age_s=max(1e-3, now - metered_at),
            authorized=True,
        )

    async def set_current_limit(self, current_a: int) -> None:
        now = self.clock.monotonic()
        if now < self.readable_at:
            raise DeviceConnectionError("charge point not connected")
        if not self.writes or self.writes[-1][1] != current_a:
            self.writes.append((now, current_a))


class OncePerSecondMeter:
    """A total-power meter that publishes a new sample once a second (a CEMM telegram); read
    more often, it repeats the last one (``stale``: its timestamp did not advance)."""

    def __init__(self, clock: VirtualClock, stations: list[StartingStation]) -> None:
        self.clock = clock
        self.stations = stations
        self._last: MeterSample | None = None

    def grid_a(self, t: float) -> Phases:
        return Phases.uniform(BASE_A + sum(s.draw_at(t) for s in self.stations))

    async def read(self) -> MeterSample:
        published = math.floor(self.clock.monotonic())
        last = self._last
        if last is not None and last.timestamp == self._wall(published):
            return MeterSample(timestamp=last.timestamp, power_w=last.power_w, stale=True)
        grid = self.grid_a(float(published))
        self._last = MeterSample(timestamp=self._wall(published), power_w=grid.total * 230.0)
        return self._last

    def _wall(self, t: float) -> datetime:
        return self.clock.now() - timedelta(seconds=self.clock.monotonic() - t)


@pytest.mark.parametrize("offset_s", [0.0, 0.1, 0.3, 0.5, 0.6, 0.8, 0.9])
async def test_cars_charging_when_the_edge_starts_are_not_paused_on_an_old_split(
    offset_s: float,
) -> None:
    clock = VirtualClock()
    readable_at = READABLE_AT_S + offset_s
    stations = {f"cp{i + 1}": StartingStation(clock, readable_at) for i in range(CARS)}
    meter = OncePerSecondMeter(clock, list(stations.values()))
    config = ControllerConfig(
        circuits=[CircuitSpec("main", None, FUSE_A)],
        chargers=[
            ChargerSpec(id=cid, limit_delay_s=PROFILE_DELAY_S, reports_late=True, max_a=16)
            for cid in stations
        ],
        meter_period_s=0.5,
        meter_phase_assumption="worst",
    )
    controller = Controller(clock=clock, config=config, meter=meter, chargers=stations)  # type: ignore[arg-type]
    task = asyncio.create_task(controller.run())
    try:
        worst = ZERO
        while clock.monotonic() < readable_at + 60.0:
            await clock.advance(0.25)
            worst = worst.maximum(meter.grid_a(clock.monotonic()))
        for cid, station in stations.items():
            paused = [w for w in station.writes if w[1] < 6]
            assert paused == [], f"{cid} paused at start-up: {station.writes}"
            assert station.draw_at(clock.monotonic()) == CAR_A, cid
        assert worst.all_le(Phases.uniform(FUSE_A), tolerance=1e-6), worst
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
