"""``scenarios/ocpp_simultaneous_start.toml``: eight OCPP cars released together after a pause.

The in-process OCPP charge points report as real ones do (``scenario/ocpp_adapter.py``): the
state 2 s late (StatusNotification), currents only with MeterValues (every 10 s, or when the
driver asks with TriggerMessage). The grid meter sees the cars start first: this is the start-up
race of round 9, and the scenario shows it when the controller's start window is taken away.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import fuseguard.control.plug
from fuseguard.scenario.config import load_scenario
from fuseguard.scenario.recorder import Timeline
from fuseguard.scenario.runner import SimulationResult, simulate

RELEASE_S = 301.0  # the building load drops
END_S = 1790.0  # the cars leave at 1800 s


def _run() -> SimulationResult:
    sc = load_scenario(Path("scenarios") / "ocpp_simultaneous_start.toml")
    assert len(sc.chargers) == 8
    assert all(ch.driver == "ocpp" and ch.meter_interval_s == 10 for ch in sc.chargers)
    assert all(ch.status_delay_s == 2.0 and ch.triggers for ch in sc.chargers)
    return simulate(sc, "fuseguard", compute_optimum=False)


def _paused_s(timeline: Timeline) -> list[float]:
    """Seconds each car drew less than 6 A between the release and the departures."""
    t = timeline.t_s[: timeline.n]
    amps = timeline.charger_a[: timeline.n]
    window = (t >= RELEASE_S) & (t < END_S)
    return [float(((amps[:, k] < 6.0) & window).sum()) for k in range(amps.shape[1])]


def test_cars_released_together_charge_within_seconds_and_keep_the_fuse() -> None:
    result = _run()
    report = result.report
    assert report["overload_as"]["total"] == 0.0
    assert report["max_cycles_per_car_hour"] == 0.0
    timeline = result.timeline
    assert timeline is not None
    t = timeline.t_s[: timeline.n]
    amps = timeline.charger_a[: timeline.n]
    assert amps[t < RELEASE_S].max() <= 6.0  # no room before (one car at its minimum at most)
    started = []
    for k in range(amps.shape[1]):
        drawing = np.nonzero((t >= RELEASE_S) & (amps[:, k] >= 6.0))[0]
        assert drawing.size, f"car {k} never charged"
        started.append(float(t[drawing[0]] - RELEASE_S))
        # and keeps charging until the cars leave (1800 s): not paused again
        assert amps[drawing[0] :, k][t[drawing[0] :] < END_S].min() >= 6.0
    assert max(started) <= 15.0, started
    assert max(_paused_s(timeline)) <= 15.0


def test_without_the_start_window_the_race_pauses_the_cars(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The scenario shows what it claims: with the start window taken out of control (no
    start counted before it is reported), the meter's rise is taken for building load and the
    cars are paused for minutes (min_pause_s), as on the code before round 9."""
    monkeypatch.setattr(fuseguard.control.plug, "start_offer_a", lambda **_: None)
    result = _run()
    timeline = result.timeline
    assert timeline is not None
    paused = _paused_s(timeline)
    assert max(paused) >= 300.0, paused
    assert sum(result.report["pause_resume_cycles"].values()) >= 1
    assert result.report["overload_as"]["total"] == 0.0  # the race costs charging, not the fuse
