"""Random sites for the allocation tests.

``snapshots``: trees of 1-4 levels, rotations, 1/2/3-phase cars (the property tests).
``wide_snapshots``: every input field, for holding the two allocator paths equal.
``random_site``: seeded random sites with measured-looking floats, cheap in bulk.

Every strategy a draw function uses is built once: a module constant, or a cached factory keyed
by its arguments (site scale, minimum current, timer parameters, circuit ids). Hypothesis
validates each new strategy object when it is first drawn from; built afresh on every draw (as
until round 8) that validation was ~85 % of the path tests' CPU. The strategies are the same
ones, drawn in the same order, so the derandomized examples are the very same.
"""

from __future__ import annotations

import functools
import itertools
import math
import random
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import strategies as st

from fuseguard.allocation import Allocation, AllocationSession, Circuit, Plug, Snapshot, allocate
from fuseguard.allocation.types import AllocationParams
from fuseguard.model.phases import ALL_PHASES, Phases, Rotation
from fuseguard.model.status import ChargeMode

amps = st.integers(min_value=0, max_value=64).map(float)
loads = st.one_of(st.just(0.0), st.floats(min_value=0, max_value=70, allow_nan=False))


@functools.cache
def _one_of_ids(ids: tuple[str, ...]) -> st.SearchStrategy[str]:
    """One of these circuit ids (a parent, a plug's circuit)."""
    return st.sampled_from(list(ids))


_N_CIRCUITS = st.integers(1, 6)
_CIRCUIT_POWER_LIMIT_W = st.one_of(st.none(), st.floats(0, 30000))
_MODES_MOSTLY_FAST = st.sampled_from(
    [ChargeMode.FAST] * 4 + [ChargeMode.PV, ChargeMode.MINPV, ChargeMode.OFF]
)
_ONLY_FAST = st.just(ChargeMode.FAST)
_ROTATIONS = st.sampled_from(list(Rotation))
_MIN_A = st.sampled_from([6, 6, 6, 1, 8])
_RUNNING = st.booleans()
_N_PHASES = st.integers(1, 3)
_MAX_A = st.integers(4, 32)
_PRIORITY = st.integers(0, 2)
_TARGET_A = st.one_of(st.none(), st.none(), st.integers(0, 32))
_MOSTLY_AVAILABLE = st.sampled_from([True, True, True, False])
_RUNNING_S = st.floats(0, 2000)
_PAUSED_S = st.one_of(st.none(), st.floats(0, 2000))
_PV_TIMER_S = st.floats(0, 400)
_SURPLUS_W = st.floats(0, 20000)


@functools.cache
def _n_plugs(low: int, high: int) -> st.SearchStrategy[int]:
    return st.integers(low, high)


@st.composite
def snapshots(draw: st.DrawFn, *, max_plugs: int = 10, modes: bool = True) -> Snapshot:
    n_circ = draw(_N_CIRCUITS)
    circuits = [Circuit("main", None, Phases.of(draw(amps) for _ in range(3)))]
    depth = {"main": 1}
    for i in range(1, n_circ):
        parents = [c.id for c in circuits if depth[c.id] < 4]
        parent = draw(_one_of_ids(tuple(parents)))
        cid = f"c{i}"
        depth[cid] = depth[parent] + 1
        circuits.append(
            Circuit(
                cid,
                parent,
                Phases.of(draw(amps) for _ in range(3)),
                power_limit_w=draw(_CIRCUIT_POWER_LIMIT_W),
            )
        )
    # non-EV load flowing through a circuit includes its sub-circuits' load
    own = {c.id: Phases.of(draw(loads) for _ in range(3)) for c in circuits}
    total = dict(own)
    for c in reversed(circuits):
        if c.parent is not None:
            total[c.parent] = total[c.parent] + total[c.id]
    circuits = [Circuit(c.id, c.parent, c.limit_a, total[c.id], c.power_limit_w) for c in circuits]
    mode_st = _MODES_MOSTLY_FAST if modes else _ONLY_FAST
    n_plugs = draw(_n_plugs(0, max_plugs))
    plug_circuit = _one_of_ids(tuple(c.id for c in circuits))
    plugs = []
    for i in range(n_plugs):
        rot = draw(_ROTATIONS)
        min_a = draw(_MIN_A)
        running = draw(_RUNNING)
        plugs.append(
            Plug(
                id=f"p{i}",
                circuit=draw(plug_circuit),
                phases=rot.grid_phases(draw(_N_PHASES)),
                max_a=draw(_MAX_A),
                min_a=min_a,
                priority=draw(_PRIORITY),
                mode=draw(mode_st),
                target_a=draw(_TARGET_A),
                available=draw(_MOSTLY_AVAILABLE) if modes else True,
                setpoint_a=min_a if running else 0,
                running_s=draw(_RUNNING_S) if running else None,
                paused_s=None if running else draw(_PAUSED_S),
                pv_timer_s=draw(_PV_TIMER_S),
            )
        )
    surplus = draw(_SURPLUS_W)
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


def check_safe(snap: Snapshot, values: dict[str, float], tol: float = 1e-6) -> None:
    """Every circuit's phase limits and power limit hold with the plugs at ``values``."""
    volt = snap.params.voltage_v
    for c in snap.circuits:
        cur, total = usage(snap, values, c.id)
        for ph in range(3):
            if cur[ph] > 0:
                assert c.non_ev_load_a[ph] + cur[ph] <= c.limit_a[ph] + tol, (c.id, ph)
        if c.power_limit_w is not None and total > 0:
            assert (c.non_ev_load_a.total + total) * volt <= c.power_limit_w + 1e-3, c.id


def generic(low: float, high: float) -> st.SearchStrategy[float]:
    """Floats in [low, high] with arbitrary low bits, like measured values (``st.floats`` favours
    simple values, whose arithmetic rarely rounds)."""
    return _generic(float(low), float(high))


@functools.cache
def _generic(low: float, high: float) -> st.SearchStrategy[float]:
    # hypothesis favours small integers: scramble them (multiplicative hashing) so that the
    # values spread over the whole range
    return st.integers(0, 2**40).map(
        lambda k: low + (high - low) * ((k * 0x9E3779B97F4A7C15) % 2**40 / 2**40)
    )


@functools.cache
def _whole_limit_a(scale: float, roomy: bool) -> st.SearchStrategy[int]:
    """Typical breaker sizes scaled to the site, or (unless roomy) any whole amps."""
    typical = st.sampled_from([6, 10, 13, 16, 20, 25, 32, 40, 63]).map(lambda a: round(a * scale))
    return typical if roomy else typical | st.integers(0, max(1, round(64 * scale)))


_FRACTION_A = st.sampled_from([0.0, 0.0, 0.0, 0.5, 0.25, 1 / 3]) | generic(0, 1)


def _limit(draw: st.DrawFn, scale: float, *, roomy: bool = False) -> float:
    """A per-phase limit: whole amps mostly (typical breaker sizes, or any unless roomy),
    fractional sometimes, scaled to the site size."""
    whole = draw(_whole_limit_a(scale, roomy))
    return whole + draw(_FRACTION_A)


_MOSTLY_ABOVE_LOAD = st.sampled_from([True, True, True, True, True, False])


def _limits(draw: st.DrawFn, scale: float, load: Phases, *, roomy: bool) -> Phases:
    """A circuit's limits: mostly its non-EV load plus some room for the cars on each phase,
    sometimes (never on a roomy site) absolute values, often below the load: an overloaded
    circuit."""
    if roomy or draw(_MOSTLY_ABOVE_LOAD):
        return Phases.of(max(0.0, v) + _limit(draw, scale, roomy=roomy) for v in load)
    return Phases.of(_limit(draw, scale) for _ in range(3))


@functools.cache
def _power_limit_kind(roomy: bool) -> st.SearchStrategy[str]:
    kinds = ["none"] * 4 + ["room", "room"] + ([] if roomy else ["absolute", "round"])
    return st.sampled_from(kinds)


@functools.cache
def _absolute_power_limit_w(scale: float) -> st.SearchStrategy[float]:
    return generic(0, 50000 * scale) | st.floats(0, 50000 * scale)


_ROUND_POWER_LIMIT_KW = st.integers(0, 40)


@functools.cache
def _power_room_w(scale: float) -> st.SearchStrategy[float]:
    return generic(0, 15000 * scale)


def _power_limit(draw: st.DrawFn, scale: float, load_a: float, *, roomy: bool) -> float | None:
    """None mostly; else the load's power plus some room (230 V) or (never on a roomy site) an
    absolute limit, tiny ones too."""
    kind = draw(_power_limit_kind(roomy))
    if kind == "absolute":
        return draw(_absolute_power_limit_w(scale))
    if kind == "round":
        return draw(_ROUND_POWER_LIMIT_KW) * 1e3
    if kind == "room":
        return max(0.0, load_a) * 230.0 + draw(_power_room_w(scale))
    return None


@functools.cache
def _load_a(scale: float) -> st.SearchStrategy[float]:
    return st.one_of(
        st.just(0.0),
        generic(0, 20 * scale),
        st.floats(0, 10 * scale, allow_nan=False),
        st.floats(-20, 0, allow_nan=False),
        st.integers(0, 80).map(float),
    )


def _load(draw: st.DrawFn, scale: float) -> float:
    """Non-EV load: none, small, above the limit, or negative (generation behind the circuit)."""
    return draw(_load_a(scale))


_N_WIDE_CIRCUITS = st.integers(1, 7)
_ROOMY = st.booleans()


@st.composite
def _wide_circuits(draw: st.DrawFn, scale: float) -> list[Circuit]:
    n_circ = draw(_N_WIDE_CIRCUITS)
    ids = ["main"] + [f"c{i}" for i in range(1, n_circ)]
    parent: dict[str, str | None] = {"main": None}
    depth = {"main": 1}
    for cid in ids[1:]:
        p = draw(_one_of_ids(tuple(c for c in parent if depth[c] < 5)))
        parent[cid], depth[cid] = p, depth[p] + 1
    roomy = draw(_ROOMY)  # a site where the cars mostly fit: the filling has work to do
    own = {cid: Phases.of(_load(draw, scale) for _ in range(3)) for cid in ids}
    total = dict(own)
    for cid in reversed(ids):  # a parent is drawn before its children
        up = parent[cid]
        if up is not None:
            total[up] = total[up] + total[cid]
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


_wide_circuits_at = functools.cache(_wide_circuits)

_WIDE_MIN_A = st.sampled_from([6, 6, 6, 1, 8, 10, 16])
_PLUG_STATE = st.sampled_from(["fresh", "running", "running", "paused", "paused"])
_UNTIL = st.datetimes(
    datetime(2026, 1, 1), datetime(2026, 12, 31), timezones=st.sampled_from(_ZONES)
)
_MAYBE_UNTIL = st.one_of(st.none(), _UNTIL)
_PHASE_SET = st.sampled_from(_PHASE_SETS)
_WIDE_PRIORITY = st.sampled_from([0, 0, 0, 1, 2, -1])
_WIDE_MODE = st.sampled_from(_MODES)
_WIDE_AVAILABLE = st.sampled_from([True, True, True, True, True, False])
_SETPOINT_A = st.integers(1, 40)
_SHARE_A = st.one_of(st.none(), st.floats(0, 32), st.sampled_from([0.0, 6.0, -1.0, math.nan]))
_NEED_WH = st.one_of(st.none(), st.floats(-10, 60000), st.just(0.0))
_DEPARTURE_S = st.one_of(st.none(), st.floats(-100, 40000), st.just(math.inf))
_PLAN_RANK = st.one_of(st.none(), st.integers(0, 3))
_CAR_LIMIT_A = st.one_of(
    st.none(), st.floats(0, 40), st.sampled_from([13.0, 16.0, 3.0, -1.0, math.nan, math.inf])
)
_SEEN_MAX_A = st.one_of(
    st.none(), st.floats(0, 40), st.sampled_from([25.0, 16.0, 40.0, -1.0, math.nan, math.inf])
)


@functools.cache
def _wide_target_a(min_a: int) -> st.SearchStrategy[int | None]:
    return st.sampled_from([None, None, None, None, 0, min_a]) | st.integers(0, 40).filter(bool)


@functools.cache
def _wide_max_a(min_a: int) -> st.SearchStrategy[int]:
    return st.sampled_from([16, 16, 32, 20, 10, min_a]) | st.integers(0, 40)


@functools.cache
def _timer_strategies(
    min_run_s: float, min_pause_s: float, pv_enable_delay_s: float
) -> tuple[st.SearchStrategy[float], st.SearchStrategy[float | None], st.SearchStrategy[float]]:
    """Running time, pause time and PV timer, on and off the parameters' edges."""
    edge_s = st.sampled_from([0.0, min_run_s, min_pause_s, pv_enable_delay_s, 2000.0])
    secs = st.one_of(st.floats(0, 2000), edge_s)
    return secs, st.one_of(st.none(), secs), st.one_of(st.just(0.0), st.floats(0, 400), edge_s)


@st.composite
def _wide_plug(
    draw: st.DrawFn, pid: str, circuit: st.SearchStrategy[str], params: AllocationParams
) -> Plug:
    min_a = draw(_WIDE_MIN_A)
    state = draw(_PLUG_STATE)
    secs, paused_s, pv_timer_s = _timer_strategies(
        params.min_run_s, params.min_pause_s, params.pv_enable_delay_s
    )
    # most plugs can run (a free target, a maximum above the minimum); the rest cover every
    # reason a plug cannot
    target = draw(_wide_target_a(min_a))
    return Plug(
        id=pid,
        circuit=draw(circuit),
        phases=draw(_PHASE_SET),
        max_a=draw(_wide_max_a(min_a)),
        min_a=min_a,
        priority=draw(_WIDE_PRIORITY),
        mode=draw(_WIDE_MODE),
        target_a=target,
        target_until=None if target is None else draw(_MAYBE_UNTIL),
        available=draw(_WIDE_AVAILABLE),
        setpoint_a=draw(_SETPOINT_A) if state == "running" else 0,
        running_s=draw(secs) if state == "running" else None,
        paused_s=draw(paused_s) if state == "paused" else None,
        pv_timer_s=draw(pv_timer_s),
        share_a=draw(_SHARE_A),
        need_wh=draw(_NEED_WH),
        departure_s=draw(_DEPARTURE_S),
        plan_rank=draw(_PLAN_RANK),
        car_limit_a=draw(_CAR_LIMIT_A),
        seen_max_a=draw(_SEEN_MAX_A),
    )


@functools.cache
def _site_scale(n_plugs: int) -> st.SearchStrategy[float]:
    return st.sampled_from([1.0, max(1.0, n_plugs / 4), max(1.0, n_plugs / 2)])


_VOLTAGE_V = st.sampled_from([230.0, 230.0, 240.0, 120.0])
_MIN_RUN_S = st.sampled_from([600.0, 0.0, 60.0])
_MIN_PAUSE_S = st.sampled_from([300.0, 0.0])
_PV_THRESHOLD_W = st.sampled_from([0.0, 0.0, 500.0, -300.0])
_PV_ENABLE_DELAY_S = st.sampled_from([60.0, 0.0])
_PV_DISABLE_DELAY_S = st.sampled_from([180.0, 0.0])
_URGENT_LAXITY_S = st.sampled_from([10800.0, 0.0, 3600.0])
_URGENT_RESERVE = st.sampled_from([1.0, 0.0, 1.5, 100.0])


@functools.cache
def _wide_surplus_w(scale: float) -> st.SearchStrategy[float]:
    return st.one_of(
        st.just(0.0),
        st.floats(0, 30000 * scale),
        generic(0, 30000 * scale),
        generic(1000, 8000),  # about what one or two cars' minimum needs
        st.floats(-5000, 0),
        st.integers(0, 40).map(lambda k: k * 690.0),
    )


@st.composite
def wide_snapshots(draw: st.DrawFn, *, min_plugs: int = 0, max_plugs: int = 14) -> Snapshot:
    """Any valid snapshot: trees up to 5 levels in any list order, power limits anywhere (main
    too), fractional and site-scaled limits, loads above limits and negative, every phase set in
    any order, priorities, all modes, targets (with and without an end, in several time zones),
    unavailable plugs, running/paused/fresh state on and off the timer edges, PV surplus (also
    negative) and non-default parameters."""
    n_plugs = draw(_n_plugs(min_plugs, max_plugs))
    scale = draw(_site_scale(n_plugs))
    params = AllocationParams(
        voltage_v=draw(_VOLTAGE_V),
        min_run_s=draw(_MIN_RUN_S),
        min_pause_s=draw(_MIN_PAUSE_S),
        pv_enable_threshold_w=draw(_PV_THRESHOLD_W),
        pv_disable_threshold_w=draw(_PV_THRESHOLD_W),
        pv_enable_delay_s=draw(_PV_ENABLE_DELAY_S),
        pv_disable_delay_s=draw(_PV_DISABLE_DELAY_S),
        urgent_laxity_s=draw(_URGENT_LAXITY_S),
        urgent_reserve=draw(_URGENT_RESERVE),
    )
    circuits = draw(_wide_circuits_at(scale))
    circuit = _one_of_ids(tuple(c.id for c in circuits))
    plugs = tuple(draw(_wide_plug(f"p{i}", circuit, params)) for i in range(n_plugs))
    surplus = draw(_wide_surplus_w(scale))
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


def check_as_fresh(session: AllocationSession, answer: Allocation) -> None:
    """``answer`` (the session's last step) is what the pure allocator gives its input afresh."""
    used = session.last_input
    assert used is not None
    fresh = allocate(used)
    assert answer.setpoints == fresh.setpoints
    assert answer.reasons == fresh.reasons
    assert answer.exact_a == fresh.exact_a
    assert answer.pv_pending == fresh.pv_pending
