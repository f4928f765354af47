"""The positional constructions of round 16 build what the keyword ones built: the allocator's
``Plug`` from a ``PlugDemand`` (``AllocatorSession._plug``) and a plug's ``PlugDemand``
(``PlugControl.assess``) pass every field in its place, with the same values and types."""

from __future__ import annotations

import inspect
import math
import random
from dataclasses import fields
from datetime import UTC, datetime, timedelta, timezone

import pytest

from fuseguard.allocation.types import Plug
from fuseguard.control import plug as plug_module
from fuseguard.control.allocator import AllocatorSession
from fuseguard.control.targets import Target
from fuseguard.control.types import ChargerSpec, PlugDemand
from fuseguard.model.phases import Phase, Phases, Rotation
from fuseguard.model.status import ChargeMode, CpState

from . import doubles
from .doubles import config

SPECS = [
    ChargerSpec(id="cp1", priority=2, mode=ChargeMode.PV, min_a=8),
    ChargerSpec(id="cp2", min_a=6),
]
CFG = config(SPECS)


def keyword_plug(d: PlugDemand) -> Plug:
    """``AllocatorSession._plug`` before round 16, verbatim."""
    return Plug(
        id=d.spec.id,
        circuit=d.spec.circuit,
        phases=d.phases,
        max_a=d.max_a,
        min_a=d.spec.min_a,
        priority=d.priority,
        mode=d.mode,
        target_a=d.target_a,
        target_until=d.target_until.astimezone(UTC) if d.target_until else None,
        available=d.available,
        share_a=d.share_a,
        need_wh=d.need_wh,
        departure_s=d.departure_s,
        phases_known=d.phases_known,
        plan_rank=d.plan_rank,
        car_limit_a=d.car_limit_a,
        seen_max_a=d.seen_max_a,
    )


def random_demand(rng: random.Random) -> PlugDemand:
    maybe = lambda value: value if rng.random() < 0.5 else None  # noqa: E731
    tz = timezone(timedelta(hours=rng.choice([0, 2, -5])))
    return PlugDemand(
        spec=rng.choice(SPECS),
        available=rng.random() < 0.7,
        phases=rng.choice([(Phase.L1,), (Phase.L2, Phase.L3), (Phase.L1, Phase.L2, Phase.L3)]),
        max_a=rng.randint(6, 32),
        mode=rng.choice(list(ChargeMode)),
        priority=rng.randint(0, 3),
        target_a=maybe(rng.randint(0, 32)),
        target_until=maybe(datetime(2026, 6, 1, rng.randint(0, 23), tzinfo=tz)),
        share_a=maybe(rng.uniform(0.0, 32.0)),
        need_wh=maybe(rng.uniform(0.0, 40_000.0)),
        departure_s=maybe(rng.uniform(0.0, 36_000.0)),
        phases_known=rng.random() < 0.5,
        plan_rank=maybe(rng.randint(0, 5)),
        car_limit_a=maybe(rng.uniform(6.0, 32.0)),
        seen_max_a=maybe(float(rng.randint(0, 32))),
    )


def same_fields(a: object, b: object) -> None:
    assert type(a) is type(b)
    for f in fields(a):  # type: ignore[arg-type]
        x, y = getattr(a, f.name), getattr(b, f.name)
        assert type(x) is type(y), f.name
        assert x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y)), f.name


@pytest.mark.parametrize("seed", range(20))
def test_the_allocator_plug_is_the_keyword_one(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(50):
        d = random_demand(rng)
        same_fields(AllocatorSession(CFG)._plug(d), keyword_plug(d))


def test_the_hysteresis_fields_are_their_defaults() -> None:
    d = random_demand(random.Random(1))
    built = AllocatorSession(CFG)._plug(d)
    for name in ("setpoint_a", "running_s", "paused_s", "pv_timer_s"):
        default = next(f.default for f in fields(Plug) if f.name == name)
        assert getattr(built, name) is default


def test_the_demand_is_built_in_the_fields_order() -> None:
    """``assess`` passes PlugDemand's fields in this order (its comments name them): a moved
    or new field fails here before it could be passed in the wrong place."""
    source = inspect.getsource(plug_module.PlugControl.assess)
    call = source[source.index("demand = PlugDemand(") :]
    call = call[: call.index("\n            )")]
    named = [line.split("# ")[1].split(" ")[0] for line in call.splitlines()[1:]]
    assert named == [f.name for f in fields(PlugDemand)]


def test_the_demand_holds_each_value_in_its_field() -> None:
    """A charging car with a target, overrides and a departure: every field of its demand is
    the value meant for it (distinct values, so two fields swapped would show)."""
    p = doubles.plug(rotation=Rotation.L3L1L2)
    h = doubles.handover()
    p.reading.update(doubles.charger_sample(CpState.C, Phases(16, 0, 0), max_current_a=20.0), 10.0)
    p.setpoint.written_a = 16
    p.assess(p.facts(10.0), h)
    p.reading.update(doubles.charger_sample(CpState.C, Phases(16, 0, 0), max_current_a=20.0), 70.0)
    until = datetime(2026, 1, 1, 12, tzinfo=UTC)
    a = p.assess(
        p.facts(70.0),
        h,
        Target(10, until),
        mode=ChargeMode.PV,
        priority=3,
        departure_s=3600.0,
        need_wh=9000.0,
    )
    d = a.demand
    assert d.spec is p.spec and d.available is True
    assert (d.phases, d.max_a) == ((Phase.L3,), 20)
    assert (d.mode, d.priority, d.target_a, d.target_until) == (ChargeMode.PV, 3, 10, until)
    assert d.share_a == p.session.share_a(70.0) == pytest.approx(16.0)
    assert d.need_wh == 9000.0 - p.session.delivered_wh
    assert d.departure_s == 3600.0
    assert d.plan_rank is None
    assert (d.phases_known, d.car_limit_a, d.seen_max_a) == (
        p.phases.known,
        p.demand.car_limit_a,
        p.demand.seen_max_a,
    )
    assert d.seen_max_a == 16.0 and d.phases_known is True
