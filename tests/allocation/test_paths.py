"""The pure-Python path for small sites and the NumPy path give the very same answer."""

from __future__ import annotations

import pytest
from alloc_strategies import snapshots
from hypothesis import given, settings

from fuseguard.allocation import Circuit, Plug, Snapshot, SnapshotError, allocate
from fuseguard.allocation.engine import SMALL_SITE_PLUGS, allocate_numpy
from fuseguard.allocation.small import allocate_small
from fuseguard.model.phases import ALL_PHASES, Phases


def _same(snap: Snapshot) -> None:
    py = allocate_small(snap)
    vec = allocate_numpy(snap)
    assert py.setpoints == vec.setpoints
    assert py.reasons == vec.reasons
    assert py.exact_a == vec.exact_a  # bit for bit: the same float operations in the same order
    assert py.pv_pending == vec.pv_pending
    assert py == vec


@given(snapshots(max_plugs=14))
def test_small_and_numpy_paths_agree(snap: Snapshot) -> None:
    _same(snap)


@given(snapshots(max_plugs=14, modes=False))
def test_small_and_numpy_paths_agree_without_modes(snap: Snapshot) -> None:
    _same(snap)


def test_allocate_dispatches_on_size() -> None:
    def site(n: int) -> Snapshot:
        plugs = tuple(Plug(f"p{i}", "main", ALL_PHASES, 16) for i in range(n))
        return Snapshot((Circuit("main", None, Phases.uniform(10 * n)),), plugs)

    for n in (0, 1, SMALL_SITE_PLUGS, SMALL_SITE_PLUGS + 1, 3 * SMALL_SITE_PLUGS):
        snap = site(n)
        assert allocate(snap) == allocate_small(snap) == allocate_numpy(snap)


@pytest.mark.parametrize(
    ("snap", "path"),
    [
        (Snapshot((), ()), "$.circuits"),
        (
            Snapshot((Circuit("main", None, Phases()), Circuit("main", None, Phases())), ()),
            "$.circuits[1].id",
        ),
        (
            Snapshot((Circuit("a", "b", Phases()), Circuit("b", "a", Phases())), ()),
            "$.circuits[0].parent",
        ),
        (Snapshot((Circuit("main", "x", Phases()),), ()), "$.circuits[0].parent"),
        (
            Snapshot((Circuit("main", None, Phases()),), (Plug("p", "garage", ALL_PHASES, 16),)),
            "$.plugs[0].circuit",
        ),
        (
            Snapshot(
                (Circuit("main", None, Phases()),),
                (Plug("p", "main", ALL_PHASES, 16), Plug("p", "main", ALL_PHASES, 16)),
            ),
            "$.plugs[1].id",
        ),
        (
            Snapshot(
                (Circuit("main", None, Phases()),),
                (Plug("p", "main", ALL_PHASES, 16), Plug("q", "main", (), 16)),
            ),
            "$.plugs[1].phases",
        ),
    ],
)
def test_both_paths_reject_bad_snapshots_alike(snap: Snapshot, path: str) -> None:
    for fn in (allocate_small, allocate_numpy):
        with pytest.raises(SnapshotError) as err:
            fn(snap)
        assert err.value.path == path


@settings(max_examples=30)
@given(snapshots(max_plugs=90))
def test_paths_agree_on_larger_sites(snap: Snapshot) -> None:
    """Sites above the small-site threshold, where :func:`allocate` takes the NumPy path."""
    _same(snap)
    assert allocate(snap) == allocate_small(snap)
