"""Per-phase values and wiring rotation.

A three-phase grid connection has phases L1, L2 and L3. Every per-phase quantity in fuseguard
(currents, limits, loads) is a :class:`Phases` value, never three loose floats.

A charger's terminals are wired to the grid with a *rotation*: a charger wired ``L2L3L1`` has its
own L1 terminal on grid phase L2, its L2 on grid L3 and its L3 on grid L1. Installers rotate the
wiring so that single-phase cars do not all load grid L1. A car that charges on one phase uses the
charger's L1 terminal, a two-phase car L1 and L2.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Self

from fuseguard.model.fastinit import fast_init


class Phase(StrEnum):
    """One phase of a three-phase system."""

    L1 = "L1"
    L2 = "L2"
    L3 = "L3"

    @property
    def index(self) -> int:  # type: ignore[override]
        """0, 1 or 2."""
        return _PHASE_INDEX[self]


_PHASE_INDEX = {Phase.L1: 0, Phase.L2: 1, Phase.L3: 2}
ALL_PHASES: tuple[Phase, Phase, Phase] = (Phase.L1, Phase.L2, Phase.L3)


@fast_init
@dataclass(frozen=True, slots=True)
class Phases:
    """A value per phase (A, W, V, ...), with element-wise arithmetic."""

    l1: float = 0.0
    l2: float = 0.0
    l3: float = 0.0

    @classmethod
    def of(cls, values: Iterable[float]) -> Self:
        """Build from exactly three numbers."""
        items = [float(v) for v in values]
        if len(items) != 3:
            msg = f"expected 3 per-phase values, got {len(items)}"
            raise ValueError(msg)
        return cls(items[0], items[1], items[2])

    @classmethod
    def uniform(cls, value: float) -> Self:
        """The same value on all three phases."""
        return cls(value, value, value)

    @classmethod
    def on(cls, phases: Iterable[Phase], value: float) -> Self:
        """``value`` on the given phases, 0 elsewhere."""
        vals = [0.0, 0.0, 0.0]
        for p in phases:
            vals[p.index] = value
        return cls(vals[0], vals[1], vals[2])

    def __getitem__(self, phase: Phase | int) -> float:
        idx = phase.index if isinstance(phase, Phase) else phase
        return (self.l1, self.l2, self.l3)[idx]

    def __iter__(self) -> Iterator[float]:
        return iter((self.l1, self.l2, self.l3))

    def as_tuple(self) -> tuple[float, float, float]:
        """The three values as a tuple."""
        return (self.l1, self.l2, self.l3)

    def as_list(self) -> list[float]:
        """The three values as a list (JSON-friendly)."""
        return [self.l1, self.l2, self.l3]

    def map(self, fn: Callable[[float], float]) -> Phases:
        """Apply ``fn`` to every phase."""
        return Phases(fn(self.l1), fn(self.l2), fn(self.l3))

    def zip_with(self, other: Phases, fn: Callable[[float, float], float]) -> Phases:
        """Combine with another value phase by phase."""
        return Phases(fn(self.l1, other.l1), fn(self.l2, other.l2), fn(self.l3, other.l3))

    def __add__(self, other: Phases | float) -> Phases:
        if isinstance(other, Phases):
            return Phases(self.l1 + other.l1, self.l2 + other.l2, self.l3 + other.l3)
        return Phases(self.l1 + other, self.l2 + other, self.l3 + other)

    __radd__ = __add__

    def __sub__(self, other: Phases | float) -> Phases:
        if isinstance(other, Phases):
            return Phases(self.l1 - other.l1, self.l2 - other.l2, self.l3 - other.l3)
        return Phases(self.l1 - other, self.l2 - other, self.l3 - other)

    def __mul__(self, factor: float) -> Phases:
        return Phases(self.l1 * factor, self.l2 * factor, self.l3 * factor)

    __rmul__ = __mul__

    def __truediv__(self, divisor: float) -> Phases:
        return Phases(self.l1 / divisor, self.l2 / divisor, self.l3 / divisor)

    def __neg__(self) -> Phases:
        return Phases(-self.l1, -self.l2, -self.l3)

    def minimum(self, other: Phases | float) -> Phases:
        """Element-wise minimum (``min(self.lN, other.lN)``, or with the number ``other``)."""
        if isinstance(other, Phases):
            return Phases(min(self.l1, other.l1), min(self.l2, other.l2), min(self.l3, other.l3))
        return Phases(min(self.l1, other), min(self.l2, other), min(self.l3, other))

    def maximum(self, other: Phases | float) -> Phases:
        """Element-wise maximum (``max(self.lN, other.lN)``, or with the number ``other``)."""
        if isinstance(other, Phases):
            return Phases(max(self.l1, other.l1), max(self.l2, other.l2), max(self.l3, other.l3))
        return Phases(max(self.l1, other), max(self.l2, other), max(self.l3, other))

    def clamp(self, low: float, high: float) -> Phases:
        """Clamp every phase into [low, high]."""
        return self.map(lambda v: min(max(v, low), high))

    @property
    def total(self) -> float:
        """Sum over the three phases."""
        return self.l1 + self.l2 + self.l3

    @property
    def max(self) -> float:
        """Largest phase value."""
        return max(self.l1, self.l2, self.l3)

    @property
    def min(self) -> float:
        """Smallest phase value."""
        return min(self.l1, self.l2, self.l3)

    def is_finite(self) -> bool:
        """True when no phase is NaN or infinite."""
        return all(math.isfinite(v) for v in self)

    def all_le(self, other: Phases, tolerance: float = 1e-9) -> bool:
        """True when every phase is <= the other's (within ``tolerance``)."""
        return all(a <= b + tolerance for a, b in zip(self, other, strict=True))

    def rounded(self, ndigits: int = 2) -> Phases:
        """Rounded copy, for display and wire formats."""
        return self.map(lambda v: round(v, ndigits))


ZERO = Phases()


class Rotation(StrEnum):
    """How a charger's L1/L2/L3 terminals are wired to grid phases (phase rotation).

    The name lists the grid phase of the charger's L1, L2 and L3 terminal in that order.
    """

    L1L2L3 = "L1L2L3"
    L2L3L1 = "L2L3L1"
    L3L1L2 = "L3L1L2"

    @property
    def grid_order(self) -> tuple[Phase, Phase, Phase]:
        """Grid phase of the charger's terminal L1, L2, L3."""
        return _ROTATIONS[self]

    def grid_phases(self, phase_count: int = 3) -> tuple[Phase, ...]:
        """Grid phases a car drawing on ``phase_count`` phases loads (1, 2 or 3)."""
        if phase_count not in (1, 2, 3):
            msg = f"phase_count must be 1, 2 or 3, got {phase_count}"
            raise ValueError(msg)
        return self.grid_order[:phase_count]

    def to_grid(self, local: Phases) -> Phases:
        """Map per-terminal values (charger L1..L3) onto grid phases."""
        v = (local.l1, local.l2, local.l3)
        a, b, c = _TERMINAL_OF_GRID[self]
        return Phases(v[a], v[b], v[c])

    def to_local(self, grid: Phases) -> Phases:
        """Map grid-phase values onto the charger's terminals (inverse of :meth:`to_grid`)."""
        v = (grid.l1, grid.l2, grid.l3)
        a, b, c = (p.index for p in self.grid_order)
        return Phases(v[a], v[b], v[c])


_ROTATIONS: dict[Rotation, tuple[Phase, Phase, Phase]] = {
    Rotation.L1L2L3: (Phase.L1, Phase.L2, Phase.L3),
    Rotation.L2L3L1: (Phase.L2, Phase.L3, Phase.L1),
    Rotation.L3L1L2: (Phase.L3, Phase.L1, Phase.L2),
}


#: for each rotation: which charger terminal feeds grid L1, L2 and L3
_TERMINAL_OF_GRID: dict[Rotation, tuple[int, int, int]] = {
    rot: (order.index(Phase.L1), order.index(Phase.L2), order.index(Phase.L3))
    for rot, order in _ROTATIONS.items()
}


def phases_from_names(names: Sequence[str]) -> tuple[Phase, ...]:
    """Parse ``["L1", "L3"]`` into phases, rejecting unknown or repeated names."""
    result: list[Phase] = []
    for name in names:
        phase = Phase(name)
        if phase in result:
            msg = f"phase {name} listed twice"
            raise ValueError(msg)
        result.append(phase)
    return tuple(result)
