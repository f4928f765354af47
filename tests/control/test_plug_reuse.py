"""A plug reuses its policy verdicts only where running the policies would give the same: random
walks of samples, writes, faults and time through two plugs, one with the reuse, one without
(``PlugControl.reuse = False``, every policy every cycle), must agree on every assessment,
verdict, setpoint and policy state, cycle by cycle."""

from __future__ import annotations

import random
from typing import Any

import pytest

from fuseguard.control.plug import PlugControl
from fuseguard.control.policies.handover import BreakBeforeMake
from fuseguard.control.reading import ChargerReading
from fuseguard.control.types import ChargerSpec
from fuseguard.control.writer import Setpoint
from fuseguard.model.phases import Phases, Rotation
from fuseguard.model.status import ChargeMode, CpState

from .doubles import charger_sample, config

CURRENTS = (0.0, 0.4, 5.0, 6.0, 9.5, 10.0, 13.0, 16.0, 19.0)


def _pair(seed: int) -> tuple[PlugControl, PlugControl, Any]:
    rng = random.Random(seed)
    spec = ChargerSpec(
        id="cp1",
        max_a=rng.choice((16, 20, 32)),
        rotation=rng.choice(tuple(Rotation)),
        wired_phases=rng.choice((1, 3, 3)),
        limit_delay_s=rng.choice((0.0, 0.0, 4.0)),
    )
    cfg = config(
        [spec],
        stuck_after_s=4.0,
        idle_after_s=20.0,
        idle_reprobe_s=60.0,
        underuse_after_s=10.0,
        underuse_probe_s=50.0,
        decrease_grace_s=3.0,
        charger_timeout_s=8.0,
    )
    fast = PlugControl(spec, cfg, ChargerReading(spec, cfg), Setpoint())
    ref = PlugControl(spec, cfg, ChargerReading(spec, cfg), Setpoint())
    ref.reuse = False
    return fast, ref, cfg


def _sample(rng: random.Random) -> Any:
    cp = rng.choice((CpState.A, CpState.B, CpState.C, CpState.C, CpState.C))
    draw = rng.choice(CURRENTS) if cp is CpState.C else 0.0
    one = rng.random() < 0.3
    kw: dict[str, Any] = {}
    if rng.random() < 0.05:
        kw["errors"] = ("contactor_welded",)
    if rng.random() < 0.04:
        kw["uncontrollable"] = "rejects profiles"
    if rng.random() < 0.1:
        kw["measured_age_s"] = rng.choice((3.0, 30.0))
    if rng.random() < 0.1:
        kw["max_current_a"] = rng.choice((10.0, 13.0, 3.0))
    if rng.random() < 0.05:
        kw["authorized"] = False
    current = Phases(draw, 0.0, 0.0) if one else Phases.uniform(draw)
    return charger_sample(cp, current, power_w=current.total * 230.0, **kw)


def _state(p: PlugControl) -> tuple[object, ...]:
    return (
        p.stuck.stuck,
        p.idle.paused_until,
        p.idle.probing,
        p.demand.cap_a,
        p.phases.learned,
        p.phases.known,
        p.uncontrollable.reason,
        p.session.active,
        p.session.delivered_wh,
        p.ramp.raising_since,
    )


def _walk(seed: int, steps: int) -> int:
    """Drive both plugs through the same random walk; returns how often the reuse was taken."""
    rng = random.Random(seed)
    fast, ref, _ = _pair(seed)
    judged = {"n": 0}
    judge = fast._judge

    def counting(*args: Any) -> Any:
        judged["n"] += 1
        return judge(*args)

    fast._judge = counting  # type: ignore[method-assign]
    now = 0.0
    sample = _sample(rng)
    for _ in range(steps):
        now += rng.choice((0.5, 1.0, 1.0, 2.0, 2.0, 7.0, 45.0))
        roll = rng.random()
        if roll < 0.12:
            sample = _sample(rng)
        if roll < 0.85:  # read (the same sample again, or a new one); else silent
            for p in (fast, ref):
                p.reading.update(sample, now)
        if rng.random() < 0.1:
            value = rng.choice((0, 6, 8, 10, 16))
            for p in (fast, ref):
                sp = p.setpoint
                if sp.written_a != value:
                    sp.changed_at = now
                    sp.changes.append((now, value))
                sp.written_a, sp.written_at = value, now
        mode = rng.choice((None, None, ChargeMode.PV))
        allocated = rng.choice((0, 6, 10, 16))
        out = []
        for p in (fast, ref):
            h = BreakBeforeMake(margin_a=1.0, grace_s=3.0, evidence_s=1.0)
            h.begin()
            a = p.assess(p.facts(now), h, mode=mode)
            verdict = p.verdict(a.facts, allocated, "fair share", h)
            settled = p.settle(now, *verdict, h)
            out.append((a, h.decreasing, verdict, settled, _state(p)))
        assert out[0] == out[1], f"seed {seed} at {now}"
    return steps - judged["n"]


@pytest.mark.parametrize("seed", range(12))
def test_reused_verdicts_equal_the_policies_verdicts(seed: int) -> None:
    reused = _walk(seed, 1500)
    assert reused > 0  # the walk did take the shortcut (else it compared a path with itself)
