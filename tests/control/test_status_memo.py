"""``ChargerReading.status`` remembers its last answer (round 15, a cheaper simulator tick): on
every step of random walks through samples, failures, offers and time (across the
recently-started window and the charger timeout) it answers what ``plug_status`` answers for
the reading as it is."""

from __future__ import annotations

import random

import pytest

from fuseguard.control.reading import ChargerReading, Failed
from fuseguard.control.types import ChargerSpec
from fuseguard.model.status import CpState, OcppState, PlugStatus, plug_status

from .doubles import charger_sample, config


def _fresh(r: ChargerReading, now: float, offered_a: int | None) -> PlugStatus:
    """What ``status`` computed before it remembered anything."""
    sample = r.sample
    since = r.charging_since
    return plug_status(
        online=r.online(now),
        cp=sample.cp_state if sample is not None else None,
        ocpp=sample.ocpp_state if sample is not None else None,
        offered_current_a=float(offered_a or 0),
        has_errors=bool(sample.errors) if sample is not None else False,
        charging_for_s=now - since if since is not None else None,
        recently_started_window_s=r._window_s,
    )


@pytest.mark.parametrize("seed", range(8))
def test_status_is_plug_status_of_the_reading_now(seed: int) -> None:
    rng = random.Random(seed)
    spec = ChargerSpec(id="cp1")
    r = ChargerReading(spec, config([spec], meter_period_s=1.0, charger_timeout_s=15.0))
    samples = [
        charger_sample(cp, ocpp_state=ocpp, errors=errors)
        for cp in CpState
        for ocpp in (None, OcppState.PREPARING, OcppState.FINISHING, OcppState.FAULTED)
        for errors in ((), ("E1",))
    ]
    now = 0.0
    offered: int | None = None
    seen: set[PlugStatus] = set()
    for _ in range(1500):
        action = rng.random()
        if action < 0.25:
            r.update(rng.choice(samples), now)
        elif action < 0.3:
            r.update(Failed("no answer"), now)
        elif action < 0.7 and r.sample is not None:
            r.update(r.sample, now)  # the same sample object again (a charger that did not move)
        now += rng.choice((0.5, 1.0, 1.0, 7.0, 7.0, 20.0, 59.5, 61.0))
        if rng.random() < 0.2:  # the offer changes now and then
            offered = rng.choice((None, 0, 6, 16))
        for _ in range(rng.choice((1, 2))):  # the same instant asked twice, too
            got = r.status(now, offered)
            assert got == _fresh(r, now, offered), (now, r.sample, offered)
            seen.add(got)
    assert PlugStatus.RECENTLY_STARTED_CHARGING in seen
    assert PlugStatus.CHARGING in seen
    assert PlugStatus.OFFLINE in seen
    assert PlugStatus.STARTING in seen


def test_the_recent_start_runs_out_with_the_same_sample() -> None:
    spec = ChargerSpec(id="cp1")
    r = ChargerReading(spec, config([spec], meter_period_s=1.0))
    sample = charger_sample(CpState.C)
    got = []
    for t in range(0, 70, 5):
        r.update(sample, float(t))  # the same object on every read: nothing else moves
        got.append(r.status(float(t), 16))
    assert got[:12] == [PlugStatus.RECENTLY_STARTED_CHARGING] * 12  # 0 .. 55 s
    assert got[12:] == [PlugStatus.CHARGING] * 2  # 60, 65 s
