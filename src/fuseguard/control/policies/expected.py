"""Expected draw: what a plug draws now when its measurement is older than its limit.

A charger that reports its currents only now and then (OCPP MeterValues every 60 s) and applies
a new limit only after a delay (the profile delay) leaves the controller with a measurement
taken under another limit than the one in force now. The controller must not take such a
measurement at face value: a car measured at 16 A and lowered to 8 A draws 8 A once the limit is
in force, and a car measured at 6 A and raised to 20 A draws up to 20 A. Counting the old value
as EV draw puts the difference into the non-EV load (the meter's reading minus the EV draws):
too much non-EV load after a raise (the car is lowered again: flapping), too little after a
decrease (current freed before it is freed).

:func:`expected_draw_a` predicts the draw from the limits in force at the measurement and now
(:meth:`~fuseguard.control.writer.Setpoint.limit_at`, with the charger's ``limit_delay_s``): a car
that drew what it was offered (within ``margin_a``) is expected to draw the limit in force now on
the phases it used; a car that drew less is expected to draw the same, at most the limit in
force now. Until a decrease is in force the car draws its old value: break before make
(:mod:`.handover`) keeps the others from taking the current meanwhile, and the grid meter shows
whether it came down. A car that started charging after its last measurement (the state is
reported at once, the currents later) is expected to draw the limit in force, at most the plug's
minimum, on ``phases`` (the phases it is known or assumed to use): counting it at 0 A would put
its draw into the non-EV load and pause other cars (for ``min_pause_s``) on every start. This
holds before fuseguard's first write too (a car found charging at the charge point's own limit
when fuseguard starts, its MeterValues not in yet): it is expected at the plug's minimum.

:func:`start_offer_a` is the other half of the start-up race (docs/safety.md, "Start window"):
a car offered current after a pause (its limit raised from below the plug's minimum) starts to
draw a few seconds after the offer is in force (its response, IEC 61851), and the charge point
says so later still (StatusNotification, MeterValues every 10-60 s). Within
:data:`START_WINDOW_S` of the offer taking effect, and while nothing was measured at the
charger since, the car may be drawing up to its offer unseen: the load estimator
(:meth:`~fuseguard.control.load.LoadEstimator.update`, ``starting``) attributes a rise of the
meter to such cars, at most their offers and never more than the meter shows, instead of
taking it for building load and pausing every car. A raise of a charging car not measured yet
(:class:`~fuseguard.control.policies.facts.PlugFacts` ``unconfirmed_a``) explains a rise with its
whole amount only while :func:`responding` (the same window); after it the car has answered the
raise, and the estimator lets it explain no more than it did (round 11). A write made while
nothing of ours is in force (the first) leaves the car under the charge point's own limit until
it takes effect: its window opens at the write, bounded by that limit (round 12).
"""

from __future__ import annotations

from fuseguard.control.writer import Setpoint
from fuseguard.model.phases import Phase, Phases
from fuseguard.model.samples import ChargerSample

DRAWING_A = 1.0
"""A phase that carried less than this in the measurement is not one the car draws on."""

START_WINDOW_S = 10.0
"""How long after an offer to a paused car takes effect a rise of the meter may be the car
starting (its response to the offer, up to 5 s by IEC 61851, plus the charge point's report)."""


def responding(*, now: float, changed_at: float, delay_s: float) -> bool:
    """A setpoint written at ``changed_at`` took effect (after ``delay_s``) at most
    :data:`START_WINDOW_S` ago, or not yet: a car may still be answering it unseen."""
    return now <= changed_at + delay_s + START_WINDOW_S


def expected_draw_a(
    *,
    sample: ChargerSample | None,
    grid_a: Phases,
    measured_at: float,
    now: float,
    setpoint: Setpoint,
    delay_s: float,
    margin_a: float,
    charging_since: float | None = None,
    phases: tuple[Phase, ...] = (),
    min_a: int = 0,
) -> Phases | None:
    """The draw to expect now per grid phase (None: the measurement ``grid_a`` stands)."""
    if sample is None or not sample.cp_state.charging:
        return None
    if charging_since is not None and measured_at < charging_since and grid_a.max < DRAWING_A:
        # started after its measurement (before fuseguard's first write too: at the charge
        # point's own limit): at the limit in force, at most the plug's minimum
        in_force = setpoint.limit_at(now, delay_s)
        start_a = float(min(in_force if in_force is not None else min_a, min_a))
        return Phases.on(phases, start_a) if start_a > 0 else None
    if setpoint.written_a is None:
        return None
    if measured_at >= setpoint.changed_at + delay_s:
        return None  # measured with the written setpoint in force
    in_force = setpoint.limit_at(now, delay_s)
    if in_force is None:
        return None  # nothing of ours in force yet: the charger's own limit
    then = setpoint.limit_at(measured_at, delay_s)
    limit = float(in_force)
    if then is None or grid_a.max < then - margin_a:
        return grid_a.minimum(limit)  # it took less than offered: the same, within the limit
    return grid_a.map(lambda v: limit if v >= DRAWING_A else v)


def start_offer_a(
    *,
    sample: ChargerSample | None,
    measured_at: float,
    now: float,
    setpoint: Setpoint,
    delay_s: float,
    counted_a: Phases,
    phases: tuple[Phase, ...],
    min_a: int,
    own_a: float,
) -> Phases | None:
    """What a car offered current after a pause may draw now beyond ``counted_a`` (what its
    reading counts), while its start is not measured yet (None: nothing; see the module
    docstring).

    Only within :data:`START_WINDOW_S` after a raise from below ``min_a`` took effect at the
    charger (the write plus ``delay_s``), for a connected car without errors whose last
    measurement is older than that moment (a car in state B is not measured drawing at all);
    at most the limit in force now, on ``phases``.

    A write made while nothing of ours was in force (the first write, or one that followed it
    within ``delay_s``) leaves the car under the charge point's own limit until it takes
    effect: the car may start at that limit at any moment, and the window opens at the write
    (round 12, the OCPP start-up stall). Its bound is ``own_a`` (the charge point's own limit
    as far as it is known: the plug's maximum) or the written value, whichever is higher, until
    :data:`START_WINDOW_S` after the write took effect (a car that started at the own limit
    answers a lower one within its response time), whatever the value written. This holds with
    ``delay_s`` 0 too (the first write only): a car found drawing at the own limit still takes
    its response time to come down to the first value written.
    """
    if sample is None or not sample.cp_state.vehicle_connected or sample.errors:
        return None
    changes = setpoint.changes
    if not changes:
        return None
    at, value = changes[-1]
    effective = at + delay_s
    # nothing of ours in force when it was written: no earlier write had taken effect by then
    # (the changes are in write order, so the oldest kept one is the first to take effect)
    own = len(changes) == 1 or changes[0][0] + delay_s > at
    if own:
        # the charge point's own limit until it is in force, and the car's answer after
        if not at <= now <= effective + START_WINDOW_S:
            return None
        bound = max(float(value), own_a)
    else:
        if value < min_a or (len(changes) >= 2 and changes[-2][1] >= min_a):
            return None  # not a raise from a pause
        if not effective <= now <= effective + START_WINDOW_S:
            return None
        bound = float(value)
    if sample.cp_state.charging and measured_at >= effective:
        return None  # measured since the offer took effect: the reading stands
    offer = Phases.on(phases, bound)
    extra = (offer - counted_a).maximum(0.0)
    return extra if extra.max > 0.0 else None


__all__ = ["DRAWING_A", "START_WINDOW_S", "expected_draw_a", "responding", "start_offer_a"]
