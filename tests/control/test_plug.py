"""One plug's composition: the order of its policies and how their verdicts combine."""

from __future__ import annotations

from datetime import UTC, datetime

from fuseguard.control.targets import Target
from fuseguard.model.phases import ZERO, Phase, Phases, Rotation
from fuseguard.model.status import ChargeMode, CpState

from .doubles import charger_sample, handover, plug


def test_an_offline_plug_reserves_its_last_setpoint_on_its_wired_phases() -> None:
    p = plug(rotation=Rotation.L2L3L1, wired_phases=1)
    p.setpoint.written_a = 16
    a = p.assess(p.facts(100.0), handover())
    assert not a.demand.available
    assert a.reserved_a == Phases(0, 16, 0)
    assert p.verdict(a.facts, 10, "", handover()) == (
        0,
        "offline (no answer): assuming it draws 16 A",
    )
    never = plug(max_a=20)
    assert never.assess(never.facts(100.0), handover()).reserved_a == Phases.uniform(20)


def test_an_offline_plug_reserves_at_least_its_charger_side_fallback() -> None:
    """A paused plug (setpoint 0) falls back to its safe current by itself once it misses
    fuseguard's writes: that is reserved, on every wired phase (the car may be 3-phase), as
    long as it is unreachable."""
    p = plug(rotation=Rotation.L2L3L1, fallback_a=6)
    p.setpoint.written_a = 0
    a = p.assess(p.facts(100.0), handover())
    assert not a.demand.available
    assert a.reserved_a == Phases.uniform(6)
    assert p.verdict(a.facts, 10, "", handover()) == (
        0,
        "offline (no answer): assuming it draws 6 A",
    )
    one = plug(rotation=Rotation.L3L1L2, wired_phases=1, fallback_a=8)
    one.setpoint.written_a = 0
    assert one.assess(one.facts(100.0), handover()).reserved_a == Phases(0, 0, 8)
    above = plug(fallback_a=6)  # a last setpoint above the fallback stays what is reserved
    above.setpoint.written_a = 16
    assert above.assess(above.facts(100.0), handover()).reserved_a == Phases.uniform(16)
    assert plug(max_a=20, fallback_a=6).offline_a(None) == 20  # never written: its max


def test_an_offline_plug_reserves_its_fallback_whatever_its_car_was_last_seen_doing() -> None:
    """No car at the last read: one may be plugged in while the charger is unreachable, and the
    charger then offers it the fallback; the car's state is as unknown as the charger's."""
    p = plug(fallback_a=6)
    p.reading.update(charger_sample(CpState.A), 10.0)  # no car
    p.setpoint.written_a = 0
    assert p.reading.online(10.0) and not p.reading.online(30.0)
    assert p.assess(p.facts(10.0), handover()).reserved_a == ZERO  # online: nothing to reserve
    assert p.assess(p.facts(30.0), handover()).reserved_a == Phases.uniform(6)


def test_a_failing_plug_near_its_watchdog_timeout_is_reserved_before_it_is_offline() -> None:
    """A 9 s watchdog fires before the 10 s offline timeout: once a read or write fails and
    the last good write is within the lead (decrease grace 6 s + 2 meter periods) of the
    timeout, the fallback is reserved and the setpoint held; a good read ends it."""
    p = plug(fallback_a=6, fallback_after_s=9.0)
    p.reading.update(charger_sample(CpState.B), 100.0)
    p.setpoint.written_a, p.setpoint.written_at = 0, 100.0
    assert p.assess(p.facts(100.5), handover()).reserved_a == ZERO  # healthy
    p.reading.failed("timeout")
    assert not p.may_fall_back(101.0)  # read 1 s ago: its next read would show a fallback
    assert p.reading.online(103.0) and p.may_fall_back(103.0)
    a = p.assess(p.facts(103.0), handover())
    assert not a.demand.available and a.reserved_a == Phases.uniform(6)
    assert p.verdict(a.facts, 10, "", handover()) == (
        0,
        "failing (timeout) near its watchdog timeout: assuming it draws 6 A",
    )
    p.reading.update(charger_sample(CpState.B), 104.0)  # answers again
    assert p.assess(p.facts(104.0), handover()).reserved_a == ZERO
    refuses = plug(fallback_a=6, fallback_after_s=9.0)  # refuses writes, answers every read
    refuses.setpoint.written_a, refuses.setpoint.written_at = 0, 100.0
    for t in (101.0, 102.0, 103.0, 104.0):
        refuses.reading.update(charger_sample(CpState.B), t)
        refuses.reading.note_error("write failed: refused")
        assert not refuses.may_fall_back(t + 0.5)
    slow = plug(fallback_a=6, fallback_after_s=60.0)  # a 60 s watchdog: the offline timeout
    slow.reading.update(charger_sample(CpState.B), 100.0)
    slow.setpoint.written_a, slow.setpoint.written_at = 0, 100.0
    slow.reading.failed("timeout")
    assert not slow.may_fall_back(105.0)
    assert slow.assess(slow.facts(105.0), handover()).reserved_a == ZERO
    above = plug(fallback_a=6, fallback_after_s=9.0)  # charging above its fallback: nothing new
    above.setpoint.written_a, above.setpoint.written_at = 16, 100.0
    above.reading.failed("timeout")
    assert not above.may_fall_back(103.0)


def test_a_stuck_plug_is_counted_at_its_real_draw_and_gets_nothing() -> None:
    p = plug()
    p.setpoint.written_a = 0
    p.setpoint.changed_at = 0.0
    for t in (10.0, 15.0):
        p.reading.update(charger_sample(CpState.C, Phases.uniform(12)), t)
        a = p.assess(p.facts(t), handover())
    assert p.stuck.stuck
    assert not a.demand.available and a.reserved_a == Phases.uniform(12)
    setpoint, reason = p.verdict(a.facts, 6, "fair share", handover())
    assert setpoint == 0 and reason.startswith("stuck contactor")


def test_a_ready_car_is_available_with_its_phases_max_and_target() -> None:
    p = plug(rotation=Rotation.L3L1L2)
    p.reading.update(charger_sample(CpState.C, Phases(16, 0, 0), max_current_a=20.0), 10.0)
    p.setpoint.written_a = 16
    until = datetime(2026, 1, 1, 12, tzinfo=UTC)
    a = p.assess(p.facts(10.0), handover(), Target(10, until))
    d = a.demand
    assert d.available and d.phases == (Phase.L3,) and d.max_a == 20
    assert (d.target_a, d.target_until) == (10, until)
    assert (d.mode, d.priority) == (ChargeMode.FAST, 0)  # the spec's
    assert a.reserved_a == ZERO
    again = p.assess(p.facts(10.0), handover(), mode=ChargeMode.PV, priority=3)
    assert (again.demand.mode, again.demand.priority) == (ChargeMode.PV, 3)


def test_not_authorized_or_in_error_is_not_available_a_child_edge_always_is() -> None:
    p = plug()
    p.reading.update(charger_sample(CpState.B, authorized=False), 10.0)
    assert not p.assess(p.facts(10.0), handover()).demand.available
    q = plug()
    q.reading.update(charger_sample(CpState.B, errors=("RCD",)), 10.0)
    assert not q.assess(q.facts(10.0), handover()).demand.available
    child = plug(child_edge=True)
    child.reading.update(charger_sample(CpState.A), 10.0)
    assert child.assess(child.facts(10.0), handover()).demand.available


def test_increases_wait_while_another_car_comes_down_then_are_ramped() -> None:
    h = handover()
    coming_down = plug()
    coming_down.reading.update(charger_sample(CpState.C, Phases.uniform(16)), 10.0)
    coming_down.setpoint.written_a, coming_down.setpoint.changed_at = 10, 8.0
    coming_down.assess(coming_down.facts(10.0), h)  # still above its new setpoint, within the grace
    assert h.decreasing
    other = plug()
    other.reading.update(charger_sample(CpState.C, Phases.uniform(8)), 10.0)
    other.setpoint.written_a, other.setpoint.changed_at = 8, 0.0
    assert other.settle(10.0, 16, "fair share", h) == (
        8,
        "fair share; increase waits for other cars to come down",
    )
    calm = handover()
    assert other.settle(10.0, 16, "fair share", calm) == (8, "fair share")  # raise is held
    assert other.settle(15.0, 16, "fair share", calm) == (16, "fair share")


def test_a_car_that_leaves_during_its_idle_pause_takes_the_pause_with_it() -> None:
    """A full car paused as idle is unplugged; the next car on that plug starts from scratch:
    available at once, not paused for the rest of the first car's pause (up to an hour with the
    back-off), and the empty plug's reason does not speak of a full car."""
    p = plug(max_a=16)
    p.setpoint.written_a, p.setpoint.written_at = 16, 0.0
    t = 0.0
    while t < 200.0:  # offered 16 A, takes nothing: paused as idle (grace, then idle_after_s)
        p.reading.update(charger_sample(CpState.B), t)
        a = p.assess(p.facts(t), handover())
        t += 1.0
    assert not a.demand.available
    assert p.idle.paused_until is not None and p.idle.paused_until > 600.0
    p.reading.update(charger_sample(CpState.A), t)  # the owner unplugs it
    empty = p.assess(p.facts(t), handover())
    assert not empty.demand.available
    assert "full" not in p.verdict(empty.facts, 0, "no car", handover())[1]
    t += 10.0
    p.reading.update(charger_sample(CpState.B), t)  # the next car, 10 s later
    arrived = p.assess(p.facts(t), handover())
    assert arrived.demand.available, "the new car is paused for the previous car's pause"
    assert arrived.demand.max_a == 16  # a full offer, not the re-probe's minimum


def test_only_a_slow_write_under_way_holds_the_plug() -> None:
    """A write that lands within a meter period lands as soon as any write that would make room
    for it: the plug stays the allocator's, counted at its decided setpoint. One under way for a
    period, or to a charger whose last write took that long, is slow: held, counted at the
    highest of in force, in flight and decided (docs/safety.md, "A write under way")."""
    p = plug()
    p.reading.update(charger_sample(CpState.C, Phases.uniform(12.0)), 100.0)
    sp = p.setpoint
    sp.written_a, sp.setpoint_a = 12, 11
    sp.in_flight_a, sp.write_started_at = 11, 100.0  # a decrease under way since 100 s
    fresh = p.assess(p.facts(100.5), handover())
    assert fresh.demand.available and not p.holding(fresh.facts)  # 0.5 s: not slow yet
    assert p.in_flight_a(100.5) is None
    late = p.assess(p.facts(101.0), handover())  # a whole period: slow
    assert not late.demand.available and p.holding(late.facts)
    assert late.reserved_a == Phases.uniform(12)  # the value in force
    sp.last_write_s = 2.5  # the charger's last write took 2.5 s: slow from the start
    assert p.in_flight_a(100.0) == 12
    sp.in_flight_a = None  # landed
    assert p.in_flight_a(101.0) is None
