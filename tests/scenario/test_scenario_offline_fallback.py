"""An unreachable charger's own fallback is reserved (round 9, finding of helper simwd).

A charger that loses fuseguard falls back by itself to its safe current one watchdog timeout
after the last write reached it (a Bender's registers 131/132; an OCPP charge point's safe
profile when the lease of its live limit runs out), whatever its last setpoint was. Reserving
only that setpoint (0 for a paused car) left the fallback's draw to nobody: fuse 20 A, base
10 A, cp1 charging at 10 A, cp2 paused and unreachable from 300 s; at about 341 s cp2 took 6 A
and the grid read 26 A for a tick. Control now reserves max(last setpoint, safe current) on
the plug's wired phases while it is unreachable (``PlugControl.offline_a``), from the first
failed read or write near its watchdog timeout where that comes before the offline timeout.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers_scenario import tiny

from fuseguard.scenario.config import Scenario
from fuseguard.scenario.runner import simulate

SAFE_A = 6
OFFLINE_AT_S = 300.0
OFFLINE_S = 200.0


def _paused_then_offline(driver: str, timeout_s: int = 60) -> Scenario:
    """Two cars from 0 s on 10 A of room: one charges at 10 A, the other waits its turn (its
    setpoint 0); the waiting one's charger is unreachable from 300 s for 200 s."""
    car = {"arrive_s": 0, "depart_s": 900, "energy_wh": 100_000, "max_a": 16}
    return tiny(
        fuse_a=20,
        base=(10, 10, 10),
        duration_s=900,
        chargers=[
            {"id": "cp1", "max_a": 32, "driver": driver},
            {"id": "cp2", "max_a": 32, "driver": driver},
        ],
        cars=[{**car, "charger": "cp1"}, {**car, "charger": "cp2"}],
        events=[
            {
                "at_s": OFFLINE_AT_S,
                "fault": {"device": "cp2", "kind": "offline", "duration_s": OFFLINE_S},
            }
        ],
        site={"charger_safe_current_a": SAFE_A, "charger_safe_timeout_s": timeout_s},
    )


@pytest.mark.parametrize("driver", ["bender", "ocpp"])
@pytest.mark.parametrize("timeout_s", [9, 60])
def test_a_paused_charger_that_falls_back_while_unreachable_overloads_nothing(
    driver: str, timeout_s: int
) -> None:
    """60 s: reserved once the plug is reported offline (10 s after its last vouched read);
    9 s: the watchdog fires before that, so the reserve starts with the first failed write or
    read near its timeout (``PlugControl.may_fall_back``)."""
    result = simulate(_paused_then_offline(driver, timeout_s), compute_optimum=False)
    tl = result.timeline
    assert tl is not None
    t = tl.t_s[: tl.n]
    cp1 = tl.charger_a[: tl.n][:, tl.charger_ids.index("cp1")]
    cp2 = tl.charger_a[: tl.n][:, tl.charger_ids.index("cp2")]
    before = (t > 200.0) & (t < OFFLINE_AT_S)
    assert np.all(cp1[before] == 10.0) and np.all(cp2[before] == 0.0)  # the finding's set-up
    # the fallback happened: cp2 draws its safe current while unreachable
    silent = (t > OFFLINE_AT_S + timeout_s + 1.0) & (t < OFFLINE_AT_S + OFFLINE_S)
    assert np.all(cp2[silent] == SAFE_A)
    # one timeout after the last write reached it (at most a third of it before 300 s)
    first_s = float(t[(t >= OFFLINE_AT_S) & (cp2 > 0.0)][0])
    assert OFFLINE_AT_S + timeout_s * 2 / 3 <= first_s <= OFFLINE_AT_S + timeout_s + 1.0
    # it was reserved before it came: no overload at all (26 A for a tick before the fix)
    assert result.report["overload_as"]["total"] == 0.0
    assert float(tl.grid_a[: tl.n].max()) <= 20.0
