"""Allocation engine: safe, max-min fair, integer setpoints per plug (pure functions).

Public API: :func:`allocate`, the data types, :class:`AllocationSession` (hysteresis timers kept
between calls) and the JSON edge in :mod:`fuseguard.allocation.snapshot`.
"""

from fuseguard.allocation.engine import allocate
from fuseguard.allocation.session import AllocationSession
from fuseguard.allocation.types import (
    Allocation,
    AllocationParams,
    Circuit,
    Plug,
    Snapshot,
    SnapshotError,
)

__all__ = [
    "Allocation",
    "AllocationParams",
    "AllocationSession",
    "Circuit",
    "Plug",
    "Snapshot",
    "SnapshotError",
    "allocate",
]
