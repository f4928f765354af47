"""The phase probe (issue 18, ``allocation/probe.py``): a waiting car of unknown phases that
would fit as a 1-phase car is probed at once instead of waiting out a runner's minimum run time;
the runner it pauses resumes as soon as the car's phases are known."""

from __future__ import annotations

from dataclasses import replace

from fuseguard.allocation.probe import RECHECK_S, TIMEOUT_S
from fuseguard.allocation.session import AllocationSession
from fuseguard.allocation.types import AllocationParams, Circuit, Plug, Snapshot
from fuseguard.model.phases import Phase, Phases

L1, L2, L3 = Phase.L1, Phase.L2, Phase.L3
PARAMS = AllocationParams(min_run_s=2700.0, min_pause_s=900.0)


def _snap(cp2: Plug, *, non_ev_l1: float = 29.0) -> Snapshot:
    """A 40 A site with a heat pump on L1: cp1 (3-phase) runs, cp2 is plugged in."""
    main = Circuit(
        id="main",
        parent=None,
        limit_a=Phases.uniform(40.0),
        non_ev_load_a=Phases(non_ev_l1, 4.0, 3.0),
    )
    cp1 = Plug(id="cp1", circuit="main", phases=(L1, L2, L3), max_a=16)
    return Snapshot(circuits=(main,), plugs=(cp1, cp2), params=PARAMS)


UNKNOWN = Plug(id="cp2", circuit="main", phases=(L2, L3, L1), max_a=32, phases_known=False)
LEARNED = replace(UNKNOWN, phases=(L2,), phases_known=True)


def _running_cp1(session: AllocationSession) -> None:
    """cp1 alone for 10 min: it takes L1's headroom (11 A) and is inside its minimum run."""
    cp2_absent = replace(UNKNOWN, available=False)
    for t in (0.0, 600.0):
        out = session.step(_snap(cp2_absent), t)
    assert out.setpoints["cp1"] == 11


def test_a_car_that_fits_as_one_phase_is_probed_and_the_runner_resumes() -> None:
    s = AllocationSession()
    _running_cp1(s)
    out = s.step(_snap(UNKNOWN), 601.0)  # cp2 arrives: reserved on L1 too, no room for both
    assert out.setpoints["cp1"] == 0  # the probe: cp1 paused, cp2 runs (on all phases: L1's 11 A)
    assert out.setpoints["cp2"] == 11
    out = s.step(_snap(UNKNOWN), 602.0)  # not drawn yet: the probe holds
    assert out.setpoints == {"cp1": 0, "cp2": 11}
    s.step(_snap(LEARNED), 603.0)  # it drew on L2 only: probe over, cp1 owes no pause
    out = s.step(_snap(LEARNED), 604.0)
    assert out.setpoints["cp1"] == 11  # back on L1's headroom
    assert out.setpoints["cp2"] == 40 - 4 - 11  # L2 beside cp1
    assert "cp1" not in {k for k, v in out.setpoints.items() if v == 0}


def test_without_the_probe_the_car_would_wait_out_the_minimum_run() -> None:
    """The reference: a car whose phases are taken as known (3-phase) waits at 0 A."""
    s = AllocationSession()
    _running_cp1(s)
    three = replace(UNKNOWN, phases_known=True)
    out = s.step(_snap(three), 601.0)
    assert out.setpoints == {"cp1": 11, "cp2": 0}


def test_no_probe_when_even_one_phase_would_not_fit() -> None:
    """L2 is nearly full too (10 A left): a 1-phase car on L2 would not fit beside cp1's 6 A
    either, so nobody is paused."""
    s = AllocationSession()
    _running_cp1(s)
    busy = _snap(UNKNOWN)
    busy = replace(
        busy, circuits=(replace(busy.circuits[0], non_ev_load_a=Phases(29.0, 30.0, 3.0)),)
    )
    out = s.step(busy, 601.0)
    assert out.setpoints == {"cp1": 10, "cp2": 0}  # L2's 10 A
    out = s.step(busy, 601.0 + RECHECK_S / 2)
    assert out.setpoints == {"cp1": 10, "cp2": 0}


def test_a_probe_that_learns_nothing_ends_after_its_timeout() -> None:
    s = AllocationSession()
    _running_cp1(s)
    assert s.step(_snap(UNKNOWN), 601.0).setpoints == {"cp1": 0, "cp2": 11}
    out = s.step(_snap(UNKNOWN), 601.0 + TIMEOUT_S)  # the car never drew: probe over
    # cp2 runs on (it started: a normal runner inside its minimum run, reserved on all phases);
    # cp1 owes no minimum pause and waits only for room
    assert out.setpoints["cp2"] >= 6
    t = s.timers("cp1")
    assert t is not None and t.paused_since_s is not None
    assert 601.0 + TIMEOUT_S - t.paused_since_s >= PARAMS.min_pause_s


def test_known_phases_are_never_probed() -> None:
    s = AllocationSession()
    _running_cp1(s)
    for t in (601.0, 700.0, 800.0):
        out = s.step(_snap(replace(UNKNOWN, phases_known=True)), t)
        assert out.setpoints["cp1"] == 11
