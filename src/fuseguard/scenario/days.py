"""A one-day scenario repeated over several days (``fuseguard simulate --days N``).

A site's settings are tuned over weeks of data, not one day: :func:`repeat_days` turns a scenario
whose timetable fits in one day (``site.duration_s`` <= 86 400 s) into one of ``days`` x 86 400 s
in which that day happens again every day. Day ``k`` (0-based) is the scenario's day shifted by
``k`` x 86 400 s:

* every car (a car that stays overnight departs the next morning; a car of day ``k`` and the
  next day's car at the same charger must not overlap) — cars named by ``id`` get ``@d<k>``
  appended from day 1 on, unnamed cars are named by charger and arrival time as always;
* every event (flex settings, keep-alive stop/start, targets, faults, base-load steps);
* the base-load points in [0, 86 400) s; between the last point of one day and the first of the
  next the load is linear, after the last day it is the profile's value at 86 400 s;
* the PV plant's clouds (the PV day itself already repeats every 86 400 s).
"""

from __future__ import annotations

from fuseguard.scenario.config import CarSpec, EventSpec, Scenario, ScenarioError, parse_scenario
from fuseguard.sim.site import PiecewiseLinear

DAY_S = 86_400.0


def _cars(sc: Scenario, days: int, day_s: float) -> list[CarSpec]:
    cars: list[CarSpec] = []
    for k in range(days):
        shift = k * day_s
        for car in sc.cars:
            cid = car.id if car.id is None or k == 0 else f"{car.id}@d{k}"
            cars.append(
                car.model_copy(
                    update={
                        "arrive_s": car.arrive_s + shift,
                        "depart_s": car.depart_s + shift,
                        "id": cid,
                    }
                )
            )
    return cars


def _events(sc: Scenario, days: int, day_s: float) -> list[EventSpec]:
    return [
        ev.model_copy(update={"at_s": ev.at_s + k * day_s}) for k in range(days) for ev in sc.events
    ]


def _base_points(
    sc: Scenario, days: int, day_s: float
) -> list[tuple[float, tuple[float, float, float]]]:
    points = [(t, v) for t, v in sc.base_load.points if 0.0 <= t < day_s]
    end = PiecewiseLinear(sc.base_load.profile())(day_s)
    repeated = [(t + k * day_s, v) for k in range(days) for t, v in points]
    repeated.append((days * day_s, (end.l1, end.l2, end.l3)))
    return repeated


def repeat_days(sc: Scenario, days: int, *, day_s: float = DAY_S) -> Scenario:
    """``sc``'s day ``days`` times in a row (see the module docstring).

    ``day_s``: the length of the repeated "day" (86 400 s; a shorter one only for tests of the
    day jumps, and never with a PV plant, whose day is 86 400 s).

    Raises :class:`ScenarioError` when ``days`` < 1, when the scenario is longer than a day, or
    when a car of one day would still be plugged in when the next day's car arrives.
    """
    if days < 1:
        msg = f"--days must be at least 1, got {days}"
        raise ScenarioError(msg)
    if day_s != DAY_S and sc.pv is not None:
        msg = f"a PV plant's day is {DAY_S:g} s; cannot repeat a {day_s:g} s day"
        raise ScenarioError(msg)
    if sc.site.duration_s > day_s:
        msg = (
            f"--days repeats a scenario of at most one day; this one lasts {sc.site.duration_s:g} s"
        )
        raise ScenarioError(msg)
    data = sc.model_dump(mode="python")
    data["site"]["duration_s"] = days * day_s
    data["base_load"]["points"] = _base_points(sc, days, day_s)
    data["cars"] = [car.model_dump(mode="python") for car in _cars(sc, days, day_s)]
    data["events"] = [ev.model_dump(mode="python") for ev in _events(sc, days, day_s)]
    if sc.pv is not None:
        data["pv"]["clouds"] = [
            (start + k * DAY_S, end + k * DAY_S, factor)
            for k in range(days)
            for start, end, factor in sc.pv.clouds
        ]
    name = sc.site.name or "scenario"
    data["site"]["name"] = f"{name} x {days} days" if days > 1 else name
    out = parse_scenario(data, source=f"{name} repeated over {days} days")
    out._repeat_day_s = day_s if days > 1 else None
    return out


__all__ = ["DAY_S", "repeat_days"]
