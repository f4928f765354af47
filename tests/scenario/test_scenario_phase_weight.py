"""``[control] single_phase_weight`` reaches the allocator through the config (round 14).

A one-phase car on grid L2 and a three-phase car share L2 (30 A free on it, 50 A on L1 and L3):
plain per-phase max-min splits L2 15/15 A; with weight 2 the one-phase car gets twice the
three-phase car's current, 20/10 A. The other phases keep their room, the fuse holds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from helpers_scenario import tiny

from fuseguard.scenario.runner import simulate


def _site(weight: float) -> Any:
    car = {"arrive_s": 0, "depart_s": 900, "energy_wh": 100000, "max_a": 32}
    return tiny(
        fuse_a=60,
        base=(10, 30, 10),
        duration_s=900,
        chargers=[
            {"id": "three", "max_a": 32, "rotation": "L1L2L3"},
            {"id": "one", "max_a": 32, "rotation": "L2L3L1"},
        ],
        cars=[{**car, "charger": "three", "phases": 3}, {**car, "charger": "one", "phases": 1}],
        control={"single_phase_weight": weight},
    )


@pytest.mark.parametrize(("weight", "three_a", "one_a"), [(1.0, 15.0, 15.0), (2.0, 10.0, 20.0)])
def test_the_weight_splits_the_shared_phase(weight: float, three_a: float, one_a: float) -> None:
    result = simulate(_site(weight), compute_optimum=False)
    assert result.report["overload_as"]["total"] == 0.0
    tl = result.timeline
    assert tl is not None
    k = int(np.searchsorted(tl.t_s[: tl.n], 600.0))  # both cars long settled, not yet gone
    for arr in (tl.setpoint_a, tl.charger_a):  # offered and drawn
        at = {cid: float(arr[k, j]) for j, cid in enumerate(tl.charger_ids)}
        assert at == {"three": pytest.approx(three_a), "one": pytest.approx(one_a)}
    assert float(tl.grid_a[k, 1]) == pytest.approx(60.0)  # L2 at its fuse, not above
