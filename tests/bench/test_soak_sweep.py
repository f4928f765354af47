"""``bench/soak_sweep.py``: the seed list and what a sweep reports (a fake soak run)."""

from __future__ import annotations

from typing import Any

from ..benchkit import load_bench


def test_seed_ranges_are_inclusive_and_in_order() -> None:
    sw = load_bench("soak_sweep")
    assert sw.parse_seeds("17-20,25") == [17, 18, 19, 20, 25]
    assert sw.parse_seeds("3844") == [3844]


def test_a_sweep_lists_the_seeds_that_fail_the_overload_verdict() -> None:
    sw = load_bench("soak_sweep")

    def run(seed: int) -> dict[str, Any]:
        ticks = 3 if seed == 2 else 0
        overload = {
            "overload_ticks_outside": ticks,
            "max_overload_a_outside": 1.5 if ticks else 0.0,
            "outside_ticks_by_active_fault": {"meter:frozen": ticks} if ticks else {},
        }
        verdict = {"no_overload_beyond_first_meter_period": not ticks, "cloud_link_flapped": False}
        return {"overload_main": overload, "verdict": verdict}

    out = sw.sweep([1, 2, 3], run)
    assert sorted(out["seeds"]) == ["1", "2", "3"]
    assert out["failing"] == {
        "2": {"ticks_outside": 3, "max_a_outside": 1.5, "by_fault": {"meter:frozen": 3}}
    }
