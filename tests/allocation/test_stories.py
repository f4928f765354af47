"""Installer stories: small sites an installer would recognise, with the reasons they would see."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import typer
from typer.testing import CliRunner

from fuseguard.allocation import AllocationSession, Circuit, Plug, Snapshot, allocate
from fuseguard.allocation.small import allocate_small
from fuseguard.allocation.snapshot import snapshot_from_json, snapshot_to_json
from fuseguard.allocation.vector import allocate_numpy
from fuseguard.cli.allocate import register
from fuseguard.model.phases import ALL_PHASES, Phase, Phases, Rotation
from fuseguard.model.status import ChargeMode

EXAMPLE = Path(__file__).parents[2] / "examples" / "snapshot.json"


def _site(main_a: float, load: Phases, *plugs: Plug, garage_a: float = 32) -> Snapshot:
    return Snapshot(
        circuits=(
            Circuit("main", None, Phases.uniform(main_a), load),
            Circuit("garage", "main", Phases.uniform(garage_a)),
        ),
        plugs=plugs,
    )


def test_one_car_in_the_issue_example_gets_its_maximum() -> None:
    alloc = allocate(snapshot_from_json(EXAMPLE.read_text()))
    assert alloc.setpoints == {"cp1": 16}
    assert alloc.reasons["cp1"] == "at maximum 16 A"


def test_two_cars_share_the_garage_equally() -> None:
    a = Plug("a", "garage", ALL_PHASES, 32)
    b = Plug("b", "garage", ALL_PHASES, 32)
    alloc = allocate(_site(63, Phases.uniform(5), a, b, garage_a=25))
    # 12.5 A each on the 25 A garage breaker; the spare amp goes to one of them
    assert sorted(alloc.setpoints.values()) == [12, 13]
    assert alloc.reasons["a"] == "limited by circuit garage on L1"


def test_single_phase_car_on_l1_keeps_charging_when_l3_is_overloaded() -> None:
    """evcc #29532: the highest phase decides there; here only the phases a car uses count."""
    one_phase = Plug("zoe", "garage", (Phase.L1,), 32)
    three_phase = Plug("id3", "garage", ALL_PHASES, 16)
    alloc = allocate(_site(35, Phases(5, 5, 33), one_phase, three_phase))
    assert alloc.setpoints["zoe"] == 30
    assert alloc.setpoints["id3"] == 0
    assert alloc.reasons["id3"] == "paused: less than 6 A available on circuit main on L3"


def test_rotated_single_phase_chargers_spread_over_the_phases() -> None:
    plugs = [Plug(f"cp{i}", "garage", rot.grid_phases(1), 32) for i, rot in enumerate(Rotation)]
    alloc = allocate(_site(25, Phases.uniform(0), *plugs))
    assert alloc.setpoints == {"cp0": 25, "cp1": 25, "cp2": 25}


def test_kettle_above_the_fuse_pauses_everyone_below_it() -> None:
    alloc = allocate(
        _site(
            25,
            Phases(26, 0, 0),
            Plug("a", "garage", ALL_PHASES, 16),
            Plug("b", "garage", (Phase.L2,), 16),
        )
    )
    assert alloc.setpoints == {"a": 0, "b": 16}


def test_cars_that_cannot_charge_keep_their_reason_below_an_overloaded_circuit() -> None:
    """A kettle over the fuse (or a load over the power limit) pauses the cars that could
    charge, and says so; an off car, an unplugged one, one paused by target and one whose
    maximum is below its minimum keep their own reason instead of "less than 6 A available"."""
    plugs = (
        Plug("off", "garage", ALL_PHASES, 16, mode=ChargeMode.OFF),
        Plug("gone", "garage", ALL_PHASES, 16, available=False),
        Plug("target0", "garage", ALL_PHASES, 16, target_a=0),
        Plug("small", "garage", ALL_PHASES, 4),
        Plug("ready", "garage", ALL_PHASES, 16),
    )
    kettle = _site(25, Phases(26, 0, 0), *plugs)
    over_power = Snapshot(
        (
            Circuit("main", None, Phases.uniform(63), Phases.uniform(10), power_limit_w=6000),
            Circuit("garage", "main", Phases.uniform(32)),
        ),
        plugs,
    )
    for snap, row in ((kettle, "circuit main on L1"), (over_power, "the 6.0 kW power limit")):
        alloc = allocate(snap)
        assert alloc.setpoints == dict.fromkeys(alloc.setpoints, 0)
        assert alloc.reasons["off"] == "off"
        assert alloc.reasons["gone"] == "not available: no car ready to charge"
        assert alloc.reasons["target0"] == "paused by target 0 A"
        assert alloc.reasons["small"] == "paused: maximum 4 A is below the minimum 6 A"
        assert alloc.reasons["ready"].startswith(f"paused: less than 6 A available on {row}")


def test_more_cars_than_capacity_pauses_the_fewest_and_says_why() -> None:
    plugs = [Plug(f"cp{i}", "garage", ALL_PHASES, 16) for i in range(5)]
    alloc = allocate(_site(25, Phases.uniform(5), *plugs))
    running = [k for k, v in alloc.setpoints.items() if v > 0]
    assert len(running) == 3  # 20 A left: three cars at 6 A, not two at 10 A
    assert sum(alloc.setpoints.values()) == 20
    assert alloc.reasons["cp4"].startswith("paused: less than 6 A available on circuit main")


def test_priority_car_is_filled_first() -> None:
    boss = Plug("boss", "garage", ALL_PHASES, 32, priority=1)
    guest = Plug("guest", "garage", ALL_PHASES, 32)
    alloc = allocate(_site(40, Phases.uniform(10), boss, guest))
    assert alloc.setpoints == {"boss": 24, "guest": 6}


def test_target_from_the_direct_control_api_caps_and_pauses() -> None:
    capped = Plug(
        "a",
        "garage",
        ALL_PHASES,
        32,
        target_a=10,
        target_until=datetime(2026, 3, 2, 14, 5, tzinfo=UTC),
    )
    paused = Plug("b", "garage", ALL_PHASES, 32, target_a=0)
    too_low = Plug("c", "garage", ALL_PHASES, 32, target_a=4)
    alloc = allocate(_site(63, Phases.uniform(0), capped, paused, too_low))
    assert alloc.setpoints == {"a": 10, "b": 0, "c": 0}
    assert alloc.reasons["a"] == "target 10 A until 14:05 UTC"
    assert alloc.reasons["b"] == "paused by target 0 A"
    assert "below the minimum 6 A" in alloc.reasons["c"]


def test_pv_surplus_is_shared_between_pv_cars() -> None:
    pv1 = Plug("pv1", "garage", ALL_PHASES, 16, mode=ChargeMode.PV, setpoint_a=6, running_s=900)
    pv2 = Plug("pv2", "garage", ALL_PHASES, 16, mode=ChargeMode.PV, setpoint_a=6, running_s=900)
    snap = _site(63, Phases.uniform(0), pv1, pv2)
    alloc = allocate(Snapshot(snap.circuits, snap.plugs, pv_surplus_w=11040))  # 16 A x 3 ph
    assert alloc.setpoints == {"pv1": 8, "pv2": 8}
    assert alloc.reasons["pv1"] == "pv: 11.0 kW surplus"


def test_minpv_charges_at_minimum_without_surplus() -> None:
    car = Plug("m", "garage", ALL_PHASES, 16, mode=ChargeMode.MINPV)
    alloc = allocate(_site(63, Phases.uniform(0), car))
    assert alloc.setpoints == {"m": 6}


def test_pv_car_waits_for_the_enable_delay_then_starts() -> None:
    session = AllocationSession()
    car = Plug("pv", "garage", ALL_PHASES, 16, mode=ChargeMode.PV)
    base = _site(63, Phases.uniform(0), car)
    sunny = Snapshot(base.circuits, base.plugs, pv_surplus_w=5000)
    first = session.step(sunny, 0.0)
    assert first.setpoints["pv"] == 0
    assert first.reasons["pv"].startswith("pv: 5.0 kW surplus covers 6 A, starting in 60 s")
    assert session.step(sunny, 30.0).setpoints["pv"] == 0
    assert session.step(sunny, 61.0).setpoints["pv"] == 7  # 5000 W / 230 V / 3 phases
    cloudy = Snapshot(base.circuits, base.plugs, pv_surplus_w=1000)
    assert session.step(cloudy, 62.0).setpoints["pv"] == 6  # keeps min during the disable delay
    assert "stopping in" in session.step(cloudy, 100.0).reasons["pv"]
    assert session.step(cloudy, 62.0 + 181.0).setpoints["pv"] == 0


def test_paused_cars_take_turns_without_flapping() -> None:
    session = AllocationSession()
    plugs = [Plug(f"cp{i}", "garage", ALL_PHASES, 16) for i in range(3)]
    snap = _site(20, Phases.uniform(5), *plugs)  # 15 A: two cars at 6 A
    starts = dict.fromkeys(("cp0", "cp1", "cp2"), 0)
    ran = set()
    prev = dict.fromkeys(starts, 0)
    for t in range(3600):
        alloc = session.step(snap, float(t))
        assert sum(alloc.setpoints.values()) <= 15
        for k, v in alloc.setpoints.items():
            if v > 0:
                ran.add(k)
                if prev[k] == 0:
                    starts[k] += 1
        prev = dict(alloc.setpoints)
    assert ran == {"cp0", "cp1", "cp2"}  # everyone got a turn
    assert max(starts.values()) <= 3600 // 600 + 1  # at most one start per minimum run time


def test_safety_beats_minimum_run_time() -> None:
    session = AllocationSession()
    car = Plug("a", "garage", ALL_PHASES, 16)
    ok = _site(25, Phases.uniform(0), car)
    assert session.step(ok, 0.0).setpoints["a"] == 16
    heavy = _site(25, Phases(22, 0, 0), car)
    alloc = session.step(heavy, 1.0)  # well inside the minimum run time
    assert alloc.setpoints["a"] == 0
    after = session.step(ok, 2.0)
    assert after.setpoints["a"] == 0
    assert after.reasons["a"].startswith("paused: minimum pause, may restart in 299 s")


def test_snapshot_round_trips_through_json() -> None:
    snap = snapshot_from_json(EXAMPLE.read_text())
    assert snapshot_from_json(snapshot_to_json(snap)) == snap


def _cli() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command()
    def version() -> None:  # a second command keeps "allocate" a sub-command
        typer.echo("0")

    return app


def test_cli_allocate_prints_json(tmp_path: Path) -> None:
    result = CliRunner().invoke(_cli(), ["allocate", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["setpoints"] == {"cp1": 16}
    assert out["reasons"] == {"cp1": "at maximum 16 A"}


def test_cli_malformed_snapshot_exits_2_with_the_json_path(tmp_path: Path) -> None:
    bad = json.loads(EXAMPLE.read_text())
    bad["plugs"][0]["phases"] = ["L1", "L4"]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    result = CliRunner().invoke(_cli(), ["allocate", str(path)])
    assert result.exit_code == 2
    assert "$.plugs[0].phases" in result.stderr
    bad = json.loads(EXAMPLE.read_text())
    bad["circuits"][1]["parent"] = "attic"
    path.write_text(json.dumps(bad))
    result = CliRunner().invoke(_cli(), ["allocate", str(path)])
    assert result.exit_code == 2
    assert "$.circuits[1].parent" in result.stderr
    path.write_text("{not json")
    assert CliRunner().invoke(_cli(), ["allocate", str(path)]).exit_code == 2


ISSUE18 = Path(__file__).parent / "issue18_rounding.json"


def test_whole_amps_freed_by_rounding_are_handed_out_again() -> None:
    """Issue 18 item 5: main L2 (63 A, 41 A non-EV) holds p3 9.0 + p5 6.5 + p6 6.5 exactly; p5 and
    p6 are floored to 6 A and the freed amp goes to p3 (9 -> 10 A, its target)."""
    result = CliRunner().invoke(_cli(), ["allocate", str(ISSUE18)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["exact_a"]["p3"] == 9.0
    assert out["exact_a"]["p5"] == out["exact_a"]["p6"] == 6.5
    assert out["setpoints"] == {
        "p0": 0, "p1": 0, "p2": 7, "p3": 10, "p4": 7, "p5": 6, "p6": 6,
        "p7": 0, "p8": 0, "p9": 0, "p10": 0, "p11": 0, "p12": 0,
    }  # fmt: skip
    assert out["reasons"]["p3"] == "target 10 A"
    snap = snapshot_from_json(ISSUE18.read_text())
    assert allocate_small(snap) == allocate_numpy(snap)
    main = next(c for c in snap.circuits if c.id == "main")
    on_l2 = sum(out["setpoints"][p] for p in ("p3", "p5", "p6"))
    assert main.non_ev_load_a[1] + on_l2 == main.limit_a[1]  # main L2 is full
