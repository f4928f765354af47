"""The allocator: a snapshot in, a safe, fair, integer setpoint per plug out (pure: no I/O, clock).

Pipeline (see ``docs/allocation.md`` for the worked example):

1. **Constraint rows** (:class:`~fuseguard.allocation.common.RowLayout`). Every (circuit, phase)
   is a row ``sum of setpoints on that phase of every plug below the circuit <= limit - non-EV
   load``; a circuit with a power limit adds a row with coefficient "number of phases" per plug
   (in A, i.e. W / V); the PV surplus is one more row for ``pv``/``minpv`` plugs.
2. **Eligibility and queue.** Plugs that are off, unavailable, paused by target, inside their
   minimum pause or waiting for PV are out. The rest are ordered by level (priority, then the
   urgent sub-levels of least laxity first), then plugs inside their minimum run time, then the
   lowest energy share, then waiting time (the queue, so paused cars take turns by energy
   deficit); the keys come from one pre-step both paths use (:mod:`.urgency`).
3. **Admission (who runs).** Greedy first-fit in queue order: a plug runs if its minimum current
   still fits every row it loads.
4. **Max-min fair filling,** level by level (higher first; lower-level running
   plugs are reserved at their minimum): progressive filling with one water level ``t`` per plug,
   ``x = clamp(t, min, cap)``. Each round computes, for every row, the level at which it would
   saturate (rows are piecewise linear in ``t``, evaluated at the breakpoints), and freezes every
   plug on a row whose level is minimal among the rows it shares plugs with.
5. **Integer amps.** Round down, then hand one more amp (never more than the ceiling of the exact
   value) to the plugs with the largest remainders first, by the same first-fit; a plug holding
   that amp counts ``KEEP_BAND_A`` more (a band, so equal remainders do not swap it each step).

Two implementations of steps 2-5, chosen by size: plain Python lists up to
:data:`SMALL_SITE_PLUGS` plugs (:mod:`.small`; NumPy's fixed per-call cost dominates there) and
NumPy arrays above (:mod:`.vector`). They perform the same floating-point operations in the same
order and return identical answers; ``tests/allocation/test_paths.py`` checks that exhaustively
and ``bench/allocation.py`` measures that the small path earns its keep.
"""

from __future__ import annotations

from typing import Final

from fuseguard.allocation.finite import non_finite_inputs, refused
from fuseguard.allocation.small import allocate_small
from fuseguard.allocation.types import Allocation, Snapshot

#: Up to this many plugs the pure-Python path is faster than the NumPy one (1.4x at 40 plugs,
#: 3.8x at 5; about equal at 100: ``bench/allocation.py``).
SMALL_SITE_PLUGS: Final = 40


def allocate(snapshot: Snapshot) -> Allocation:
    """Setpoints and reasons for every plug of ``snapshot`` (pure, deterministic).

    Small sites take the pure-Python path, larger ones the NumPy path: same algorithm, same
    floating-point operations, so the same answer. A non-finite limit or load anywhere gives
    every plug 0 A (:mod:`fuseguard.allocation.finite`).
    """
    problems = non_finite_inputs(snapshot)
    if problems:
        return refused(snapshot, problems)
    if len(snapshot.plugs) <= SMALL_SITE_PLUGS:
        return allocate_small(snapshot)
    return allocate_numpy(snapshot)


def allocate_numpy(snapshot: Snapshot) -> Allocation:
    """The NumPy path (:func:`fuseguard.allocation.vector.allocate_numpy`), imported on the first
    large site: a site of at most :data:`SMALL_SITE_PLUGS` plugs never loads NumPy (about 12 MB
    of an edge's memory)."""
    from fuseguard.allocation.vector import allocate_numpy as numpy_path

    return numpy_path(snapshot)


__all__ = ["SMALL_SITE_PLUGS", "allocate", "allocate_numpy", "allocate_small"]
