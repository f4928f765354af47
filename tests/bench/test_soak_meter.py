"""The soak's grid meter as a CEMM (``bench/soak_meter.py``) and ``bench/soak.py --phase-lock``.

A short soak (40 simulated minutes, no cloud link) with the CEMM-like meter: with the phase lock
the edge sees each telegram just after publication, with plain polling a fixed 130 ms later in
virtual time (it polls on the half-second grid, the meter publishes 370 ms after the tick); a
meter that stamps on arrival is polled plainly (two reads per second); every soak criterion but
memory growth (too short to judge) holds.
"""

from __future__ import annotations

from types import ModuleType

import pytest

from ..benchkit import load_bench

DAYS = 40 / 1440


def _soak() -> ModuleType:
    return load_bench("soak")


def _run(phase_lock: bool, meter: str) -> dict[str, object]:
    soak = _soak()
    r: dict[str, object] = soak.run_soak(
        DAYS, 3, memory_from_s=600.0, cloud=False, phase_lock=phase_lock, meter=meter
    )
    verdict = soak.verdict(r)
    del verdict["memory_growth_under_5_pct"]  # (too few car arrivals in 40 minutes to judge)
    assert all(verdict.values()), (verdict, r)
    return r


def test_quirks_parse_and_mixed_expands() -> None:
    meter = load_bench("soak_meter")
    assert meter.parse_quirks("none") == frozenset()
    assert meter.parse_quirks("mixed") == {"jitter", "late", "rephase", "clockjump"}
    assert meter.parse_quirks("cemm+late") == {"cemm", "late"}
    with pytest.raises(ValueError, match="unknown meter quirk"):
        meter.parse_quirks("cemm+wobbly")


@pytest.mark.timeout(300)
def test_the_lock_sees_telegrams_just_after_publication_plain_polling_does_not() -> None:
    locked = _run(True, "cemm")["meter"]
    plain = _run(False, "cemm")["meter"]
    assert isinstance(locked, dict) and isinstance(plain, dict)
    assert locked["telegrams"] >= 2000 and locked["stale_answers"] > 0
    assert locked["poll_wait_ms"]["p50"] <= 40, locked
    assert plain["poll_wait_ms"]["p50"] >= 100, plain
    # the lock costs few extra meter reads (a probe now and then)
    assert locked["reads"] <= 1.15 * plain["reads"], (locked, plain)


@pytest.mark.timeout(300)
def test_a_meter_stamping_on_arrival_is_polled_plainly() -> None:
    meter = _run(True, "arrival")["meter"]
    assert isinstance(meter, dict)
    assert meter["answers"] == 0  # (answers are counted for the CEMM-like telegrams only)
    assert abs(meter["reads"] - 2 * DAYS * 86400) <= 3
