"""``model/fastinit.py``: the descriptor-storing ``__init__`` of the frozen slotted dataclasses
built per decision stores what the dataclass's own ``__init__`` stores, takes the same
parameters and keeps the class frozen."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from fuseguard.allocation.types import Allocation, Circuit, Plug, Snapshot
from fuseguard.control.types import PlugDemand
from fuseguard.model.fastinit import fast_init
from fuseguard.model.phases import Phase, Phases
from fuseguard.model.samples import ChargerSample, MeterSample
from fuseguard.model.status import CpState

FAST = (Phases, Circuit, Plug, Snapshot, Allocation, PlugDemand, MeterSample, ChargerSample)


def _reference(cls: type[Any]) -> type[Any]:
    """The same fields as ``cls`` in a class with dataclass's own generated ``__init__``."""
    fields = []
    for f in dataclasses.fields(cls):
        kw: dict[str, Any] = {"kw_only": f.kw_only}
        if f.default is not dataclasses.MISSING:
            kw["default"] = f.default
        if f.default_factory is not dataclasses.MISSING:
            kw["default_factory"] = f.default_factory
        fields.append((f.name, f.type, field(**kw)))
    return dataclasses.make_dataclass("Ref" + cls.__name__, fields, frozen=True, slots=True)


@pytest.mark.parametrize("cls", FAST, ids=lambda c: c.__name__)
def test_every_hot_class_has_the_fast_init(cls: type[Any]) -> None:
    code = cls.__init__.__code__
    assert "__setattr__" not in code.co_names  # not dataclass's object.__setattr__ one
    assert {f"_set_{f.name}" for f in dataclasses.fields(cls)} <= set(code.co_names)
    # the same signature as dataclass generates (names, kinds, defaults)
    ref = inspect.signature(_reference(cls).__init__)
    ours = inspect.signature(cls.__init__)
    assert [(p.name, p.kind) for p in ours.parameters.values()] == [
        (p.name, p.kind) for p in ref.parameters.values()
    ]
    for name, p in ours.parameters.items():
        if ref.parameters[name].default is inspect.Parameter.empty:
            assert p.default is inspect.Parameter.empty
        elif repr(ref.parameters[name].default) != "<factory>":
            assert p.default is ref.parameters[name].default


def test_the_stored_values_are_the_arguments_and_the_defaults() -> None:
    phases = (Phase.L1, Phase.L2)
    plug = Plug("cp1", "main", phases, 16, share_a=float("nan"), running_s=3.5)
    ref = _reference(Plug)("cp1", "main", phases, 16, share_a=plug.share_a)
    for f in dataclasses.fields(Plug):
        if f.name != "running_s":
            assert getattr(plug, f.name) is getattr(ref, f.name), f.name
    assert plug.running_s == 3.5
    assert Phases(1) == Phases(1.0, 0.0, 0.0)
    assert Phases(l3=2.0).as_tuple() == (0.0, 0.0, 2.0)
    at = datetime(2026, 1, 5, tzinfo=UTC)
    sample = MeterSample(timestamp=at, power_w=5.0)
    assert sample.current_a is None
    ref_sample = _reference(MeterSample)(timestamp=at, power_w=5.0)
    assert dataclasses.astuple(sample) == dataclasses.astuple(ref_sample)


def test_a_default_factory_makes_a_new_default_each_time() -> None:
    one = Snapshot((), ())
    two = Snapshot((), ())
    assert one.params == two.params
    assert one.params is not two.params
    ref = _reference(Snapshot)((), ())
    assert dataclasses.astuple(ref) == dataclasses.astuple(one)


def test_still_frozen_hashable_keyword_only_and_picklable() -> None:
    p = Phases(1.0, 2.0, 3.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.l1 = 5.0  # type: ignore[misc]
    assert hash(p) == hash(Phases(1.0, 2.0, 3.0))
    assert pickle.loads(pickle.dumps(p)) == p
    assert dataclasses.replace(p, l2=7.0) == Phases(1.0, 7.0, 3.0)
    with pytest.raises(TypeError):
        ChargerSample(CpState.A)  # type: ignore[misc]  # keyword-only, as the dataclass
    with pytest.raises(TypeError):
        Phases(1.0, 2.0, 3.0, 4.0)  # type: ignore[call-arg]


def test_a_class_it_cannot_serve_is_refused() -> None:
    @dataclass(slots=True)
    class NotFrozen:
        a: int

    @dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclass(frozen=True, slots=True)
    class PostInit:
        a: int

        def __post_init__(self) -> None:
            pass

    @dataclass(frozen=True, slots=True)
    class Derived:
        a: int
        b: int = field(init=False, default=0)

    for cls in (NotFrozen, NoSlots, PostInit, Derived):
        with pytest.raises(TypeError):
            fast_init(cls)
