"""Smoke test of the quiet-stretch study harness (``bench/tools/quiet_study.py``, round 18).

A short piece of a library scenario run through the harness in this process: a car's arrival
is seen as a car event that ends a quiet stretch, the ramp horizon and the state walk are
recorded, and the report renders; plus the two helpers its figures rest on (the stretches
between changes, the countdown mask).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from types import ModuleType

import pytest

from tests.benchkit import load_bench


def _load(stem: str) -> ModuleType:
    return load_bench(stem, "tools")  # quiet_study imports quiet_report as a sibling


def test_stretches_lie_between_changes_and_the_run_end_closes_the_last() -> None:
    rep = _load("quiet_report")
    # (t, between, decide, bits, ...): changes at indices 0 (the first), 3 and 4; 7 the end
    bits = [0, 0, 0, 1, 8, 0, 0, 0]
    dec = [(float(i), 0.0, 0.0, b, "", 0, (0.0,) * 3, 0, 0, None, b) for i, b in enumerate(bits)]
    assert rep.stretches(dec) == [(0, 3), (4, 7)]
    assert rep.length_s(dec, 4, 7) == 3.0


def test_the_mask_hides_countdowns_not_names_or_amps() -> None:
    qs = _load("quiet_study")
    reason = "paused: less than 6 A available on circuit row2 on L1, waiting 904 s"
    assert qs._mask(reason) == "paused: less than 6 A available on circuit row2 on L1, waiting N"
    assert qs._mask("car takes no current (full?): offered again in 15 min") == (
        "car takes no current (full?): offered again in N"
    )


def test_a_short_run_records_the_arrival_the_horizon_and_the_walk(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fuseguard.allocation.session import AllocationSession
    from fuseguard.control.controller import Controller
    from fuseguard.control.writer import Writer

    qs = _load("quiet_study")
    out = tmp_path / "single.pkl"
    patched = (Controller.decide, AllocationSession.step, Writer.write)
    qs.run("single_car", out, 900.0, stride=60, walk_at=700.0)
    # the monkeypatches are undone (other tests in this worker see the real classes)
    assert (Controller.decide, AllocationSession.step, Writer.write) == patched
    data = pickle.loads(out.read_bytes())
    dec = data["decisions"]
    assert len(dec) > 800  # one decision per 1 s meter period
    arrivals = [d for d in dec if d[4].startswith("car event A->B")]  # (t, ..., cause, ...)
    assert arrivals and 600.0 <= arrivals[0][0] <= 620.0
    assert any(d[9] is not None for d in dec)  # ramp horizons were computed
    walk = data["walk"]
    assert walk is not None and walk["t_s"] >= 700.0
    paths = {p for p, _kind, _n, _ex in walk["groups"]}
    assert any("session._amp_s" in p for p in paths)  # the charging car's integral moves
    _load("quiet_report").report(data)
    text = capsys.readouterr().out
    assert "what ended the stretch" in text and "oracle" in text
