"""The allocator bridge: PlugDemand records in, a Snapshot out, targets in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from fuseguard.control.allocator import AllocatorSession
from fuseguard.control.types import ChargerSpec, PlugDemand
from fuseguard.model.circuits import CircuitSpec
from fuseguard.model.phases import Phase, Phases
from fuseguard.model.status import ChargeMode

from .doubles import config

SPECS = [
    ChargerSpec(id="cp1", circuit="garage", priority=2, mode=ChargeMode.PV, min_a=8),
    ChargerSpec(id="cp2"),
]
CFG = config(
    SPECS,
    circuits=[CircuitSpec("main", None, 40.0), CircuitSpec("garage", "main", 25.0, 11_000.0)],
)


def test_demands_become_plugs_with_their_spec() -> None:
    bridge = AllocatorSession(CFG)
    cest = timezone(timedelta(hours=2))
    until = datetime(2026, 6, 1, 14, 30, tzinfo=cest)
    demands = [
        PlugDemand(
            SPECS[0], True, (Phase.L2,), 20, ChargeMode.PV, 2, target_a=10, target_until=until
        ),
        # mode and priority in force this cycle: a runtime override of the spec's
        PlugDemand(SPECS[1], False, (Phase.L1, Phase.L2, Phase.L3), 32, ChargeMode.MINPV, 5),
    ]
    snap = bridge.build_snapshot(
        limits={"main": Phases.uniform(35), "garage": Phases.uniform(25)},
        non_ev={"main": Phases(5, 6, 7), "garage": Phases(1, 0, 0)},
        demands=demands,
        pv_surplus_w=1234.0,
    )
    assert [c.id for c in snap.circuits] == ["main", "garage"]
    assert snap.circuits[0].limit_a == Phases.uniform(35)
    assert snap.circuits[1].power_limit_w == 11_000.0
    assert snap.circuits[1].non_ev_load_a == Phases(1, 0, 0)
    p1, p2 = snap.plugs
    assert (p1.id, p1.circuit, p1.phases, p1.max_a, p1.min_a) == (
        "cp1",
        "garage",
        (Phase.L2,),
        20,
        8,
    )
    assert (p1.priority, p1.mode, p1.target_a, p1.available) == (2, ChargeMode.PV, 10, True)
    # the target's end is passed as the same instant, in UTC
    assert p1.target_until == until and p1.target_until.tzinfo is UTC
    assert p1.target_until.hour == 12
    assert (p2.available, p2.target_a, p2.target_until) == (False, None, None)
    assert (p2.mode, p2.priority) == (ChargeMode.MINPV, 5)
    assert snap.pv_surplus_w == 1234.0
    assert snap.params.min_run_s == CFG.min_run_s


def test_the_session_keeps_its_last_input() -> None:
    bridge = AllocatorSession(CFG)
    assert bridge.last_snapshot is None
    snap = bridge.build_snapshot(
        limits={"main": Phases.uniform(40), "garage": Phases.uniform(25)},
        non_ev={"main": Phases(), "garage": Phases()},
        demands=[
            PlugDemand(SPECS[1], True, (Phase.L1, Phase.L2, Phase.L3), 32, ChargeMode.FAST, 0)
        ],
        pv_surplus_w=0.0,
    )
    result = bridge.step(0.0, snap)
    assert result.setpoints == {"cp2": 32}
    assert bridge.last_snapshot is not None
    assert bridge.last_snapshot.plugs[0].id == "cp2"
