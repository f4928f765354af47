"""Allocation benchmark: our allocator vs the lexicographic max-min LP reference (scipy HiGHS).

Run: ``.venv/bin/python bench/allocation.py [--quick]``. Writes ``bench/results/allocation.json``
and the markdown fragment ``bench/results/allocation.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import time
from pathlib import Path

from fuseguard.allocation import Circuit, Plug, Snapshot, allocate
from fuseguard.allocation.engine import SMALL_SITE_PLUGS
from fuseguard.allocation.reference import reference_allocation
from fuseguard.model.phases import Phases, Rotation

RESULTS = Path(__file__).parent / "results"
TARGET_MS = {10: 0.2, 1000: 5.0, 10000: 50.0}


def build_site(n_plugs: int, seed: int) -> Snapshot:
    """A 3-level tree (main -> feeders -> distribution boards) with ``n_plugs`` plugs."""
    rng = random.Random(seed)
    n_feed = min(10, max(2, n_plugs // 5))
    n_board = min(10, max(1, n_plugs // (n_feed * 10)))
    circuits = [
        Circuit(
            "main",
            None,
            Phases.uniform(round(7.5 * n_plugs + 40)),
            Phases.of(rng.uniform(0, 30) for _ in range(3)),
        )
    ]
    boards: list[str] = []
    per_feed = n_plugs / n_feed
    per_board = per_feed / n_board
    for f in range(n_feed):
        fid = f"feeder{f}"
        circuits.append(
            Circuit(
                fid,
                "main",
                Phases.uniform(round(9 * per_feed + 16)),
                Phases.of(rng.uniform(0, 10) for _ in range(3)),
            )
        )
        for d in range(n_board):
            bid = f"{fid}.board{d}"
            circuits.append(
                Circuit(
                    bid,
                    fid,
                    Phases.uniform(round(rng.uniform(8, 14) * per_board + 10)),
                    Phases.of(rng.uniform(0, 3) for _ in range(3)),
                )
            )
            boards.append(bid)
    plugs = []
    for i in range(n_plugs):
        rot = rng.choice(list(Rotation))
        plugs.append(
            Plug(
                id=f"cp{i:05d}",
                circuit=boards[i % len(boards)],
                phases=rot.grid_phases(rng.choice((1, 1, 2, 3, 3, 3))),
                max_a=rng.choice((16, 16, 20, 32)),
                priority=rng.choice((0, 0, 0, 1)),
            )
        )
    return Snapshot(circuits=tuple(circuits), plugs=tuple(plugs))


def _median_ms(fn: object, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def run(sizes: list[int], quick: bool) -> list[dict[str, float | int | str]]:
    rows: list[dict[str, float | int | str]] = []
    for n in sizes:
        snap = build_site(n, seed=n)
        alloc = allocate(snap)  # warm-up and the running set
        running = [pid for pid, sp in alloc.setpoints.items() if sp > 0]
        alloc_rep = 501 if n <= 10 else (101 if n <= 1000 else 21)
        lp_rep = 5 if n <= 100 else (3 if n <= 1000 else 1)
        if quick:
            alloc_rep, lp_rep = max(3, alloc_rep // 5), 1
        alloc_ms = _median_ms(lambda s=snap: allocate(s), alloc_rep)
        ref: dict[str, float] = {}

        def lp(s: Snapshot = snap, r: list[str] = running, out: dict[str, float] = ref) -> None:
            out.update(reference_allocation(s, r))

        lp_ms = _median_ms(lp, lp_rep)
        max_diff = max(abs(alloc.exact_a[k] - ref[k]) for k in alloc.exact_a)
        row: dict[str, float | int | str] = {
            "plugs": n,
            "running": len(running),
            "alloc_ms": round(alloc_ms, 4),
            "lp_ms": round(lp_ms, 2),
            "speedup": round(lp_ms / alloc_ms, 1),
            "max_diff_a": max_diff,
            "alloc_repeats": alloc_rep,
            "lp_repeats": lp_rep,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def write_markdown(rows: list[dict[str, float | int | str]]) -> str:
    lines = [
        "### Allocation (`bench/allocation.py`)",
        "",
        "3-level trees (main, feeders, boards), random rotations and 1/2/3-phase cars,",
        "two priority levels. `alloc` = `fuseguard.allocation.allocate` on the whole",
        "snapshot (median);",
        "`LP` = lexicographic max-min fair allocation as a sequence of",
        "`scipy.optimize.linprog` (HiGHS) LPs on the same running set (median; fewer repeats",
        "at large sizes).",
        f"Machine: {platform.machine()}, Python {platform.python_version()}.",
        "",
        f"Sites up to {SMALL_SITE_PLUGS} plugs take the pure-Python path, larger ones the NumPy",
        "path (same algorithm, bit-identical results; see `docs/allocation.md`).",
        "",
        "| plugs | running | alloc ms | target ms | LP ms (repeats) | speedup | max diff A |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        n = int(r["plugs"])
        target = TARGET_MS.get(n)
        lines.append(
            f"| {n} | {r['running']} | {float(r['alloc_ms']):.3f} | "
            f"{'' if target is None else target} | {float(r['lp_ms']):.1f} ({r['lp_repeats']}) | "
            f"{float(r['speedup']):.0f}x | {float(r['max_diff_a']):.1e} |"
        )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    met = [
        int(r["plugs"])
        for r in rows
        if float(r["alloc_ms"]) <= TARGET_MS.get(int(r["plugs"]), float("inf"))
        and float(r["speedup"]) >= 10
    ]
    missed = [int(r["plugs"]) for r in rows if int(r["plugs"]) not in met]
    lines += [
        "",
        f"Load average at the end of the run: {load:.1f} (shared machine). Time and speedup "
        f"targets met for {', '.join(map(str, met)) or 'none'} plugs"
        + (f"; missed for {', '.join(map(str, missed))}." if missed else "."),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, skip 10 000 plugs")
    args = parser.parse_args()
    sizes = [10, 100, 1000] if args.quick else [10, 100, 1000, 10000]
    rows = run(sizes, args.quick)
    bad = [r for r in rows if float(r["max_diff_a"]) > 0.01]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "allocation.json").write_text(json.dumps(rows, indent=2) + "\n")
    (RESULTS / "allocation.md").write_text(write_markdown(rows))
    if bad:
        raise SystemExit(f"allocator and LP disagree by more than 0.01 A: {bad}")


if __name__ == "__main__":
    main()
