"""``scenarios/ocpp_simultaneous_start.toml``: eight OCPP cars released together after a pause."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fuseguard.scenario.config import load_scenario
from fuseguard.scenario.runner import simulate

RELEASE_S = 301.0  # the building load drops


def test_cars_released_together_charge_within_seconds_and_keep_the_fuse() -> None:
    sc = load_scenario(Path("scenarios") / "ocpp_simultaneous_start.toml")
    assert len(sc.chargers) == 8
    assert all(ch.driver == "ocpp" and ch.meter_interval_s == 10 for ch in sc.chargers)
    result = simulate(sc, "fuseguard", compute_optimum=False)
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
        assert amps[drawing[0] :, k][t[drawing[0] :] < 1790.0].min() >= 6.0
    assert max(started) <= 15.0, started
