"""The one circuit concept: a node of the site's circuit tree, from config to allocator.

A site has a grid connection (``main``, the root) and sub-circuits below it (distribution boards,
garage feeders), each protected by a fuse per phase and optionally capped in total power. The
config file, the scenario files, the controller and the allocator all use :class:`CircuitSpec`
and :class:`CircuitTree`; per-cycle values (the limit in force, the non-EV load) travel next to
the spec in the allocator's snapshot, never in a second circuit type.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from fuseguard.model.phases import ZERO, Phases

MAIN = "main"


class CircuitTreeError(ValueError):
    """The circuits do not form one tree below ``main``; the message names the circuit."""


@dataclass(frozen=True, slots=True)
class CircuitSpec:
    """A node of the circuit tree. ``fuse_a`` per phase (a number means the same on every phase);
    ``main`` has ``parent=None``.

    ``non_ev_load_a`` is the assumed non-EV load of an unmetered sub-circuit (its own, not its
    children's); ``meter`` names the meter that measures this circuit, if any.
    """

    id: str
    parent: str | None
    fuse_a: Phases | float
    power_limit_w: float | None = None
    non_ev_load_a: Phases = ZERO
    meter: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.fuse_a, Phases):
            object.__setattr__(self, "fuse_a", Phases.uniform(float(self.fuse_a)))
        if not self.fuse.is_finite() or self.fuse.min <= 0:
            msg = f"circuit {self.id!r}: fuse must be finite and > 0 A, got {self.fuse_a}"
            raise CircuitTreeError(msg)
        if self.power_limit_w is not None and not (
            math.isfinite(self.power_limit_w) and self.power_limit_w > 0
        ):
            msg = f"circuit {self.id!r}: power limit must be finite and > 0 W"
            raise CircuitTreeError(msg)
        if not self.non_ev_load_a.is_finite():
            msg = f"circuit {self.id!r}: assumed non-EV load must be finite"
            raise CircuitTreeError(msg)

    @property
    def fuse(self) -> Phases:
        """Fuse rating per phase."""
        fuse = self.fuse_a
        assert isinstance(fuse, Phases)
        return fuse


@dataclass(frozen=True, slots=True)
class CircuitTree:
    """Validated circuits with their paths to the root (``main`` first in ``circuits``)."""

    circuits: tuple[CircuitSpec, ...]
    _by_id: Mapping[str, CircuitSpec] = field(init=False, repr=False, compare=False)
    _paths: Mapping[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_id: dict[str, CircuitSpec] = {}
        for c in self.circuits:
            if c.id in by_id:
                msg = f"circuit {c.id!r} is defined twice"
                raise CircuitTreeError(msg)
            by_id[c.id] = c
        root = by_id.get(MAIN)
        if root is None or root.parent is not None:
            msg = f"the circuit tree needs a root {MAIN!r} without a parent"
            raise CircuitTreeError(msg)
        paths: dict[str, tuple[str, ...]] = {}
        for c in self.circuits:
            path: list[str] = []
            node: str | None = c.id
            while node is not None:
                if node in path:
                    msg = f"circuit {c.id!r} is part of a cycle"
                    raise CircuitTreeError(msg)
                spec = by_id.get(node)
                if spec is None:
                    msg = f"circuit {path[-1]!r}: parent {node!r} is not a circuit"
                    raise CircuitTreeError(msg)
                path.append(node)
                node = spec.parent
            paths[c.id] = tuple(path)
        ordered = (root, *(c for c in self.circuits if c.id != MAIN))
        object.__setattr__(self, "circuits", ordered)
        object.__setattr__(self, "_by_id", by_id)
        object.__setattr__(self, "_paths", paths)

    @classmethod
    def of(cls, circuits: Iterable[CircuitSpec]) -> CircuitTree:
        """Build and validate a tree."""
        return cls(tuple(circuits))

    def __getitem__(self, circuit_id: str) -> CircuitSpec:
        return self._by_id[circuit_id]

    def __contains__(self, circuit_id: object) -> bool:
        return circuit_id in self._by_id

    def __iter__(self) -> Iterator[CircuitSpec]:
        return iter(self.circuits)

    def __len__(self) -> int:
        return len(self.circuits)

    @property
    def ids(self) -> tuple[str, ...]:
        """Circuit ids, ``main`` first."""
        return tuple(c.id for c in self.circuits)

    @property
    def main(self) -> CircuitSpec:
        """The root."""
        return self._by_id[MAIN]

    def path(self, circuit_id: str) -> tuple[str, ...]:
        """``circuit_id`` and its ancestors up to ``main``."""
        return self._paths[circuit_id]

    def ancestors(self, circuit_id: str) -> tuple[str, ...]:
        """The ancestors of ``circuit_id`` (without itself), nearest first."""
        return self._paths[circuit_id][1:]

    def children(self, circuit_id: str) -> tuple[str, ...]:
        """Direct sub-circuits of ``circuit_id``."""
        return tuple(c.id for c in self.circuits if c.parent == circuit_id)

    def in_subtree(self, circuit_id: str, root: str) -> bool:
        """``circuit_id`` is ``root`` or below it."""
        return root in self._paths[circuit_id]


__all__ = ["MAIN", "CircuitSpec", "CircuitTree", "CircuitTreeError"]
