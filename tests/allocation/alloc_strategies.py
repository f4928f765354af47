"""Random sites for the allocation tests.

``snapshots``: trees of 1-4 levels, rotations, 1/2/3-phase cars (the property tests).
``wide_snapshots``: every input field, for holding the two allocator paths equal.
``random_site``: seeded random sites with measured-looking floats, cheap in bulk.
"""

from __future__ import annotations

import itertools
import math
import random
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import strategies as st

from fuseguard.allocation import Circuit, Plug, Snapshot
from fuseguard.allocation.types import AllocationParams
from fuseguard.model.phases import ALL_PHASES, Phases, Rotation
from fuseguard.model.status import ChargeMode

amps = st.integers(min_value=0, max_value=64).map(float)
loads = st.one_of(st.just(0.0), st.floats(min_value=0, max_value=70, allow_nan=False))


@st.composite
def snapshots(draw: st.DrawFn, *, max_plugs: int = 10, modes: bool = True) -> Snapshot:
    n_circ = draw(st.integers(1, 6))
    circuits = [Circuit("main", None, Phases.of(draw(amps) for _ in range(3)))]
    depth = {"main": 1}
    for i in range(1, n_circ):
        parents = [c.id for c in circuits if depth[c.id] < 4]
        parent = draw(st.sampled_from(parents))
        cid = f"c{i}"
        depth[cid] = depth[parent] + 1
        circuits.append(
            Circuit(
                cid,
                parent,
                Phases.of(draw(amps) for _ in range(3)),
                power_limit_w=draw(st.one_of(st.none(), st.floats(0, 30000))),
            )
        )
    # non-EV load flowing through a circuit includes its sub-circuits' load
    own = {c.id: Phases.of(draw(loads) for _ in range(3)) for c in circuits}
    total = dict(own)
    for c in reversed(circuits):
        if c.parent is not None:
            total[c.parent] = total[c.parent] + total[c.id]
    circuits = [Circuit(c.id, c.parent, c.limit_a, total[c.id], c.power_limit_w) for c in circuits]
    mode_st = (
        st.sampled_from([ChargeMode.FAST] * 4 + [ChargeMode.PV, ChargeMode.MINPV, ChargeMode.OFF])
        if modes
        else st.just(ChargeMode.FAST)
    )
    n_plugs = draw(st.integers(0, max_plugs))
    plugs = []
    for i in range(n_plugs):
        rot = draw(st.sampled_from(list(Rotation)))
        min_a = draw(st.sampled_from([6, 6, 6, 1, 8]))
        running = draw(st.booleans())
        plugs.append(
            Plug(
                id=f"p{i}",
                circuit=draw(st.sampled_from([c.id for c in circuits])),
                phases=rot.grid_phases(draw(st.integers(1, 3))),
                max_a=draw(st.integers(4, 32)),
                min_a=min_a,
                priority=draw(st.integers(0, 2)),
                mode=draw(mode_st),
                target_a=draw(st.one_of(st.none(), st.none(), st.integers(0, 32))),
                available=draw(st.sampled_from([True, True, True, False])) if modes else True,
                setpoint_a=min_a if running else 0,
                running_s=draw(st.floats(0, 2000)) if running else None,
                paused_s=None if running else draw(st.one_of(st.none(), st.floats(0, 2000))),
                pv_timer_s=draw(st.floats(0, 400)),
            )
        )
    surplus = draw(st.floats(0, 20000))
    return Snapshot(tuple(circuits), tuple(plugs), pv_surplus_w=surplus, params=AllocationParams())


def subtree(snap: Snapshot, root: str) -> set[str]:
    """Ids of ``root`` and every circuit below it."""
    parent = {c.id: c.parent for c in snap.circuits}
    out = set()
    for cid in parent:
        node: str | None = cid
        while node is not None:
            if node == root:
                out.add(cid)
                break
            node = parent[node]
    return out


def usage(snap: Snapshot, values: dict[str, float], root: str) -> tuple[Phases, float]:
    """Per-phase current and phase-amp total of the plugs below ``root``."""
    below = subtree(snap, root)
    cur = [0.0, 0.0, 0.0]
    for p in snap.plugs:
        if p.circuit in below:
            for ph in p.phases:
                cur[ph.index] += values[p.id]
    return Phases.of(cur), math.fsum(cur)


# --- every input field, for the path-equivalence tests ----------------------------------------

_PHASE_SETS = [
    perm
    for k in (1, 2, 3)
    for combo in itertools.combinations(ALL_PHASES, k)
    for perm in itertools.permutations(combo)
]
_MODES = [
    ChargeMode.FAST,
    ChargeMode.FAST,
    ChargeMode.PV,
    ChargeMode.PV,
    ChargeMode.MINPV,
    ChargeMode.OFF,
]
_ZONES = [UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-5, minutes=-30))]


def _limit(draw: st.DrawFn, scale: float, *, roomy: bool = False) -> float:
    """A per-phase limit: whole amps mostly (typical breaker sizes, or any unless roomy),
    fractional sometimes, scaled to the site size."""
    typical = st.sampled_from([6, 10, 13, 16, 20, 25, 32, 40, 63]).map(lambda a: round(a * scale))
    whole = draw(typical if roomy else typical | st.integers(0, max(1, round(64 * scale))))
    return whole + draw(st.sampled_from([0.0, 0.0, 0.0, 0.5, 0.25, 1 / 3]) | generic(0, 1))


def generic(low: float, high: float) -> st.SearchStrategy[float]:
    """Floats in [low, high] with arbitrary low bits, like measured values (``st.floats`` favours
    simple values, whose arithmetic rarely rounds)."""
    # hypothesis favours small integers: scramble them (multiplicative hashing) so that the
    # values spread over the whole range
    return st.integers(0, 2**40).map(
        lambda k: low + (high - low) * ((k * 0x9E3779B97F4A7C15) % 2**40 / 2**40)
    )


def _limits(draw: st.DrawFn, scale: float, load: Phases, *, roomy: bool) -> Phases:
    """A circuit's limits: mostly its non-EV load plus some room for the cars on each phase,
    sometimes (never on a roomy site) absolute values, often below the load: an overloaded
    circuit."""
    if roomy or draw(st.sampled_from([True, True, True, True, True, False])):
        return Phases.of(max(0.0, v) + _limit(draw, scale, roomy=roomy) for v in load)
    return Phases.of(_limit(draw, scale) for _ in range(3))


def _power_limit(draw: st.DrawFn, scale: float, load_a: float, *, roomy: bool) -> float | None:
    """None mostly; else the load's power plus some room (230 V) or (never on a roomy site) an
    absolute limit, tiny ones too."""
    kinds = ["none"] * 4 + ["room", "room"] + ([] if roomy else ["absolute", "round"])
    kind = draw(st.sampled_from(kinds))
    if kind == "absolute":
        return draw(generic(0, 50000 * scale) | st.floats(0, 50000 * scale))
    if kind == "round":
        return draw(st.integers(0, 40)) * 1e3
    if kind == "room":
        return max(0.0, load_a) * 230.0 + draw(generic(0, 15000 * scale))
    return None


def _load(draw: st.DrawFn, scale: float) -> float:
    """Non-EV load: none, small, above the limit, or negative (generation behind the circuit)."""
    return draw(
        st.one_of(
            st.just(0.0),
            generic(0, 20 * scale),
            st.floats(0, 10 * scale, allow_nan=False),
            st.floats(-20, 0, allow_nan=False),
            st.integers(0, 80).map(float),
        )
    )


@st.composite
def _wide_circuits(draw: st.DrawFn, scale: float) -> list[Circuit]:
    n_circ = draw(st.integers(1, 7))
    ids = ["main"] + [f"c{i}" for i in range(1, n_circ)]
    parent: dict[str, str | None] = {"main": None}
    depth = {"main": 1}
    for cid in ids[1:]:
        p = draw(st.sampled_from([c for c in parent if depth[c] < 5]))
        parent[cid], depth[cid] = p, depth[p] + 1
    roomy = draw(st.booleans())  # a site where the cars mostly fit: the filling has work to do
    own = {cid: Phases.of(_load(draw, scale) for _ in range(3)) for cid in ids}
    total = dict(own)
    for cid in reversed(ids):  # a parent is drawn before its children
        p = parent[cid]
        if p is not None:
            total[p] = total[p] + total[cid]
    out = [
        Circuit(
            cid,
            parent[cid],
            _limits(draw, scale, total[cid], roomy=roomy),
            total[cid],
            _power_limit(draw, scale, total[cid].total, roomy=roomy),
        )
        for cid in ids
    ]
    # the order of the circuit list must not matter to the tree
    return draw(st.permutations(out))


@st.composite
def _wide_plug(draw: st.DrawFn, pid: str, circuits: list[str], params: AllocationParams) -> Plug:
    min_a = draw(st.sampled_from([6, 6, 6, 1, 8, 10, 16]))
    state = draw(st.sampled_from(["fresh", "running", "running", "paused", "paused"]))
    edge_s = st.sampled_from(
        [0.0, params.min_run_s, params.min_pause_s, params.pv_enable_delay_s, 2000.0]
    )
    secs = st.one_of(st.floats(0, 2000), edge_s)
    # most plugs can run (a free target, a maximum above the minimum); the rest cover every
    # reason a plug cannot
    target = draw(
        st.sampled_from([None, None, None, None, 0, min_a]) | st.integers(0, 40).filter(bool)
    )
    until = st.datetimes(
        datetime(2026, 1, 1), datetime(2026, 12, 31), timezones=st.sampled_from(_ZONES)
    )
    return Plug(
        id=pid,
        circuit=draw(st.sampled_from(circuits)),
        phases=draw(st.sampled_from(_PHASE_SETS)),
        max_a=draw(st.sampled_from([16, 16, 32, 20, 10, min_a]) | st.integers(0, 40)),
        min_a=min_a,
        priority=draw(st.sampled_from([0, 0, 0, 1, 2, -1])),
        mode=draw(st.sampled_from(_MODES)),
        target_a=target,
        target_until=None if target is None else draw(st.one_of(st.none(), until)),
        available=draw(st.sampled_from([True, True, True, True, True, False])),
        setpoint_a=draw(st.integers(1, 40)) if state == "running" else 0,
        running_s=draw(secs) if state == "running" else None,
        paused_s=draw(st.one_of(st.none(), secs)) if state == "paused" else None,
        pv_timer_s=draw(st.one_of(st.just(0.0), st.floats(0, 400), edge_s)),
        share_a=draw(
            st.one_of(st.none(), st.floats(0, 32), st.sampled_from([0.0, 6.0, -1.0, math.nan]))
        ),
        need_wh=draw(st.one_of(st.none(), st.floats(-10, 60000), st.just(0.0))),
        departure_s=draw(st.one_of(st.none(), st.floats(-100, 40000), st.just(math.inf))),
        plan_rank=draw(st.one_of(st.none(), st.integers(0, 3))),
    )


@st.composite
def wide_snapshots(draw: st.DrawFn, *, min_plugs: int = 0, max_plugs: int = 14) -> Snapshot:
    """Any valid snapshot: trees up to 5 levels in any list order, power limits anywhere (main
    too), fractional and site-scaled limits, loads above limits and negative, every phase set in
    any order, priorities, all modes, targets (with and without an end, in several time zones),
    unavailable plugs, running/paused/fresh state on and off the timer edges, PV surplus (also
    negative) and non-default parameters."""
    n_plugs = draw(st.integers(min_plugs, max_plugs))
    scale = draw(st.sampled_from([1.0, max(1.0, n_plugs / 4), max(1.0, n_plugs / 2)]))
    params = AllocationParams(
        voltage_v=draw(st.sampled_from([230.0, 230.0, 240.0, 120.0])),
        min_run_s=draw(st.sampled_from([600.0, 0.0, 60.0])),
        min_pause_s=draw(st.sampled_from([300.0, 0.0])),
        pv_enable_threshold_w=draw(st.sampled_from([0.0, 0.0, 500.0, -300.0])),
        pv_disable_threshold_w=draw(st.sampled_from([0.0, 0.0, 500.0, -300.0])),
        pv_enable_delay_s=draw(st.sampled_from([60.0, 0.0])),
        pv_disable_delay_s=draw(st.sampled_from([180.0, 0.0])),
        urgent_laxity_s=draw(st.sampled_from([10800.0, 0.0, 3600.0])),
    )
    circuits = draw(_wide_circuits(scale))
    ids = [c.id for c in circuits]
    plugs = tuple(draw(_wide_plug(f"p{i}", ids, params)) for i in range(n_plugs))
    surplus = draw(
        st.one_of(
            st.just(0.0),
            st.floats(0, 30000 * scale),
            generic(0, 30000 * scale),
            generic(1000, 8000),  # about what one or two cars' minimum needs
            st.floats(-5000, 0),
            st.integers(0, 40).map(lambda k: k * 690.0),
        )
    )
    return Snapshot(tuple(circuits), plugs, pv_surplus_w=surplus, params=params)


# --- seeded random sites with measured-looking values (no hypothesis: cheap in bulk) --------


def random_site(rng: random.Random, n_plugs: int) -> Snapshot:
    """A random site as a meter would show it: loads and surplus with arbitrary low bits, trees of
    1-5 levels, power limits, every plug field; limits scaled so that some plugs run, some are
    limited and some are paused."""
    n_circ = rng.randint(1, 7)
    parent: dict[str, str | None] = {"main": None}
    for i in range(1, n_circ):
        parent[f"c{i}"] = rng.choice(list(parent))
    scale = max(1.0, n_plugs / rng.choice((2, 4, 8)))
    own = {
        cid: Phases.of(rng.choice((0.0, rng.uniform(0, 15 * scale))) for _ in range(3))
        for cid in parent
    }
    total = dict(own)
    for cid in reversed(list(parent)):
        p = parent[cid]
        if p is not None:
            total[p] = total[p] + total[cid]
    circuits = [
        Circuit(
            cid,
            parent[cid],
            Phases.of(total[cid][ph] + rng.uniform(-5, 40 * scale) for ph in range(3)),
            total[cid],
            rng.choice((None, None, rng.uniform(2000, 30000 * scale))),
        )
        for cid in parent
    ]
    rng.shuffle(circuits)
    params = AllocationParams(voltage_v=rng.choice((230.0, 240.0, 120.0)))
    plugs = []
    for i in range(n_plugs):
        state = rng.choice(("fresh", "running", "paused"))
        target = rng.choice((None, None, None, 0, rng.randint(1, 32)))
        plugs.append(
            Plug(
                id=f"p{i}",
                circuit=rng.choice(list(parent)),
                phases=rng.choice(_PHASE_SETS),
                max_a=rng.choice((16, 16, 32, 20, 10, 4)),
                min_a=rng.choice((6, 6, 6, 1, 8)),
                priority=rng.choice((0, 0, 0, 1, 2)),
                mode=rng.choice(_MODES),
                target_a=target,
                available=rng.random() < 0.85,
                setpoint_a=rng.randint(6, 32) if state == "running" else 0,
                running_s=rng.uniform(0, 1500) if state == "running" else None,
                paused_s=rng.choice((None, rng.uniform(0, 1500))) if state == "paused" else None,
                pv_timer_s=rng.choice((0.0, rng.uniform(0, 400))),
                share_a=rng.choice((None, rng.uniform(0, 32))),
                need_wh=rng.choice((None, rng.uniform(0, 50000))),
                departure_s=rng.choice((None, rng.uniform(0, 30000))),
                plan_rank=rng.choice((None, None, rng.randint(0, 3))),
            )
        )
    surplus = rng.choice((0.0, rng.uniform(0, 25000 * scale), rng.uniform(-3000, 0)))
    return Snapshot(tuple(circuits), tuple(plugs), pv_surplus_w=surplus, params=params)
