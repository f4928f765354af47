"""The one charge-point core directly: offer, watchdog, car, energy, faults, states, fast path."""

from __future__ import annotations

import pytest

from fuseguard.model.faults import DeviceFault
from fuseguard.model.phases import Phases, Rotation
from fuseguard.model.status import CpState, OcppState
from fuseguard.sim.chargepoint import ChargePoint
from fuseguard.sim.vehicle import SimVehicle


def car(**kw: object) -> SimVehicle:
    params: dict[str, object] = {"phases": 3, "max_current_a": 32.0, "response_delay_s": 0.0}
    params.update(kw)
    return SimVehicle(**params)  # type: ignore[arg-type]


def run(cp: ChargePoint, start_s: float, end_s: float) -> None:
    t = start_s
    while t < end_s:
        t += 1.0
        cp.advance(t)


def test_offer_is_the_lowest_limit_and_nothing_below_6_a() -> None:
    cp = ChargePoint(max_current_a=32, fixed_cable=False)
    assert cp.offered_a == 0  # no car
    cp.plug_in(car(cable_rating_a=20), 0.0)
    assert cp.offered_a == 20  # never written: the maximum, capped by the cable
    cp.write_limit(16, 0.0)
    assert cp.offered_a == 16
    cp.set_energy_manager_limit(10, 0.0)
    assert cp.offered_a == 10
    for low in (1, 5.9):
        cp.write_limit(low, 0.0)
        assert cp.offered_a == 0
    cp.write_limit(100, 0.0)
    cp.set_energy_manager_limit(None, 0.0)
    assert cp.offered_a == 20
    assert cp.limit_a == 100  # read back as written


def test_a_session_needs_authorisation_unless_charging_is_free() -> None:
    cp = ChargePoint(free_charging=False, auth_timeout_s=30)
    cp.plug_in(car(), 0.0)
    assert cp.offered_a == 0
    assert cp.ocpp_state is OcppState.PREPARING
    cp.authorize(1.0, "card")
    assert cp.session.active and cp.session.uid == "card"
    assert cp.offered_a == 32
    cp.unplug(2.0)
    cp.authorize(3.0)  # before the car: waits auth_timeout_s for it
    run(cp, 3.0, 32.0)
    assert cp.session.authorized
    run(cp, 32.0, 34.0)
    assert not cp.session.authorized
    assert cp.session.timed_out
    cp.plug_in(car(), 34.0)
    assert not cp.session.active


def test_watchdog_replaces_the_limit_with_the_safe_current_until_the_next_write() -> None:
    cp = ChargePoint(limit_a=0.0)
    cp.plug_in(car(), 0.0)
    cp.program_safe_current(8, 10, 0.0)
    cp.write_limit(20, 0.0)
    run(cp, 0.0, 10.0)
    assert not cp.watchdog_expired  # 10 s since the write: not yet more than the timeout
    assert cp.draw_a == 20
    run(cp, 10.0, 11.0)
    assert cp.watchdog_expired
    assert cp.offered_a == 8
    assert cp.draw_a == 8
    assert cp.limit_a == 20
    cp.write_limit(0, 11.5)  # paused by the energy manager: it is alive again
    run(cp, 11.0, 21.0)
    assert cp.offered_a == 0
    run(cp, 21.0, 22.0)  # silent again for more than 10 s: the safe current even for a pause
    assert cp.offered_a == 8
    cp.set_safe_timeout(0, 23.0)  # 0 disables the watchdog
    assert cp.offered_a == 0


def test_limits_apply_after_the_charger_delay_and_never_when_ignored() -> None:
    cp = ChargePoint(limit_delay_s=3.0, limit_a=0.0)
    cp.plug_in(car(), 0.0)
    cp.write_limit(16, 0.0)
    assert cp.limit_a == 16
    assert cp.offered_a == 0
    run(cp, 0.0, 2.0)
    assert cp.offered_a == 0
    run(cp, 2.0, 3.0)
    assert cp.offered_a == 16
    assert cp.draw_a == 16
    cp.set_fault(DeviceFault.IGNORES_LIMIT, 3.0)
    cp.write_limit(6, 3.0)
    run(cp, 3.0, 10.0)
    assert cp.limit_a == 6
    assert cp.offered_a == 16
    assert cp.draw_a == 16


def test_car_follows_after_its_delay_and_energy_adds_up() -> None:
    cp = ChargePoint(rotation=Rotation.L2L3L1, limit_a=0.0, meter_wh=300.0)
    ev = car(phases=1, max_current_a=16, response_delay_s=2.0, battery_wh=50_000, soc=0.2)
    cp.plug_in(ev, 0.0)
    cp.write_limit(10, 0.0)
    run(cp, 0.0, 1.0)
    assert cp.draw_a == 0
    assert cp.ocpp_state is OcppState.PREPARING  # offered, waiting for the first draw
    run(cp, 1.0, 2.0)
    assert cp.current_a == Phases(10, 0, 0)
    assert cp.grid_current_a() == Phases(0, 10, 0)
    assert cp.grid_tuple == (0.0, 10.0, 0.0)
    assert cp.cp_state is CpState.C
    assert cp.ocpp_state is OcppState.CHARGING
    run(cp, 2.0, 3602.0)
    expected_wh = 10 * 230 * 3600 / 3600
    assert cp.session.energy_wh == pytest.approx(expected_wh)
    assert cp.meter_wh == pytest.approx(300 + expected_wh)
    assert ev.drawn_wh == pytest.approx(expected_wh)
    assert cp.phase_wh[0] == pytest.approx(100 + expected_wh)
    assert ev.soc == pytest.approx(0.2 + expected_wh * 0.92 / 50_000)
    sample = cp.sample()
    assert sample.phases_in_use == 1
    assert sample.session_energy_wh == pytest.approx(expected_wh)
    assert sample.charging_duration_s == 3602


def test_a_car_wanting_an_amount_stops_exactly_there() -> None:
    cp = ChargePoint(limit_a=16.0)
    ev = SimVehicle.wanting(100.0, phases=3, max_current_a=16)
    cp.plug_in(ev, 0.0)
    run(cp, 0.0, 60.0)
    assert ev.drawn_wh == pytest.approx(100.0)
    assert cp.meter_wh == pytest.approx(100.0)
    assert ev.full
    assert cp.draw_a == 0
    assert cp.ocpp_state is OcppState.SUSPENDEDEV


def test_stuck_contactor_keeps_the_draw_and_reports_the_weld_when_it_shows() -> None:
    cp = ChargePoint(limit_a=16.0)
    cp.plug_in(car(), 0.0)
    run(cp, 0.0, 2.0)
    cp.set_fault(DeviceFault.STUCK_CONTACTOR, 2.0)
    run(cp, 2.0, 5.0)
    assert cp.draw_a == 16
    assert cp.errors == ()  # the charger meant it closed: nothing to see
    cp.write_limit(10, 5.0)
    run(cp, 5.0, 7.0)
    assert cp.draw_a == 16
    assert cp.errors == ("contactor_welded",)
    cp.write_limit(0, 7.0)
    run(cp, 7.0, 9.0)
    assert cp.draw_a == 16
    assert cp.cp_state is CpState.C
    assert cp.ocpp_state is OcppState.SUSPENDEDEVSE
    assert cp.relay_on
    cp.clear_fault(None, 9.0)
    run(cp, 9.0, 10.0)
    assert cp.draw_a == 0
    assert cp.errors == ()


def test_rcd_trip_opens_at_once() -> None:
    cp = ChargePoint(limit_a=16.0)
    cp.plug_in(car(), 0.0)
    run(cp, 0.0, 2.0)
    cp.set_fault("rcd_trip", 2.0)
    assert cp.draw_a == 0
    assert cp.grid_current_a() == Phases()
    assert cp.cp_state is CpState.E
    assert cp.ocpp_state is OcppState.FAULTED
    assert cp.errors == ("rcmb_triggered", "rcd_triggered")
    assert cp.offered_a == 0
    cp.clear_fault(DeviceFault.RCD_TRIP, 3.0)
    run(cp, 3.0, 4.0)
    assert cp.draw_a == 16


def test_ocpp_states_through_a_session() -> None:
    cp = ChargePoint(limit_a=0.0)
    assert cp.ocpp_state is OcppState.AVAILABLE
    ev = car()
    cp.plug_in(ev, 0.0)
    assert cp.ocpp_state is OcppState.SUSPENDEDEVSE  # nothing offered yet
    cp.write_limit(16, 0.0)
    assert cp.ocpp_state is OcppState.PREPARING
    run(cp, 0.0, 1.0)
    assert cp.ocpp_state is OcppState.CHARGING
    ev.suspended = True
    cp.car_changed(1.0)
    run(cp, 1.0, 2.0)
    assert cp.ocpp_state is OcppState.SUSPENDEDEV
    cp.stop_session(2.0)
    assert cp.ocpp_state is OcppState.FINISHING
    assert cp.offered_a == 0
    cp.set_available(False, 3.0)
    assert cp.ocpp_state is OcppState.UNAVAILABLE
    cp.unplug(4.0)
    assert cp.session.ended_s == 2.0
    assert cp.cp_state is CpState.A


def test_nothing_is_allocated_on_a_tick_where_nothing_changes() -> None:
    idle = ChargePoint()
    busy = ChargePoint(limit_a=16.0)
    busy.plug_in(SimVehicle.wanting(1e9, max_current_a=16), 0.0)
    run(busy, 0.0, 1.0)
    before = (idle.sample(), idle.grid_current_a(), busy.current_a, busy.grid_current_a())
    run(idle, 0.0, 100.0)
    run(busy, 1.0, 100.0)
    assert idle.sample() is before[0]  # cached until something changes
    assert idle.grid_current_a() is before[1]
    assert busy.current_a is before[2]
    assert busy.grid_current_a() is before[3]
    busy.write_limit(10, 100.0)
    run(busy, 100.0, 101.0)
    assert busy.current_a == Phases.uniform(10)


def test_rewire_moves_the_draw_to_other_grid_phases_at_once() -> None:
    cp = ChargePoint(limit_a=10.0)
    cp.plug_in(car(phases=1), 0.0)
    run(cp, 0.0, 1.0)
    assert cp.grid_current_a() == Phases(10, 0, 0)
    cp.rewire(Rotation.L3L1L2)
    assert cp.grid_current_a() == Phases(0, 0, 10)
