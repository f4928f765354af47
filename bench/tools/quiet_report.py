"""Tables from a ``quiet_study.py run`` record (see ``quiet_study.py``; round 18 "quiet")."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from typing import Any

#: fields of a recorded decision (``quiet_study.Decision`` as a tuple)
T, BETWEEN, DECIDE, BITS, CAUSE, CARS, NON_EV, VWRITES, REWRITES, HORIZON, STRICT = range(11)
THRESHOLDS_S = (5, 10, 30, 60)
BUCKETS_S = (2, 5, 10, 30, 60, 300, 1800, math.inf)


def stretches(dec: list[Any], key: int = BITS) -> list[tuple[int, int]]:
    """Quiet stretches as (index of the change before, index of the change after): the
    decisions strictly between are quiet (no observable change by ``key``: BITS with reasons'
    countdowns masked, STRICT without); the run's end closes the last."""
    changes = [i for i, d in enumerate(dec) if d[key] or i == 0] + [len(dec) - 1]
    return [(a, b) for a, b in itertools.pairwise(changes) if b > a + 1]


def length_s(dec: list[Any], a: int, b: int) -> float:
    return float(dec[b][T] - dec[a][T])


def chunk(d: Any) -> float:
    return float(d[BETWEEN] + d[DECIDE])


def report(data: dict[str, Any]) -> None:
    dec = data["decisions"]
    n = len(dec)
    total = sum(chunk(d) for d in dec)
    decide = sum(d[DECIDE] for d in dec)
    changed = [d for d in dec if d[BITS]]
    print(f"## {data['scenario']} ({data['duration_s']:.0f} s virtual, jumped {data['jumped_s']})")
    print(
        f"decisions {n}; CPU recorded {total:.2f} s (decide {decide:.2f} s = "
        f"{decide / total:.0%}; process total incl. harness {data['cpu_total_s']:.1f} s, "
        f"of it sensitivity {data['sens_cpu_s']:.1f} s); energy {data['energy_wh']:.1f} Wh"
    )
    mean_q = _mean([chunk(d) for d in dec if not d[BITS]])
    mean_c = _mean([chunk(d) for d in changed])
    print(
        f"decisions with an observable change: {len(changed)} ({len(changed) / n:.1%}); "
        f"CPU per decision interval: quiet {1e3 * mean_q:.2f} ms, changing {1e3 * mean_c:.2f} ms"
    )
    bits = Counter()
    for d in changed:
        for name, bit in (("decided", 1), ("written", 2), ("status", 4), ("allocation", 8)):
            if d[BITS] & bit:
                bits[name] += 1
    print("changed part (a decision may have several):", dict(bits))
    strict = sum(1 for d in dec if d[STRICT])
    print(f"strict (reasons as they are, a countdown counts): {strict} changing ({strict / n:.1%})")
    for key, label in ((BITS, "countdowns in reasons masked"), (STRICT, "strict")):
        print(f"\n### {label}")
        _histogram(dec, key)
        _enders(dec, key)
        _speedup(dec, total, key)
    _horizons(dec)
    _quantized(dec, total)
    _ramp_check(dec)
    walk = data.get("walk")
    if walk:
        _walk(walk)


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def _histogram(dec: list[Any], key: int) -> None:
    n = len(dec)
    rows: Counter[float] = Counter()
    inside: Counter[float] = Counter()
    for a, b in stretches(dec, key):
        ln = length_s(dec, a, b)
        top = next(x for x in BUCKETS_S if ln < x)
        rows[top] += 1
        inside[top] += b - a - 1
    print("\n| quiet stretch (s between two changes) | stretches | quiet decisions in them |")
    print("|---|---:|---:|")
    lo = 0.0
    for top in BUCKETS_S:
        print(f"| [{lo:g}, {top:g}) | {rows[top]} | {inside[top]} ({inside[top] / n:.1%}) |")
        lo = top
    for with_cars in (None, True, False):
        parts = []
        sel = [i for i, d in enumerate(dec) if with_cars is None or (d[CARS] > 0) == with_cars]
        m = max(1, len(sel))
        for th in THRESHOLDS_S:
            k = sum(
                1
                for a, b in stretches(dec, key)
                if length_s(dec, a, b) >= th
                for i in range(a + 1, b)
                if with_cars is None or (dec[i][CARS] > 0) == with_cars
            )
            parts.append(f">= {th} s: {k / m:.1%}")
        label = {None: "all", True: "cars plugged in", False: "no car"}[with_cars]
        print(
            f"share of decisions in stretches ({label}, {len(sel)} decisions): " + ", ".join(parts)
        )


def _enders(dec: list[Any], key: int) -> None:
    ends: dict[int, Counter[str]] = {th: Counter() for th in (0, *THRESHOLDS_S)}
    for a, b in stretches(dec, key):
        ln = length_s(dec, a, b)
        cause = dec[b][CAUSE] or "end of run"
        for th, counts in ends.items():
            if ln >= th:
                counts[cause] += 1
    every = Counter(d[CAUSE] for d in dec if d[key])
    print("\n| what ended the stretch | any length | >= 5 s | >= 10 s | >= 30 s | >= 60 s |")
    print("|---|---:|---:|---:|---:|---:|")
    for cause, _k in ends[0].most_common():
        cells = " | ".join(str(ends[th][cause]) for th in (0, *THRESHOLDS_S))
        print(f"| {cause} | {cells} |")
    print("every changing decision by cause:", dict(every.most_common(12)))


def _speedup(dec: list[Any], total: float, key: int) -> None:
    """Remaining CPU if every stretch >= L were jumped (oracle: the jump lands on the change),
    keeping the first quiet decision (where the hint would be computed) and charging one mean
    decision interval per jump (the landing); and the same with each jump also cut at the ramp
    horizon computed at that first quiet decision."""
    mean = total / max(1, len(dec))
    print(
        "\n| L (s) | jumps | oracle: CPU left | speedup | of the skipped CPU: in stretches with "
        "cars | ramp-limited: CPU left | speedup | decisions skipped, ticks kept: speedup |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for th in (2, *THRESHOLDS_S):
        skipped = ramp_skipped = with_cars = decide_only = 0.0
        jumps = ramp_jumps = 0
        for a, b in stretches(dec, key):
            if length_s(dec, a, b) < th or b - a < 3:
                continue
            first = dec[a + 1]
            jumps += 1
            part = sum(chunk(dec[i]) for i in range(a + 2, b))
            skipped += part
            decide_only += sum(dec[i][DECIDE] for i in range(a + 2, b))
            if any(dec[i][CARS] for i in range(a + 1, b)):
                with_cars += part
            h = first[HORIZON]
            until = first[T] + (h if h is not None else 0.0)
            cut = [chunk(dec[i]) for i in range(a + 2, b) if dec[i][T] < until]
            if cut:
                ramp_jumps += 1
                ramp_skipped += sum(cut)
        left = total - skipped + jumps * mean
        rleft = total - ramp_skipped + ramp_jumps * mean
        print(
            f"| {th} | {jumps} | {left:.2f} s | {total / left:.2f}x "
            f"| {with_cars / max(skipped, 1e-9):.0%} | "
            + (f"{rleft:.2f} s | {total / rleft:.2f}x" if key == BITS else "n/a | n/a")
            + f" | {total / (total - decide_only):.2f}x |"
        )


def _horizons(dec: list[Any]) -> None:
    print("\n| ramp horizon (s until a setpoint moves) | all sampled | with cars | no car |")
    print("|---|---:|---:|---:|")
    sampled = [d for d in dec if d[HORIZON] is not None]
    groups = (sampled, [d for d in sampled if d[CARS]], [d for d in sampled if not d[CARS]])
    edges = (1, 2, 5, 10, 30, 60, 300, 1800, math.inf)
    lo = 0.0
    for top in (*edges, None):
        cells = []
        for g in groups:
            if top is None:
                k = sum(1 for d in g if math.isinf(d[HORIZON]))
            else:
                k = sum(1 for d in g if lo <= d[HORIZON] < top)
            cells.append(f"{k} ({k / max(1, len(g)):.0%})")
        label = "no change within segment / 4096 s" if top is None else f"[{lo:g}, {top:g})"
        print(f"| {label} | " + " | ".join(cells) + " |")
        if top is not None:
            lo = top
    fin = sorted(d[HORIZON] for d in groups[1] if not math.isinf(d[HORIZON]))
    if fin:
        q = [fin[int(p * (len(fin) - 1))] for p in (0.1, 0.5, 0.9)]
        print(f"with cars, finite horizons: p10 {q[0]:g} s, median {q[1]:g} s, p90 {q[2]:g} s")


NOISE = ("_waiters", ".coro", "callbacks", "_fut_waiter", "<locals>")


def _walk(walk: dict[str, Any]) -> None:
    print(
        f"\nstate walk: two consecutive quiet decisions at {walk['t_s']:g} s "
        f"(+{walk['shift_s']:g} s)"
    )
    print("| path (controller = run.flex._listeners[0].__self__) | kind | count | example |")
    print("|---|---|---:|---|")
    for path, kind, count, example in walk["groups"]:
        if any(x in path for x in NOISE):
            continue
        p = path.replace("run.flex._listeners[*].__self__", "controller")
        ex = example.replace("run.flex._listeners[0].__self__", "controller")
        print(f"| {p} | {kind} | {count} | {ex[-110:]} |")


def _ramp_check(dec: list[Any]) -> None:
    """For the stretches a ramp crossing ended: the horizon computed at their first quiet
    decision against when the crossing came (predicted end - real end)."""
    early = hit = late = none = 0
    errs: list[float] = []
    for a, b in stretches(dec):
        if not dec[b][CAUSE].startswith("non-EV ramp") or b - a < 2:
            continue
        first = dec[a + 1]
        if first[HORIZON] is None or math.isinf(first[HORIZON]):
            none += 1
            continue
        err = first[T] + first[HORIZON] - dec[b][T]
        errs.append(err)
        if abs(err) <= 2.0:
            hit += 1
        elif err < 0:
            early += 1
        else:
            late += 1
    print(
        f"\nstretches ended by a ramp crossing: predicted within 2 s {hit}, predicted earlier "
        f"(conservative) {early}, predicted later (missed) {late}, no finite horizon {none}"
    )
    if errs:
        errs.sort()
        print(
            f"  predicted - real end: min {errs[0]:g} s, median {errs[len(errs) // 2]:g} s, "
            f"max {errs[-1]:g} s"
        )


def _quantized(dec: list[Any], total: float) -> None:
    """The oracle with jumps of whole periods P only (a jump that moves every pending timer by
    k x P keeps the schedule's phases; the rest of a stretch runs tick by tick)."""
    mean = total / max(1, len(dec))
    cells = []
    for period in (1.0, 10.0, 20.0, 60.0):
        skipped, jumps = 0.0, 0
        for a, b in stretches(dec):
            start = dec[a + 1][T] if b - a >= 2 else dec[a][T]
            span = math.floor((dec[b][T] - start) / period) * period
            cut = [chunk(dec[i]) for i in range(a + 2, b) if dec[i][T] < start + span]
            if cut:
                jumps += 1
                skipped += sum(cut)
        left = total - skipped + jumps * mean
        cells.append(f"P = {period:g} s: {total / left:.2f}x")
    print("\noracle with jumps of whole periods only (countdowns masked): " + ", ".join(cells))
