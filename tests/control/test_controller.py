"""The control loop against in-memory devices in virtual time: every failure-policy row."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from fuseguard.control.controller import ChargerSpec, CircuitSpec, Controller, ControllerConfig
from fuseguard.control.flex import FlexManagement
from fuseguard.control.targets import EvseTargets
from fuseguard.model.clock import VirtualClock
from fuseguard.model.phases import Phases, Rotation
from fuseguard.model.status import PlugStatus

from .fakes import FakeCharger, FakeMeter

UUIDS = ["%032x" % (i + 1) for i in range(10)]


# No test here reads rendered log output (the ones that check log events capture them):
# errors only, plain (tests/logkit.py); rich's tracebacks of the driver-bug test's exception
# events were a quarter of this module's CPU.
pytestmark = pytest.mark.usefixtures("errors_only_logs")


@dataclass
class Site:
    clock: VirtualClock
    meter: FakeMeter
    chargers: dict[str, FakeCharger]
    controller: Controller
    flex: FlexManagement
    targets: EvseTargets
    limit: Callable[[], Phases]

    async def run_for(self, seconds: float) -> None:
        await self.clock.advance(seconds)

    def grid(self) -> Phases:
        return self.meter.grid_a()

    def setpoints(self) -> dict[str, int]:
        return {p.id: p.setpoint_a for p in self.controller.status().plugs}


@pytest.fixture
async def site_factory() -> AsyncIterator[Callable[..., Site]]:
    tasks: list[asyncio.Task[None]] = []

    def make(
        *,
        fuse_a: float = 32.0,
        base_a: Phases = Phases(10, 5, 8),
        chargers: dict[str, FakeCharger] | None = None,
        per_phase: bool = True,
        specs: dict[str, dict[str, object]] | None = None,
        circuits: list[CircuitSpec] | None = None,
        targets_type: type[EvseTargets] = EvseTargets,
        **cfg: object,
    ) -> Site:
        clock = VirtualClock()
        chargers = chargers or {"cp1": FakeCharger(), "cp2": FakeCharger()}
        meter = FakeMeter(clock, list(chargers.values()), base_a=base_a, per_phase=per_phase)
        flex = FlexManagement(clock, fuse_a=fuse_a, timeout_s=120)
        targets = targets_type(clock)
        charger_specs = [
            ChargerSpec(
                id=cid,
                evse_uuid=UUIDS[i],
                rotation=ch.rotation,
                **(specs or {}).get(cid, {}),  # type: ignore[arg-type]
            )
            for i, (cid, ch) in enumerate(chargers.items())
        ]
        config = ControllerConfig(
            circuits=circuits or [CircuitSpec("main", None, fuse_a)],
            chargers=charger_specs,
            **cfg,  # type: ignore[arg-type]
        )
        controller = Controller(
            clock=clock, config=config, meter=meter, chargers=chargers, flex=flex, targets=targets
        )
        tasks.append(asyncio.create_task(controller.run()))
        return Site(
            clock,
            meter,
            chargers,
            controller,
            flex,
            targets,
            lambda: controller.status().main_limit_a,
        )

    yield make
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def within(grid: Phases, limit: Phases) -> bool:
    return grid.all_le(limit, tolerance=1e-6)


async def test_two_cars_share_fairly_and_stay_under_the_fuse(site_factory) -> None:
    site = site_factory(fuse_a=32, base_a=Phases(10, 5, 8))
    await site.run_for(30)
    assert {p.status for p in site.controller.status().plugs} == {
        PlugStatus.RECENTLY_STARTED_CHARGING
    }
    await site.run_for(60)
    sp = site.setpoints()
    # L1 is the bottleneck: 32 - 10 = 22 A for two 3-phase cars -> 11 A each
    assert sp == {"cp1": 11, "cp2": 11}
    assert within(site.grid(), Phases.uniform(32))
    st = site.controller.status()
    assert st.non_ev_load_a["main"] == Phases(10, 5, 8)
    assert all(p.status is PlugStatus.CHARGING for p in st.plugs)


async def test_load_step_reacts_within_one_meter_period(site_factory) -> None:
    site = site_factory(fuse_a=32, base_a=Phases(10, 5, 8))
    await site.run_for(60)
    site.meter.base_a = Phases(20, 5, 8)  # a heat pump starts on L1
    await site.run_for(1.0)
    assert within(site.grid(), Phases.uniform(32)), site.grid()
    assert sum(site.setpoints().values()) <= 12


async def test_flex_limit_and_keepalive_expiry(site_factory) -> None:
    site = site_factory(fuse_a=32, base_a=Phases(4, 4, 4))
    await site.run_for(30)
    assert site.setpoints() == {"cp1": 14, "cp2": 14}
    site.flex.update(activation=True, current_limit_a=20, fallback_current_limit_a=10)
    await site.run_for(0.01)  # the write wakes the loop at once
    assert site.limit() == Phases.uniform(20)
    assert site.setpoints() == {"cp1": 8, "cp2": 8}
    await site.run_for(60)
    site.flex.keep_alive()
    await site.run_for(100)
    assert not site.controller.status().flex_fallback
    await site.run_for(30)  # 130 s after the last keep-alive: fallback 10 A
    st = site.controller.status()
    assert st.flex_fallback
    assert site.limit() == Phases.uniform(10)
    # 10 - 4 = 6 A: only one car fits at 6 A, the other is paused
    assert sorted(site.setpoints().values()) == [0, 6]
    assert within(site.grid(), Phases.uniform(10))


async def test_meter_loss_holds_evs_at_the_fallback(site_factory) -> None:
    site = site_factory(fuse_a=40, base_a=Phases(10, 10, 10))
    site.flex.update(activation=False, fallback_current_limit_a=12)
    await site.run_for(60)
    assert sum(site.setpoints().values()) == 30
    site.meter.offline = True
    await site.run_for(9)
    assert sum(site.setpoints().values()) == 30  # not yet: 10 s grace
    await site.run_for(3)
    st = site.controller.status()
    assert st.meter_fallback
    assert sum(site.setpoints().values()) <= 12
    assert "meter fallback" in next(iter(st.plugs)).reason
    site.meter.offline = False
    await site.run_for(5)
    assert not site.controller.status().meter_fallback


async def test_frozen_meter_counts_as_loss(site_factory) -> None:
    site = site_factory(fuse_a=40, base_a=Phases(10, 10, 10))
    site.flex.update(fallback_current_limit_a=6)
    await site.run_for(30)
    site.meter.frozen = True
    await site.run_for(15)
    assert site.controller.status().meter_fallback
    assert sum(site.setpoints().values()) <= 6


async def test_charger_loss_reserves_its_last_setpoint(site_factory) -> None:
    site = site_factory(fuse_a=32, base_a=Phases(4, 4, 4))
    await site.run_for(30)
    assert site.setpoints() == {"cp1": 14, "cp2": 14}
    site.chargers["cp2"].offline = True
    await site.run_for(15)
    st = site.controller.status()
    cp2 = next(p for p in st.plugs if p.id == "cp2")
    assert cp2.status is PlugStatus.OFFLINE
    assert "offline" in cp2.reason
    # cp2 still draws 14 A as far as we know: cp1 may not take more than 32 - 4 - 14
    assert site.chargers["cp1"].limit_a <= 14
    assert within(site.grid(), Phases.uniform(32))


async def test_charger_loss_reserves_its_fallback_above_a_pause(site_factory) -> None:
    """cp2 has no car (setpoint 0) when it stops answering; its own watchdog will offer a car
    plugged in meanwhile its 10 A fallback, so cp1 is held to 32 - 4 - 10 A."""
    chargers = {"cp1": FakeCharger(), "cp2": FakeCharger(plugged=False)}
    site = site_factory(
        fuse_a=32, base_a=Phases(4, 4, 4), chargers=chargers, specs={"cp2": {"fallback_a": 10}}
    )
    await site.run_for(30)
    assert site.setpoints() == {"cp1": 28, "cp2": 0}
    chargers["cp2"].offline = True
    await site.run_for(15)
    cp2 = next(p for p in site.controller.status().plugs if p.id == "cp2")
    assert cp2.status is PlugStatus.OFFLINE
    assert cp2.reason.endswith("): assuming it draws 10 A")
    assert site.chargers["cp1"].limit_a == 18


async def test_stuck_contactor_is_counted_at_its_real_draw(site_factory) -> None:
    chargers = {"cp1": FakeCharger(), "cp2": FakeCharger(), "cp3": FakeCharger()}
    site = site_factory(fuse_a=40, base_a=Phases(4, 4, 4), chargers=chargers)
    await site.run_for(30)
    chargers["cp3"].stuck_a = 12.0
    site.targets_set = await site.targets.set(UUIDS[2], 0, 3600)  # pause cp3 via a target
    await site.run_for(30)
    st = site.controller.status()
    cp3 = next(p for p in st.plugs if p.id == "cp3")
    assert cp3.stuck
    assert "stuck" in cp3.reason
    assert within(site.grid(), Phases.uniform(40)), site.grid()
    # 40 - 4 - 12 = 24 A left for cp1 and cp2
    assert site.setpoints()["cp1"] + site.setpoints()["cp2"] <= 24


async def test_target_caps_and_expires(site_factory) -> None:
    site = site_factory(fuse_a=80, base_a=Phases(0, 0, 0))
    await site.run_for(30)
    assert site.setpoints() == {"cp1": 32, "cp2": 32}
    await site.targets.set(UUIDS[0], 10, 600)
    await site.run_for(0.01)
    st = site.controller.status()
    cp1 = next(p for p in st.plugs if p.id == "cp1")
    assert cp1.setpoint_a == 10
    assert "target" in cp1.reason
    await site.run_for(601 + 5)  # expiry, then a raise once it has held for raise_after_s
    assert site.setpoints()["cp1"] == 32


async def test_one_phase_car_on_rotated_wiring_uses_the_free_phase(site_factory) -> None:
    chargers = {
        "three": FakeCharger(),
        "one": FakeCharger(rotation=Rotation.L3L1L2, car_phases=1, car_max_a=32),
    }
    site = site_factory(fuse_a=25, base_a=Phases(15, 15, 0), chargers=chargers)
    await site.run_for(60)
    # before it draws, the 1-phase car might load all three phases: only one car fits at 6 A on
    # L1/L2 (10 A free); as a 1-phase car on its charger's L1 (grid L3) it would fit beside the
    # other, so it is probed at once (allocation/probe.py) instead of waiting out a 45 min turn.
    # Once it has drawn, fuseguard knows it sits on grid L3 (25 A free); the 3-phase car is held
    # by L1/L2 (10 A): both charge
    sp = site.setpoints()
    assert sp["three"] == 10
    assert sp["one"] == 15
    assert within(site.grid(), Phases.uniform(25))
    await site.run_for(3 * 2700)  # turns of min_run_s (45 min): nothing changes
    assert site.setpoints() == {"three": 10, "one": 15}
    assert within(site.grid(), Phases.uniform(25))


async def test_total_power_meter_worst_case(site_factory) -> None:
    site = site_factory(fuse_a=32, base_a=Phases(6, 0, 0), per_phase=False)
    await site.run_for(60)
    # 6 A of non-EV load could be on any phase -> assume 6 A on every phase: 26 A for two cars
    assert site.setpoints() == {"cp1": 13, "cp2": 13}
    assert within(site.grid(), Phases.uniform(32))


async def test_sub_circuit_bottleneck(site_factory) -> None:
    chargers = {"cp1": FakeCharger(), "cp2": FakeCharger(), "cp3": FakeCharger()}
    site = site_factory(
        fuse_a=63,
        base_a=Phases(0, 0, 0),
        chargers=chargers,
        circuits=[CircuitSpec("main", None, 63.0), CircuitSpec("garage", "main", 20.0)],
        specs={"cp1": {"circuit": "garage"}, "cp2": {"circuit": "garage"}},
    )
    await site.run_for(60)
    sp = site.setpoints()
    assert sp["cp1"] == sp["cp2"] == 10
    assert sp["cp3"] == 32


async def test_ramp_up_is_gradual_and_decrease_is_immediate(site_factory) -> None:
    chargers = {"cp1": FakeCharger()}
    site = site_factory(fuse_a=63, base_a=Phases(0, 0, 0), chargers=chargers, ramp_up_a_per_s=4.0)
    await site.run_for(1.5)
    writes = list(chargers["cp1"].writes)
    assert writes[0] == 6
    assert all(b - a <= 4 for a, b in itertools.pairwise(writes))
    await site.run_for(30)
    assert chargers["cp1"].limit_a == 32
    site.meter.base_a = Phases(50, 0, 0)
    await site.run_for(1.0)
    assert chargers["cp1"].limit_a == 13


async def test_a_hanging_charger_holds_up_nothing(site_factory) -> None:
    site = site_factory(fuse_a=32, base_a=Phases(4, 4, 4))
    await site.run_for(30)
    site.chargers["cp2"].hang = True
    site.meter.base_a = Phases(14, 4, 4)  # meanwhile the load rises: cp1 must still react
    await site.run_for(1.0 + 0.5)  # next meter sample + at most poll_wait_s for the silent one
    assert site.chargers["cp1"].limit_a < 14
    await site.run_for(12)
    cp2 = next(p for p in site.controller.status().plugs if p.id == "cp2")
    assert cp2.status is PlugStatus.OFFLINE
    assert "no answer within 10 s" in (cp2.error or "")
    assert within(site.grid(), Phases.uniform(32))


async def test_a_full_car_is_paused_and_offered_current_again_later(site_factory) -> None:
    chargers = {"cp1": FakeCharger(), "cp2": FakeCharger()}
    site = site_factory(fuse_a=20, base_a=Phases(2, 2, 2), chargers=chargers)
    await site.run_for(30)
    assert site.setpoints() == {"cp1": 9, "cp2": 9}
    chargers["cp2"].full = True  # takes no current any more
    await site.run_for(90)
    st = {p.id: p for p in site.controller.status().plugs}
    assert st["cp2"].setpoint_a == 0
    assert "takes no current" in st["cp2"].reason
    assert st["cp1"].setpoint_a == 18  # all of it goes to the car that charges
    chargers["cp2"].full = False  # e.g. preconditioning: it wants current again
    await site.run_for(900)
    assert site.setpoints() == {"cp1": 9, "cp2": 9}


async def test_a_full_car_is_probed_with_its_minimum_and_ever_less_often(site_factory) -> None:
    """Idle back-off (issue 18): a car that stays full is offered only its minimum on a re-probe,
    after 15 min, then 30 min, so the car that charges loses 6 A, not half, and less often."""
    chargers = {"cp1": FakeCharger(), "cp2": FakeCharger()}
    site = site_factory(fuse_a=20, base_a=Phases(2, 2, 2), chargers=chargers)
    await site.run_for(30)
    chargers["cp2"].full = True
    offers: list[tuple[float, int]] = []
    for _ in range(3600 // 10):
        await site.run_for(10)
        sp = site.setpoints()
        if sp["cp2"] > 0:
            offers.append((site.clock.monotonic(), sp["cp2"]))
    probes = [t for k, (t, _) in enumerate(offers) if k == 0 or t - offers[k - 1][0] > 10]
    assert {a for t, a in offers if t > 200} == {6}  # re-probes: the minimum only
    assert len(probes) == 3  # the first offer, then after 15 and after 30 more minutes
    gaps = [probes[1] - probes[0], probes[2] - probes[1]]
    assert 900 < gaps[0] < 1000 < 1800 < gaps[1] < 1900


async def test_an_overload_is_answered_within_half_a_meter_period(site_factory) -> None:
    site = site_factory(fuse_a=32, base_a=Phases(10, 5, 8))
    await site.run_for(60)
    site.meter.base_a = Phases(20, 5, 8)
    # the meter is polled twice per period; a sample above the limit is decided on at once,
    # without waiting for the chargers' next poll
    await site.run_for(0.6)
    assert within(site.grid(), Phases.uniform(32)), site.grid()


async def test_the_live_snapshot_reproduces_the_decision(site_factory) -> None:
    from fuseguard.allocation import allocate
    from fuseguard.allocation.snapshot import snapshot_from_json, snapshot_to_json

    site = site_factory(fuse_a=32, base_a=Phases(10, 5, 8))
    await site.run_for(90)
    snapshot = site.controller.last_snapshot
    assert snapshot is not None
    # what `run --dump-snapshot` writes and `fuseguard allocate` reads gives the same answer
    again = snapshot_from_json(snapshot_to_json(snapshot))
    assert allocate(again).setpoints == site.setpoints()


async def test_dump_snapshot_then_fuseguard_allocate(site_factory, tmp_path) -> None:
    import json

    from typer.testing import CliRunner

    from fuseguard.cli import app
    from fuseguard.edge import snapshot_dumper

    site = site_factory(fuse_a=32, base_a=Phases(10, 5, 8))
    await site.run_for(90)
    path = tmp_path / "snapshot.json"
    snapshot_dumper(site.controller, path)(site.controller.status())
    result = CliRunner().invoke(app, ["allocate", str(path)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["setpoints"] == site.setpoints()


async def test_a_driver_bug_marks_the_charger_failed_and_control_goes_on(site_factory) -> None:
    site = site_factory(fuse_a=32, base_a=Phases(4, 4, 4))
    await site.run_for(30)

    async def broken() -> None:
        raise RuntimeError("index out of range in a register decoder")

    site.chargers["cp2"].read = broken  # type: ignore[method-assign]
    site.chargers["cp2"].set_current_limit = broken  # type: ignore[assignment,method-assign]
    await site.run_for(15)
    st = {p.id: p for p in site.controller.status().plugs}
    assert st["cp2"].status is PlugStatus.OFFLINE
    assert "driver error" in (st["cp2"].error or "")
    site.meter.base_a = Phases(20, 4, 4)  # the loop still reacts for the others
    await site.run_for(2)
    # cp2 cannot be controlled any more and still draws its 14 A: cp1 gives way completely
    assert site.chargers["cp1"].limit_a == 0


# --- the loop survives its collaborators ------------------------------------------------------


class BrokenTargets(EvseTargets):
    """A target source that fails on lookup while ``broken``."""

    broken = False

    def get(self, evse_uuid: str):  # type: ignore[no-untyped-def]
        if self.broken:
            raise RuntimeError("target store unreachable")
        return super().get(evse_uuid)


async def test_a_failing_listener_is_logged_and_the_loop_goes_on(site_factory) -> None:
    from structlog.testing import capture_logs

    site = site_factory(fuse_a=32, base_a=Phases(4, 4, 4))
    seen: list[int] = []

    def broken(_status) -> None:
        raise ValueError("listener bug")

    site.controller.subscribe(broken)
    site.controller.subscribe(lambda st: seen.append(st.cycles))
    with capture_logs() as logs:
        await site.run_for(30)
    assert site.setpoints() == {"cp1": 14, "cp2": 14}
    assert len(seen) >= 30  # the listener after the broken one is still told every cycle
    failed = [e for e in logs if e["event"] == "listener_failed"]
    assert len(failed) == 1 and "listener bug" in failed[0]["reason"]  # once, not every cycle


async def _hold_check(site: Site, break_it: Callable[[bool], None], what: str) -> None:
    from structlog.testing import capture_logs

    await site.run_for(30)
    assert site.setpoints() == {"cp1": 14, "cp2": 14}
    break_it(True)
    site.meter.base_a = Phases(0, 0, 0)  # capacity frees up: a working loop would raise
    with capture_logs() as logs:
        await site.run_for(30)
    st = {p.id: p for p in site.controller.status().plugs}
    assert {pid: p.setpoint_a for pid, p in st.items()} == {"cp1": 14, "cp2": 14}
    assert site.chargers["cp1"].limit_a == 14  # never raised
    assert "decision failed" in st["cp1"].reason and what in st["cp1"].reason
    failed = [e for e in logs if e["event"] == "decision_failed"]
    assert len(failed) == 1 and what in failed[0]["reason"]  # once, not every cycle
    # setpoints are still re-written for the charger-side watchdog while the decision fails
    assert site.chargers["cp1"].writes.count(14) >= 2
    break_it(False)
    with capture_logs() as logs:
        await site.run_for(30)
    assert site.setpoints() == {"cp1": 16, "cp2": 16}  # back to work
    assert [e for e in logs if e["event"] == "decision_recovered"]


async def test_a_failing_target_lookup_holds_the_last_setpoints(site_factory) -> None:
    site = site_factory(fuse_a=32, base_a=Phases(4, 4, 4), targets_type=BrokenTargets)
    targets = site.targets
    assert isinstance(targets, BrokenTargets)

    def break_it(on: bool) -> None:
        targets.broken = on

    await _hold_check(site, break_it, "target store unreachable")


async def test_a_failing_allocator_holds_the_last_setpoints(site_factory, monkeypatch) -> None:
    from fuseguard.control.allocator import AllocatorSession

    real_step = AllocatorSession.step
    state = {"broken": False}

    def step(self, now_s, snapshot, held=()):  # type: ignore[no-untyped-def]
        if state["broken"]:
            raise ArithmeticError("allocator bug")
        return real_step(self, now_s, snapshot, held)

    monkeypatch.setattr(AllocatorSession, "step", step)
    site = site_factory(fuse_a=32, base_a=Phases(4, 4, 4))
    await _hold_check(site, lambda on: state.update(broken=on), "allocator bug")


async def test_a_pending_ramp_step_is_not_taken_while_the_decision_fails(
    site_factory, monkeypatch
) -> None:
    from fuseguard.control.allocator import AllocatorSession

    real_step = AllocatorSession.step
    state = {"broken": False}

    def step(self, now_s, snapshot, held=()):  # type: ignore[no-untyped-def]
        if state["broken"]:
            raise ArithmeticError("allocator bug")
        return real_step(self, now_s, snapshot, held)

    monkeypatch.setattr(AllocatorSession, "step", step)
    chargers = {"cp1": FakeCharger()}
    site = site_factory(fuse_a=63, base_a=Phases(0, 0, 0), chargers=chargers)
    await site.run_for(0.6)  # the first write: 6 A, on the way to 32 A
    assert chargers["cp1"].limit_a == 6
    state["broken"] = True
    await site.run_for(30)
    assert chargers["cp1"].limit_a == 6
    assert set(chargers["cp1"].writes) == {6}


def test_a_broken_site_never_starts() -> None:
    from fuseguard.model.circuits import CircuitTreeError

    clock = VirtualClock()
    chargers = {"cp1": FakeCharger()}
    meter = FakeMeter(clock, list(chargers.values()))

    def build(circuits: list[CircuitSpec], specs: list[ChargerSpec]) -> Controller:
        config = ControllerConfig(circuits=circuits, chargers=specs)
        return Controller(clock=clock, config=config, meter=meter, chargers=chargers)

    main = [CircuitSpec("main", None, 32.0)]
    with pytest.raises(CircuitTreeError, match="root 'main'"):
        build([CircuitSpec("garage", None, 32.0)], [ChargerSpec(id="cp1")])
    with pytest.raises(ValueError, match="no charger driver for 'cp2'"):
        build(main, [ChargerSpec(id="cp1"), ChargerSpec(id="cp2")])
    with pytest.raises(ValueError, match="unknown circuit 'attic'"):
        build(main, [ChargerSpec(id="cp1", circuit="attic")])
