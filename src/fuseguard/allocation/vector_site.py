"""A snapshot as NumPy arrays for the NumPy path: per-plug fields and (row, plug, coefficient)
entries, sorted by plug. The rows are those of :class:`~fuseguard.allocation.common.RowLayout`.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from fuseguard.allocation.common import M_MINPV, M_PV, MODE_CODE, RowLayout, check_plugs, phase_mask
from fuseguard.allocation.types import AllocationParams, Plug, Snapshot
from fuseguard.allocation.urgency import queue_keys
from fuseguard.model.phases import Phase

if TYPE_CHECKING:  # NumPy is imported where it is used: small sites never load it
    import numpy as np
    from numpy.typing import NDArray

    FloatArr = NDArray[np.float64]
    IntArr = NDArray[np.int64]
    BoolArr = NDArray[np.bool_]


@functools.cache
def _phase_masks() -> tuple[BoolArr, FloatArr]:
    """Per 3-bit phase code: the phase mask and the number of phases (built on first use)."""
    import numpy as np

    mask8 = np.array([[bool(k & 1), bool(k & 2), bool(k & 4)] for k in range(8)], dtype=np.bool_)
    nph8: FloatArr = mask8.sum(axis=1).astype(np.float64)
    return mask8, nph8


_PHASE_BITS: dict[tuple[Phase, ...], int] = {}


def _phase_bits(phases: tuple[Phase, ...]) -> int:
    mask = phase_mask(phases)
    bits = _PHASE_BITS[phases] = mask[0] | mask[1] << 1 | mask[2] << 2
    return bits


def _ancestors(chains: list[list[int]]) -> IntArr:
    """Per circuit its chain to the root (self first), padded with -1."""
    import numpy as np

    depth = max((len(ch) for ch in chains), default=1)
    anc = np.full((len(chains), depth), -1, dtype=np.int64)
    for i, ch in enumerate(chains):
        anc[i, : len(ch)] = ch
    return anc


def _plug_index(plugs: tuple[Plug, ...], index: dict[str, int]) -> tuple[list[int], list[int]]:
    """Each plug's circuit index and 3-bit phase code; raises the first bad plug's error."""
    try:
        circ_list = [index[p.circuit] for p in plugs]
    except KeyError:
        check_plugs(plugs, index)
        raise
    if len({p.id for p in plugs}) != len(plugs):
        check_plugs(plugs, index)
    bits_get = _PHASE_BITS.get
    bit_list = [bits_get(p.phases, -1) for p in plugs]
    if -1 in bit_list:
        if not all(p.phases for p in plugs):
            check_plugs(plugs, index)
        bit_list = [_phase_bits(p.phases) for p in plugs]
    return circ_list, bit_list


_Topology = tuple["FloatArr", "IntArr", "IntArr", "FloatArr"]
#: the set-up of the last site seen (its key: the circuit tree, the power rows and every plug's
#: id, circuit, phases and mode): the number of phases per plug and the (row, plug, coefficient)
#: entries, which only a change of topology changes (read-only arrays, shared by every call)
_topology: tuple[tuple[object, ...], _Topology] | None = None


def _remember(key: tuple[object, ...], arrays: _Topology) -> None:
    global _topology
    for a in arrays:
        a.flags.writeable = False
    _topology = (key, arrays)


class SiteArrays:
    """The snapshot as arrays (also the LP reference's view of the rows, in the tests). The
    entries and the number of phases per plug are built once per topology (``_topology``)."""

    __slots__ = (
        "avail",
        "b",
        "circuit_ids",
        "e_coef",
        "e_plug",
        "e_row",
        "hi",
        "ids",
        "layout",
        "lo",
        "max_a",
        "mode",
        "nph",
        "paused",
        "prio",
        "pv_row",
        "running",
        "running_s",
        "setpoint",
        "share",
        "target",
        "urgent",
    )

    def __init__(self, snap: Snapshot) -> None:
        import numpy as np

        layout = RowLayout.of(snap)
        self.layout = layout
        self.circuit_ids = [c.id for c in snap.circuits]
        self.pv_row = layout.pv_row
        self.b = np.array(layout.b, dtype=np.float64)
        plugs = snap.plugs
        self.ids = [p.id for p in plugs]
        key = (
            tuple([(c.id, c.parent) for c in snap.circuits]),
            tuple(layout.power_row),
            tuple([(p.id, p.circuit, p.phases, p.mode) for p in plugs]),
        )
        cached = _topology
        if cached is not None and cached[0] == key:
            self.nph, self.e_row, self.e_plug, self.e_coef = cached[1]
            self._plug_fields(plugs, snap.params)
            return
        n = len(plugs)
        circ_list, bit_list = _plug_index(plugs, layout.index)
        circ = np.fromiter(circ_list, np.int64, n)
        bits = np.fromiter(bit_list, np.int64, n)
        mask8, nph8 = _phase_masks()
        self.nph = nph8[bits]
        self._plug_fields(plugs, snap.params)
        self._entries(_ancestors(layout.chains)[circ], mask8[bits])
        _remember(key, (self.nph, self.e_row, self.e_plug, self.e_coef))

    def _plug_fields(self, plugs: tuple[Plug, ...], snap_params: AllocationParams) -> None:
        import numpy as np

        n = len(plugs)
        f64 = np.float64
        self.lo = np.fromiter([p.min_a for p in plugs], f64, n)
        self.max_a = np.fromiter([p.max_a for p in plugs], f64, n)
        # None -> NaN: every comparison with a missing target is False
        self.target = np.array([p.target_a for p in plugs], dtype=f64).reshape(n)
        self.hi = np.where(self.target >= 0, np.minimum(self.max_a, self.target), self.max_a)
        levels, share, urgent = queue_keys(plugs, self.nph.tolist(), snap_params)
        self.prio = np.fromiter(levels, np.int64, n)  # priority and urgency (allocation/urgency)
        self.share = np.fromiter(share, f64, n)
        self.urgent = np.fromiter(urgent, np.bool_, n)
        self.mode = np.fromiter([MODE_CODE[p.mode] for p in plugs], np.int64, n)
        self.avail = np.fromiter([p.available for p in plugs], np.bool_, n)
        self.setpoint = np.fromiter([p.setpoint_a for p in plugs], f64, n)
        self.running_s = np.array([p.running_s for p in plugs], dtype=f64).reshape(n)
        self.paused = np.array([p.paused_s for p in plugs], dtype=f64).reshape(n)
        self.running = self.setpoint > 0

    def _entries(self, anc_p: IntArr, mask: BoolArr) -> None:
        """(row, plug, coefficient) of every row each plug loads, sorted by plug: its phases on
        every circuit up to the root, the power rows on that chain, the PV row."""
        import numpy as np

        n, depth = anc_p.shape
        rows3 = anc_p[:, :, None] * 3 + np.arange(3)[None, None, :]
        valid3 = (anc_p >= 0)[:, :, None] & mask[:, None, :]
        plug3 = np.broadcast_to(np.arange(n)[:, None, None], (n, depth, 3))
        e_row = [rows3[valid3]]
        e_plug = [plug3[valid3]]
        e_coef = [np.ones(e_row[0].size)]
        if self.layout.power_rows:
            power_row = np.array(self.layout.power_row, dtype=np.int64)
            pr = np.where(anc_p >= 0, power_row[anc_p], -1)
            vp = pr >= 0
            e_row.append(pr[vp])
            pp = np.broadcast_to(np.arange(n)[:, None], (n, depth))[vp]
            e_plug.append(pp)
            e_coef.append(self.nph[pp])
        pv_group = np.flatnonzero((self.mode == M_PV) | (self.mode == M_MINPV))
        if pv_group.size:
            e_row.append(np.full(pv_group.size, self.pv_row, dtype=np.int64))
            e_plug.append(pv_group)
            e_coef.append(self.nph[pv_group])
        if len(e_row) > 1:
            er = np.concatenate(e_row).astype(np.int64)
            ep = np.concatenate(e_plug).astype(np.int64)
            ec = np.concatenate(e_coef)
            srt = np.argsort(ep, kind="stable")
            er, ep, ec = er[srt], ep[srt], ec[srt]
        else:
            er, ep, ec = e_row[0].astype(np.int64), e_plug[0].astype(np.int64), e_coef[0]
        self.e_row, self.e_plug, self.e_coef = er, ep, ec
