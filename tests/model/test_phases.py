import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuseguard.model.phases import Phase, Phases, Rotation, phases_from_names

finite = st.floats(min_value=-1000, max_value=1000, allow_nan=False)
triples = st.builds(Phases, finite, finite, finite)


def test_arithmetic_and_reductions() -> None:
    a = Phases(10, 5, 8)
    b = Phases(1, 2, 3)
    assert a + b == Phases(11, 7, 11)
    assert a - b == Phases(9, 3, 5)
    assert a * 2 == Phases(20, 10, 16)
    assert 2 * a == a * 2
    assert a.max == 10 and a.min == 5 and a.total == 23
    assert a.minimum(6) == Phases(6, 5, 6)
    assert a.maximum(b) == a
    assert a[Phase.L2] == 5 and a[2] == 8
    assert Phases.on([Phase.L1, Phase.L3], 16) == Phases(16, 0, 16)


def test_of_rejects_wrong_length() -> None:
    with pytest.raises(ValueError, match="expected 3"):
        Phases.of([1, 2])


def test_rotation_maps_terminals_to_grid() -> None:
    # charger wired L2L3L1: its L1 terminal sits on grid L2
    rot = Rotation.L2L3L1
    assert rot.grid_phases(1) == (Phase.L2,)
    assert rot.grid_phases(2) == (Phase.L2, Phase.L3)
    local = Phases(16, 0, 0)  # single-phase car on terminal L1
    assert rot.to_grid(local) == Phases(0, 16, 0)
    assert Rotation.L3L1L2.to_grid(local) == Phases(0, 0, 16)


@given(triples, st.sampled_from(list(Rotation)))
def test_rotation_round_trip(values: Phases, rot: Rotation) -> None:
    assert rot.to_local(rot.to_grid(values)) == values
    assert rot.to_grid(values).total == pytest.approx(values.total)


def test_phase_names() -> None:
    assert phases_from_names(["L1", "L3"]) == (Phase.L1, Phase.L3)
    with pytest.raises(ValueError, match="twice"):
        phases_from_names(["L1", "L1"])
    with pytest.raises(ValueError):
        phases_from_names(["L4"])
    with pytest.raises(ValueError, match="phase_count"):
        Rotation.L1L2L3.grid_phases(4)
