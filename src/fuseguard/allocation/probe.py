"""Phase probe: learn a waiting car's phases when only the all-phases assumption keeps it out.

Until a car has drawn current, nobody knows which phases it loads (a charger reports its phases
in use only while the car draws), so the controller reserves a new car on all wired phases
(``Plug.phases_known`` False). On a site where one phase is nearly full (a heat pump on L1),
such a car waits behind a runner inside its minimum run time although, as the common
1-phase car on its charger's L1, it would fit beside everybody (issue 18,
``scenarios/unbalanced_base_load.toml``: two 1-phase cars waited 35 and 25 min at 0 A next to
25 A free on their own phases).

The probe, decided by :class:`~fuseguard.allocation.session.AllocationSession`:

* **When.** A waiting plug with unknown phases (outside its minimum pause, wanting current) that
  the allocation leaves at 0, and that the same snapshot would admit with at least its minimum
  if it loaded only its first grid phase, without pausing any running plug (the trial,
  :func:`would_fit_single_phase`; checked at most every ``RECHECK_S`` per plug).
* **How.** For a few cycles the allocation runs on :func:`probe_snapshot`: the probed plug counts
  as a runner inside its minimum run time (admitted first at its level: reserved on all its wired
  phases, so the probe is exactly as safe as any start), the other runners sharing a phase with
  it may be paused although inside their minimum run time, and the other waiting plugs wait.
* **End.** As soon as the probed car's phases are known (it drew current), it leaves the queue
  or it stops wanting current, and at the latest after ``TIMEOUT_S``. The runners the probe
  paused owe no minimum pause (their pause was a probe, not a turn change): they compete again
  at once and, if the car is 1-phase on another phase, resume beside it. Each probe costs them
  one pause/resume; a car whose phases are known is never probed again while plugged in.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from typing import Final

from fuseguard.allocation.engine import allocate
from fuseguard.allocation.types import Allocation, Plug, Snapshot

#: the longest a probe lasts (s): a car that has not drawn by then is left to the idle policy
TIMEOUT_S: Final = 30.0
#: a waiting plug is tried at most this often (s)
RECHECK_S: Final = 60.0


def is_candidate(p: Plug, setpoint_a: int, min_pause_s: float) -> bool:
    """A waiting plug of unknown phases outside its minimum pause that wants current."""
    return (
        not p.phases_known
        and len(p.phases) > 1
        and setpoint_a == 0
        and p.setpoint_a == 0
        and p.available
        and p.max_a >= p.min_a
        and (p.target_a is None or p.target_a >= p.min_a)
        and (p.paused_s is None or p.paused_s >= min_pause_s)
    )


def would_fit_single_phase(full: Snapshot, index: int, allocation: Allocation) -> bool:
    """The trial: would ``full`` admit plug ``index`` with its minimum as a 1-phase car on its
    first grid phase, every plug running now still running?"""
    plugs = list(full.plugs)
    p = plugs[index]
    plugs[index] = replace(p, phases=p.phases[:1])
    trial = allocate(replace(full, plugs=tuple(plugs)))
    if trial.setpoints[p.id] < p.min_a:
        return False
    return all(trial.setpoints[q.id] > 0 for q in full.plugs if allocation.setpoints[q.id] > 0)


def probe_snapshot(full: Snapshot, probed: str) -> Snapshot:
    """``full`` as the probe allocates it (see the module doc)."""
    target = next(p for p in full.plugs if p.id == probed)
    phases = set(target.phases)
    min_run, params = full.params.min_run_s, full.params
    plugs: list[Plug] = []
    for p in full.plugs:
        q = p
        if p.id == probed:
            q = replace(p, setpoint_a=p.min_a, running_s=0.0, paused_s=None)
        elif p.setpoint_a > 0:
            if phases.intersection(p.phases) and (p.running_s or 0.0) < min_run:
                q = replace(p, running_s=min_run)
        elif p.paused_s is None or p.paused_s >= params.min_pause_s:
            q = replace(p, paused_s=0.0)  # the others wait while the probe lasts
        plugs.append(q)
    return replace(full, plugs=tuple(plugs))


def paused_by_probe(full: Snapshot, allocation: Allocation, already: Collection[str]) -> set[str]:
    """The runners of ``full`` the probe's ``allocation`` paused (added to ``already``)."""
    out = set(already)
    out.update(p.id for p in full.plugs if p.setpoint_a > 0 and allocation.setpoints[p.id] == 0)
    return out


__all__ = [
    "RECHECK_S",
    "TIMEOUT_S",
    "is_candidate",
    "paused_by_probe",
    "probe_snapshot",
    "would_fit_single_phase",
]
