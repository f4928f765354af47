"""A reserve never pauses a runner inside its minimum run time (``allocation/reserve.py``,
``admit_prefix(..., locked=...)``), on both allocator paths alike."""

from __future__ import annotations

import pytest

from fuseguard.allocation import AllocationParams, Circuit, Plug, Snapshot
from fuseguard.allocation.reserve import admit_prefix
from fuseguard.allocation.small import allocate_small
from fuseguard.allocation.vector import allocate_numpy
from fuseguard.model.phases import ALL_PHASES, Phases

_PARAMS = AllocationParams(min_run_s=600.0)


def _site(runner_s: float | None, runner_a: int = 6) -> Snapshot:
    """18 A per phase; ``urgent`` (3-phase, 16 A) needs 1.9 h at its cap and leaves in 2 h (its
    reserve is its cap), ``runner`` has run ``runner_s`` at 6 A (None: not started)."""
    urgent = Plug(
        id="urgent",
        circuit="main",
        phases=ALL_PHASES,
        max_a=16,
        need_wh=16 * 3 * 230.0 * 1.9,  # 1.9 h at its 16 A cap
        departure_s=2 * 3600.0,  # laxity 6 min: urgent, its reserve is its cap
    )
    runner = Plug(
        id="runner",
        circuit="main",
        phases=ALL_PHASES,
        max_a=16,
        setpoint_a=runner_a if runner_s is not None else 0,
        running_s=runner_s,
        share_a=10.0,
    )
    main = Circuit(id="main", parent=None, limit_a=Phases(18.0, 18.0, 18.0))
    return Snapshot(circuits=(main,), plugs=(urgent, runner), params=_PARAMS)


def _both(snap: Snapshot) -> dict[str, int]:
    py, vec = allocate_small(snap), allocate_numpy(snap)
    assert py == vec  # setpoints, reasons and exact values bit for bit
    return py.setpoints


@pytest.mark.parametrize("runner_s", [0.0, 10.0, 599.0])
def test_locked_runner_keeps_its_minimum(runner_s: float) -> None:
    """Inside its minimum run: the urgent car's reserve shrinks to what the runner's 6 A leave
    (12 A), the runner keeps running."""
    assert _both(_site(runner_s)) == {"urgent": 12, "runner": 6}


@pytest.mark.parametrize("runner_s", [600.0, 5000.0])
def test_runner_past_its_minimum_run_gives_way(runner_s: float) -> None:
    """Past its minimum run the reserve takes the room as before: the runner is paused."""
    assert _both(_site(runner_s)) == {"urgent": 16, "runner": 0}


def test_fresh_plug_gives_way() -> None:
    """A plug not running yet is not locked: the urgent car takes its cap."""
    assert _both(_site(None)) == {"urgent": 16, "runner": 0}


def test_admit_prefix_holds_locked_minimums_after_the_prefix() -> None:
    """The pure pass: plug 0 (reserve 16) before the locked plug 1 (minimum 6, after the prefix)
    on one 18 A row: 12 A for plug 0; without ``locked`` 16 A; ``resid`` lowered by what was
    admitted, the locked plug's minimum not yet (first-fit admits it next)."""
    kw = {
        "lo": [6.0, 6.0],
        "reserve": [16.0, 6.0],
        "rows": [[0], [0]],
        "coefs": [[1.0], [1.0]],
    }
    resid = [18.0]
    adm, got, k = admit_prefix([0, 1], resid=resid, locked=[1], **kw)  # type: ignore[arg-type]
    assert (adm, got, k, resid) == ([0], {0: 12.0}, 1, [6.0])
    resid = [18.0]
    adm, got, k = admit_prefix([0, 1], resid=resid, **kw)  # type: ignore[arg-type]
    assert (adm, got, k, resid) == ([0], {0: 16.0}, 1, [2.0])


def test_locked_plug_inside_the_prefix_is_released_when_decided() -> None:
    """A locked plug before the reserve's plug in the queue is decided first: its minimum is
    admitted, not held twice (the reserve gets the rest: 18 - 6 = 12)."""
    resid = [18.0]
    adm, got, _ = admit_prefix(
        [1, 0],
        lo=[6.0, 6.0],
        reserve=[16.0, 6.0],
        rows=[[0], [0]],
        coefs=[[1.0], [1.0]],
        resid=resid,
        locked=[1],
    )
    assert (adm, got, resid) == ([1, 0], {0: 12.0}, [0.0])
