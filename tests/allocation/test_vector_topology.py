"""The NumPy path builds its entries once per topology: the answer with the set-up of the last
site reused equals the answer with it built afresh, across changes of phases, mode, circuit and
plug set (issue 18, round p6)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from fuseguard.allocation import vector_site
from fuseguard.allocation.snapshot import snapshot_from_data
from fuseguard.allocation.types import Snapshot
from fuseguard.allocation.vector import allocate_numpy
from fuseguard.model.phases import Phase
from fuseguard.model.status import ChargeMode

SNAPSHOT = Path(__file__).parent / "issue18_rounding.json"


def _variants() -> list[Snapshot]:
    base = snapshot_from_data(json.loads(SNAPSHOT.read_text()))
    plugs = base.plugs
    one_phase = replace(base, plugs=(replace(plugs[0], phases=(Phase.L3,)), *plugs[1:]))
    pv = replace(
        base, plugs=(*plugs[:-1], replace(plugs[-1], mode=ChargeMode.PV)), pv_surplus_w=5e3
    )
    moved = replace(base, plugs=(replace(plugs[0], circuit="c20"), *plugs[1:]))
    fewer = replace(base, plugs=plugs[1:])
    loaded = replace(
        base,
        circuits=(
            replace(base.circuits[0], limit_a=base.circuits[0].limit_a - 5.0),
            *base.circuits[1:],
        ),
    )
    return [base, one_phase, base, pv, moved, fewer, loaded, base]


@pytest.mark.parametrize("warm", [False, True])
def test_reused_set_up_gives_the_fresh_answer(warm: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    for snap in _variants():
        if warm:
            allocate_numpy(snap)  # the same topology seen just before
        got = allocate_numpy(snap)
        monkeypatch.setattr(vector_site, "_topology", None)
        fresh = allocate_numpy(snap)
        assert (got.setpoints, got.reasons, got.exact_a) == (
            fresh.setpoints,
            fresh.reasons,
            fresh.exact_a,
        )


def test_the_shared_arrays_are_read_only() -> None:
    snap = _variants()[0]
    first = vector_site.SiteArrays(snap)
    second = vector_site.SiteArrays(snap)
    assert second.e_row is first.e_row  # built once
    with pytest.raises(ValueError, match="read-only"):
        second.e_coef[0] = 2.0
