"""The OCPP start-up race (docs/safety.md, "Start window"): a car offered current after a pause
draws before its charge point says so; the meter's rise is the car's, up to its offer, never
more than the meter shows."""

from __future__ import annotations

import pytest

from fuseguard.control.load import EvDraw, LoadEstimator, Metered
from fuseguard.control.policies.expected import START_WINDOW_S, expected_draw_a, start_offer_a
from fuseguard.control.policies.facts import PlugFacts
from fuseguard.control.writer import Setpoint
from fuseguard.model.circuits import CircuitSpec, CircuitTree
from fuseguard.model.phases import ZERO, Phase, Phases
from fuseguard.model.status import CpState

from .doubles import charger_sample, history, meter_sample, plug

DELAY_S = 2.0
ALL = (Phase.L1, Phase.L2, Phase.L3)


OWN_A = 16.0  # the charge point's own limit before anything of ours is in force


def offer(sp: Setpoint, *, now: float, cp: CpState = CpState.B, measured_at: float = 0.0,
          counted: Phases = ZERO, errors: tuple[str, ...] = (),
          delay_s: float = DELAY_S) -> Phases | None:  # fmt: skip
    return start_offer_a(
        sample=charger_sample(cp=cp, errors=errors),
        measured_at=measured_at,
        now=now,
        setpoint=sp,
        delay_s=delay_s,
        counted_a=counted,
        phases=ALL,
        min_a=6,
        own_a=OWN_A,
    )


def test_a_paused_car_offered_current_may_draw_its_offer_within_the_window() -> None:
    sp = history((0.0, 0), (100.0, 10))
    assert offer(sp, now=101.0) is None  # not in force yet: it cannot draw
    assert offer(sp, now=102.0) == Phases.uniform(10)
    assert offer(sp, now=102.0 + START_WINDOW_S) == Phases.uniform(10)
    assert offer(sp, now=102.1 + START_WINDOW_S) is None  # the window is over


def test_only_a_raise_from_a_pause_opens_the_window() -> None:
    assert offer(history((0.0, 6), (100.0, 10)), now=103.0) is None  # it was charging
    assert offer(history((0.0, 0), (100.0, 4)), now=103.0) is None  # below the minimum: no start
    assert offer(history((0.0, 0), (100.0, 8)), now=103.0) == Phases.uniform(8)
    assert offer(Setpoint(), now=103.0) is None  # nothing written


def test_a_first_write_leaves_the_car_under_the_charge_points_own_limit_until_in_force() -> None:
    """Round 12 (the OCPP start-up stall): before the first write takes effect the car may
    start at the charge point's own limit, whatever was written; the window opens at the write
    and closes START_WINDOW_S after the write took effect."""
    first = history((100.0, 8))
    assert offer(first, now=99.9) is None  # before the write
    assert offer(first, now=100.0) == Phases.uniform(OWN_A)  # at the write
    assert offer(first, now=101.5) == Phases.uniform(OWN_A)  # not in force yet
    assert offer(first, now=102.0 + START_WINDOW_S) == Phases.uniform(OWN_A)
    assert offer(first, now=102.1 + START_WINDOW_S) is None
    # a pause written first: still the own limit until it is in force, and the answer to it
    assert offer(history((100.0, 0)), now=101.0) == Phases.uniform(OWN_A)
    # a second write before the first took effect: nothing of ours in force at it either
    assert offer(history((100.0, 0), (101.0, 6)), now=101.5) == Phases.uniform(OWN_A)
    # a written value above the own limit bounds it
    assert offer(history((100.0, 20)), now=101.0) == Phases.uniform(20)
    # what is counted for the car already is not counted twice
    got = offer(first, now=101.0, cp=CpState.C, measured_at=99.0, counted=Phases.uniform(6))
    assert got == Phases.uniform(OWN_A - 6)
    # measured charging since the write took effect: the reading stands
    assert offer(first, now=103.0, cp=CpState.C, measured_at=102.5) is None
    # a charger that applies a write at once: its first write still finds the car under the
    # own limit (it answers within its response time); a later one follows the old rule
    assert offer(first, now=100.5, delay_s=0.0) == Phases.uniform(OWN_A)
    assert offer(first, now=110.1, delay_s=0.0) is None
    assert offer(history((100.0, 0)), now=100.5, delay_s=0.0) == Phases.uniform(OWN_A)
    assert offer(history((100.0, 0), (100.5, 8)), now=101.0, delay_s=0.0) == Phases.uniform(8)
    assert offer(history((100.0, 6), (100.5, 8)), now=101.0, delay_s=0.0) is None


def test_a_start_measured_since_the_offer_stands() -> None:
    sp = history((0.0, 0), (100.0, 10))
    assert offer(sp, now=105.0, cp=CpState.C, measured_at=103.0) is None
    # charging, measured before the offer took effect, counted at 6: up to 4 more unseen
    late = offer(sp, now=105.0, cp=CpState.C, measured_at=99.0, counted=Phases.uniform(6))
    assert late == Phases.uniform(4)


def test_no_window_for_an_absent_or_faulty_car() -> None:
    sp = history((0.0, 0), (100.0, 10))
    assert offer(sp, now=103.0, cp=CpState.A) is None
    assert offer(sp, now=103.0, errors=("rcd",)) is None


def test_a_car_found_charging_before_the_first_write_counts_at_its_minimum() -> None:
    """Start-up: the charge point lets the car draw at its own limit before fuseguard wrote
    anything, and its MeterValues predate the start (round 9: every car paused at start)."""
    expected = expected_draw_a(
        sample=charger_sample(cp=CpState.C),
        grid_a=ZERO,
        measured_at=10.0,
        now=12.0,
        setpoint=Setpoint(),
        delay_s=DELAY_S,
        margin_a=1.0,
        charging_since=11.0,
        phases=ALL,
        min_a=6,
    )
    assert expected == Phases.uniform(6)


def estimator() -> LoadEstimator:
    tree = CircuitTree.of([CircuitSpec("main", None, 100.0)])
    return LoadEstimator(tree, voltage_v=230.0, phase_assumption="worst", peak_window_s=900.0)


def measure(est: LoadEstimator, amps: Phases, starting: list[EvDraw], power_w: float | None = None,
            draws: list[EvDraw] | None = None) -> Phases:  # fmt: skip
    sample = meter_sample(amps if power_w is None else None, power_w=power_w)
    metered = [Metered(circuit="main", sample=sample, fresh=True, record=True, held_a=ZERO)]
    return est.update(0.0, metered, draws or [], starting)["main"]


def start(amps: float) -> EvDraw:
    return EvDraw("main", Phases.uniform(amps), amps * 3 * 230.0)


def test_a_rise_up_to_the_offers_is_the_starting_cars() -> None:
    est = estimator()
    assert measure(est, Phases.uniform(8), []) == Phases.uniform(8)
    # two cars offered 10 A start: the meter rises by 20 A, the building load stays at 8 A
    assert measure(est, Phases.uniform(28), [start(10), start(10)]) == Phases.uniform(8)
    # one of them only started so far: a rise of 10 A within the offers
    assert measure(est, Phases.uniform(18), [start(10), start(10)]) == Phases.uniform(8)


def test_a_rise_beyond_the_offers_is_building_load() -> None:
    est = estimator()
    measure(est, Phases.uniform(8), [])
    # +30 A with 20 A offered: at least 10 A more building load
    assert measure(est, Phases.uniform(38), [start(10), start(10)]) == Phases.uniform(18)
    # per phase: a rise on L1 only is no start of a three-phase car beyond its offer on L1
    est = estimator()
    measure(est, Phases.uniform(8), [])
    assert measure(est, Phases(30, 8, 8), [start(10)]) == Phases(20, 8, 8)


def test_the_window_never_lowers_the_non_ev_load_below_the_plain_reading() -> None:
    est = estimator()
    measure(est, Phases.uniform(20), [])
    # the building load dropped by 12 A while a car was offered 10 A: the drop counts
    assert measure(est, Phases.uniform(8), [start(10)]) == Phases.uniform(8)


def test_without_an_earlier_value_nothing_is_attributed() -> None:
    assert measure(estimator(), Phases.uniform(28), [start(10)]) == Phases.uniform(28)


def test_a_total_power_meter_attributes_the_rise_too() -> None:
    """The CEMM reports total power; the worst-case assumption puts all of the non-EV power on
    every phase, so an unexplained car start of 6 A x 3 phases counts as 18 A on each."""
    est = estimator()
    assert measure(est, ZERO, [], power_w=230.0 * 6) == Phases.uniform(6)
    after = measure(est, ZERO, [start(6)], power_w=230.0 * (6 + 18))
    assert after == Phases.uniform(6)


@pytest.mark.parametrize("measured_w", [0.0, 1380.0])
def test_an_expected_draw_without_a_measured_power_counts_at_the_voltage(measured_w: float) -> None:
    """Before: 0 W when nothing was measured, so with a total-power meter the car's start was
    building load as soon as another car reported a power."""
    f = PlugFacts(now=10.0, sample=charger_sample(power_w=measured_w), fresh=True,
                  grid_a=ZERO if measured_w == 0 else Phases(2, 2, 2), written_a=None,
                  changed_at=0.0, expected_a=Phases.uniform(6))  # fmt: skip
    expected_w = 18 * 230.0 if measured_w == 0 else 1380.0 * 3
    assert f.power_w(230.0) == pytest.approx(expected_w)


def test_a_raise_not_measured_yet_is_pending_not_counted() -> None:
    f = PlugFacts(now=10.0, sample=charger_sample(current_a=Phases.uniform(6), power_w=4140.0),
                  fresh=True, grid_a=Phases.uniform(6), written_a=16, changed_at=0.0,
                  expected_a=Phases.uniform(16), unconfirmed_a=Phases.uniform(10))  # fmt: skip
    assert f.counted_a == Phases.uniform(6)
    assert f.pending_a == Phases.uniform(10)
    assert f.power_w(230.0) == 4140.0


@pytest.mark.parametrize("late", [True, False])
def test_only_a_charger_that_reports_late_gets_a_start_window(late: bool) -> None:
    """A charger measured at the read (Bender, Modbus) shows a start within the meter period:
    the start window is for chargers that report late (OCPP: ``reports_late``, set for
    ``driver = "ocpp"`` or a ``limit_delay_s``)."""
    p = plug(reports_late=late, limit_delay_s=DELAY_S)
    p.reading.update(charger_sample(cp=CpState.B, authorized=True), 99.0)
    p.setpoint.changes.extend([(0.0, 0), (100.0, 10)])  # a pause in force, then an offer
    p.setpoint.written_a, p.setpoint.changed_at = 10, 100.0
    f = p.facts(103.0)
    assert f.pending_a == (Phases.uniform(10) if late else None)
    assert f.counted_a == ZERO
