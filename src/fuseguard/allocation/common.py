"""What both allocator paths share: outcome codes, the circuit tree, the constraint rows, the PV
condition, row names and the reasons.

The NumPy path (:mod:`fuseguard.allocation.vector`) and the pure-Python path for small sites
(:mod:`fuseguard.allocation.small`) compute the same numbers. What is not a per-plug array
operation lives here once (the row layout, the PV start/stop condition, everything that turns
numbers into words), so the two cannot drift apart in it; the rest is kept equal by
``tests/allocation/test_paths.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC
from typing import Final

from fuseguard.allocation.types import AllocationParams, Circuit, Plug, Snapshot, SnapshotError
from fuseguard.allocation.urgency import urgency_note
from fuseguard.model.phases import Phase
from fuseguard.model.status import ChargeMode

EPS: Final = 1e-9

#: The rounding band (A): a plug that holds the amp above its floor (its setpoint in force is
#: ``floor(exact) + 1``) keeps its place among the candidates for one more amp as if its
#: remainder were this much larger. Largest remainder alone let a plug lose the amp to another
#: with an equal remainder on the last bits of the exact values, or on an input's noise, and
#: win it back on the next decision (issue 18 round 18: cp2/cp6 against cp4 in the office,
#: 1 A every 2-14 s for two hours; ``bench/notes/r18-flap.md``). The amp now moves only when
#: another plug's remainder is larger by more than the band: a band, not a 2-cycle. Safety is
#: untouched (the amp is given only where it fits, as before).
KEEP_BAND_A: Final = 0.25

# Per-plug outcome codes.
RUN: Final = 0
OFF: Final = 1
UNAVAILABLE: Final = 2
TARGET_ZERO: Final = 3
TARGET_LOW: Final = 4
MAX_BELOW_MIN: Final = 5
MIN_PAUSE: Final = 6
PV_WAIT: Final = 7
PV_SHORT: Final = 8
REJECTED: Final = 9

MODE_CODE: Final = {ChargeMode.FAST: 0, ChargeMode.PV: 1, ChargeMode.MINPV: 2, ChargeMode.OFF: 3}
M_PV: Final = 1
M_MINPV: Final = 2
M_OFF: Final = 3


def circuit_chains(circuits: tuple[Circuit, ...]) -> tuple[dict[str, int], list[list[int]]]:
    """Circuit index by id, and per circuit its chain of indices up to the root (self first)."""
    if not circuits:
        raise SnapshotError("$.circuits", "at least one circuit is needed")
    index: dict[str, int] = {}
    for i, c in enumerate(circuits):
        if c.id in index:
            raise SnapshotError(f"$.circuits[{i}].id", f"circuit {c.id!r} is listed twice")
        index[c.id] = i
    chains: list[list[int]] = []
    for i, c in enumerate(circuits):
        chain = [i]
        parent = c.parent
        while parent is not None:
            j = index.get(parent)
            if j is None:
                raise SnapshotError(f"$.circuits[{i}].parent", f"unknown circuit {parent!r}")
            if j in chain:
                raise SnapshotError(f"$.circuits[{i}].parent", "circuits form a cycle")
            chain.append(j)
            parent = circuits[j].parent
        chains.append(chain)
    return index, chains


@dataclass(slots=True)
class RowLayout:
    """The constraint rows of a snapshot: ``3 * circuit + phase`` for every (circuit, phase),
    then one row per circuit with a power limit (in circuit order), then the PV row.

    ``b`` is each row's capacity in A (limit - non-EV load; power rows: P / V - total load; PV:
    surplus / V, never negative). ``power_row`` gives each circuit's power row (-1: none);
    ``power_rows`` maps a power row to (circuit index, limit in W). Read only (not frozen: this
    is built on every allocation and a frozen dataclass is slower to build).
    """

    index: dict[str, int]
    chains: list[list[int]]
    b: list[float]
    power_row: list[int]
    power_rows: dict[int, tuple[int, float]] = field(default_factory=dict)
    pv_row: int = 0

    @classmethod
    def of(cls, snapshot: Snapshot) -> RowLayout:
        """The layout of ``snapshot`` (raises :class:`SnapshotError` for a bad tree)."""
        circuits = snapshot.circuits
        index, chains = circuit_chains(circuits)
        volt = snapshot.params.voltage_v
        b: list[float] = []
        for c in circuits:
            b.extend(lim - load for lim, load in zip(c.limit_a, c.non_ev_load_a, strict=True))
        power_row = [-1] * len(circuits)
        power_rows: dict[int, tuple[int, float]] = {}
        for ci, c in enumerate(circuits):
            if c.power_limit_w is not None:
                power_row[ci] = len(b)
                power_rows[len(b)] = (ci, c.power_limit_w)
                b.append(c.power_limit_w / volt - c.non_ev_load_a.total)
        pv_row = len(b)
        b.append(max(snapshot.pv_surplus_w, 0.0) / volt)
        return cls(index, chains, b, power_row, power_rows, pv_row)

    def names(self, circuits: tuple[Circuit, ...]) -> RowNames:
        """Plain-words names of these rows."""
        return RowNames([c.id for c in circuits], self.power_rows, self.pv_row)


def check_plugs(plugs: tuple[Plug, ...], index: dict[str, int]) -> None:
    """Raise the :class:`SnapshotError` of the first bad plug (unknown circuit, duplicate id,
    no phase), in this order of checks."""
    for i, p in enumerate(plugs):
        if p.circuit not in index:
            raise SnapshotError(f"$.plugs[{i}].circuit", f"unknown circuit {p.circuit!r}")
    seen: set[str] = set()
    for i, p in enumerate(plugs):
        if p.id in seen:
            raise SnapshotError(f"$.plugs[{i}].id", f"plug {p.id!r} is listed twice")
        seen.add(p.id)
    for i, p in enumerate(plugs):
        if not p.phases:
            raise SnapshotError(f"$.plugs[{i}].phases", "a plug needs at least one phase")


_MASKS: dict[tuple[Phase, ...], tuple[bool, bool, bool]] = {}


def phase_mask(phases: tuple[Phase, ...]) -> tuple[bool, bool, bool]:
    """Which of L1, L2, L3 the plug loads (cached per phase tuple)."""
    mask = _MASKS.get(phases)
    if mask is None:
        mask = _MASKS[phases] = (Phase.L1 in phases, Phase.L2 in phases, Phase.L3 in phases)
    return mask


@dataclass(slots=True)
class PvVerdict:
    """The PV condition's answer: new outcome codes (PV_SHORT, PV_WAIT) by plug, plugs that keep
    their minimum while their disable delay runs, plugs whose timer the session advances."""

    codes: dict[int, int] = field(default_factory=dict)
    stopping: set[int] = field(default_factory=set)
    pending: set[int] = field(default_factory=set)


def pv_condition(
    queue: list[int],
    *,
    need_w: list[float],
    minpv: list[bool],
    running: list[bool],
    timer_s: list[float],
    surplus_w: float,
    params: AllocationParams,
) -> PvVerdict:
    """Who of the eligible ``pv``/``minpv`` plugs (``queue``, in queue order) may run on the
    surplus: each takes its minimum power (``need_w``) from what is left, in queue order.

    ``minpv`` plugs always take theirs. A running ``pv`` plug keeps running while the rest covers
    its minimum (+ disable threshold), else for ``pv_disable_delay_s`` ("stopping"); a paused one
    starts once the rest has covered its minimum (+ enable threshold) for ``pv_enable_delay_s``.
    The other lists are parallel to ``queue``.
    """
    out = PvVerdict()
    left_w = max(surplus_w, 0.0)
    for k, i in enumerate(queue):
        need = need_w[k]
        if minpv[k]:
            left_w -= need
        elif running[k]:
            if left_w + params.pv_disable_threshold_w >= need:
                left_w -= need
            elif timer_s[k] < params.pv_disable_delay_s:
                left_w -= need
                out.stopping.add(i)
                out.pending.add(i)
            else:
                out.codes[i] = PV_SHORT
                out.pending.add(i)
        elif left_w >= need + params.pv_enable_threshold_w:
            left_w -= need
            if timer_s[k] < params.pv_enable_delay_s:
                out.codes[i] = PV_WAIT
                out.pending.add(i)
        else:
            out.codes[i] = PV_SHORT
    return out


class RowNames:
    """Plain-words names of constraint rows (cached: many plugs share a bottleneck)."""

    __slots__ = ("_cache", "circuit_ids", "power_rows", "pv_row")

    def __init__(
        self, circuit_ids: list[str], power_rows: dict[int, tuple[int, float]], pv_row: int
    ) -> None:
        self.circuit_ids = circuit_ids
        self.power_rows = power_rows
        self.pv_row = pv_row
        self._cache: dict[int, str] = {}

    def __call__(self, row: int) -> str:
        name = self._cache.get(row)
        if name is None:
            name = self._cache[row] = self._name(row)
        return name

    def _name(self, row: int) -> str:
        if row == self.pv_row:
            return "the pv surplus"
        if row in self.power_rows:
            ci, limit_w = self.power_rows[row]
            return f"the {limit_w / 1000:.1f} kW power limit of circuit {self.circuit_ids[ci]}"
        return f"circuit {self.circuit_ids[row // 3]} on L{row % 3 + 1}"


def fmt_s(seconds: float) -> str:
    return f"{max(0, math.ceil(seconds))} s"


def surplus_kw(pv_surplus_w: float) -> str:
    return f"{max(pv_surplus_w, 0.0) / 1000:.1f} kW"


def _until(p: Plug) -> str:
    if p.target_until is None:
        return ""
    return f" until {p.target_until.astimezone(UTC):%H:%M} UTC"


def running_reason(
    p: Plug,
    *,
    sp: int,
    x: float,
    row: int,
    names: RowNames,
    kw: str,
    stopping: bool,
    params: AllocationParams,
) -> str:
    """Why a running plug gets ``sp`` A (``row``: the row that froze it, -1: its own cap)."""
    out = _running_reason(p, sp=sp, x=x, row=row, names=names, kw=kw)
    if p.departure_s is not None:
        mask = phase_mask(p.phases)
        out += urgency_note(p, float(mask[0] + mask[1] + mask[2]), params)
    if stopping:
        left = params.pv_disable_delay_s - p.pv_timer_s
        out += f"; pv: surplus below {p.min_a} A, stopping in {fmt_s(left)}"
    return out


def _running_reason(p: Plug, *, sp: int, x: float, row: int, names: RowNames, kw: str) -> str:
    cap = p.max_a if p.target_a is None or p.target_a < 0 else min(p.max_a, p.target_a)
    if row < 0 or sp >= cap:  # at its cap (also when rounding raised it there)
        if p.target_a is not None and p.target_a < p.max_a and sp >= p.target_a:
            return f"target {p.target_a} A{_until(p)}"
        if sp >= p.max_a:
            return f"at maximum {p.max_a} A"
        return f"{sp} A (exact {x:.2f} A)"
    if row == names.pv_row:
        if p.mode is ChargeMode.MINPV:
            return f"minpv: minimum {p.min_a} A plus {kw} pv surplus shared"
        return f"pv: {kw} surplus"
    return f"limited by {names(row)}"


def paused_reason(
    p: Plug,
    *,
    c: int,
    params: AllocationParams,
    names: RowNames,
    kw: str,
    waiting_s: float,
    fail_row: int,
) -> str:
    """Why a plug gets 0 A (``c``: its outcome code, ``fail_row``: where its minimum misses)."""
    if c == OFF:
        return "off"
    if c == UNAVAILABLE:
        return "not available: no car ready to charge"
    if c == TARGET_ZERO:
        return f"paused by target 0 A{_until(p)}"
    if c == TARGET_LOW:
        return f"paused: target {p.target_a} A{_until(p)} is below the minimum {p.min_a} A"
    if c == MAX_BELOW_MIN:
        return f"paused: maximum {p.max_a} A is below the minimum {p.min_a} A"
    if c == MIN_PAUSE:
        left = params.min_pause_s - (p.paused_s or 0.0)
        return f"paused: minimum pause, may restart in {fmt_s(left)}"
    if c == PV_WAIT:
        left = params.pv_enable_delay_s - p.pv_timer_s
        return f"pv: {kw} surplus covers {p.min_a} A, starting in {fmt_s(left)}"
    if c == PV_SHORT:
        need_kw = f"{len(p.phases) * p.min_a * params.voltage_v / 1000:.1f} kW"
        return f"pv: waiting for surplus ({kw}, {p.min_a} A needs {need_kw})"
    # rejected: name the tightest row the minimum does not fit
    wait = f", waiting {fmt_s(waiting_s)}" if waiting_s > 0 else ""
    return f"paused: less than {p.min_a} A available on {names(fail_row)}{wait}"
