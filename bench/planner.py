"""Solve time of the receding-horizon plan (allocation/horizon.py) at 20 and 200 cars.

    python bench/planner.py [--runs 20] [--exact] [--time-limit 1.0] [--append]
                            [--out bench/results/planner-solve.json]

Random office-like problems (seeded): 1/4 of the cars 1-phase on a random grid phase, the rest
3-phase; 16 or 32 A; 2/3 announce a departure (1-10 h) and a need (5-40 kWh); a main fuse with
a sub-circuit per 10 cars. Reports ms per solve (median, p95, max) per size, with the default
parameters (5 min steps for the first hour, then 15 min, 12 h horizon, 1 s time limit; the LP
relaxation, or ``--exact`` the MILP). A warm-up solve first: scipy's import is not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from fuseguard.allocation.horizon import HorizonCar, HorizonParams, PlanError, solve  # noqa: E402
from fuseguard.model.circuits import CircuitSpec, CircuitTree  # noqa: E402
from fuseguard.model.phases import Phase, Phases  # noqa: E402

ALL = (Phase.L1, Phase.L2, Phase.L3)


def problem(n: int, seed: int) -> tuple[list[HorizonCar], CircuitTree, dict[str, Phases]]:
    rng = random.Random(seed)
    n_sub = max(1, n // 10)
    specs = [CircuitSpec(id="main", parent=None, fuse_a=float(max(63, 8 * n)))]
    specs += [CircuitSpec(id=f"s{k}", parent="main", fuse_a=63.0) for k in range(n_sub)]
    tree = CircuitTree.of(specs)
    room = {"main": Phases.of([max(40.0, 6.0 * n) - rng.uniform(0, 20) for _ in range(3)])}
    room |= {f"s{k}": Phases.of([rng.uniform(30, 63) for _ in range(3)]) for k in range(n_sub)}
    cars = []
    for i in range(n):
        announced = rng.random() < 2 / 3
        cars.append(
            HorizonCar(
                id=f"c{i}",
                circuit=f"s{i % n_sub}",
                phases=(rng.choice(ALL),) if rng.random() < 0.25 else ALL,
                max_a=float(rng.choice([16, 32])),
                departure_s=rng.uniform(3600, 36000) if announced else None,
                need_wh=rng.uniform(5000, 40000) if announced else None,
            )
        )
    return cars, tree, room


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--sizes", type=int, nargs="+", default=[20, 200])
    ap.add_argument("--out", default=str(ROOT / "bench/results/planner-solve.json"))
    ap.add_argument("--exact", action="store_true", help="the MILP (default: LP relaxation)")
    ap.add_argument("--append", action="store_true", help="add to the runs in --out")
    ap.add_argument("--time-limit", type=float, default=1.0, help="solver time limit (s)")
    args = ap.parse_args()
    params = HorizonParams(exact=args.exact, time_limit_s=args.time_limit)
    cars, tree, room = problem(5, seed=99)
    solve(cars, tree, room, params)  # warm-up: scipy's import is not a solve
    rows = []
    for n in args.sizes:
        ms: list[float] = []
        statuses: dict[str, int] = {}
        for run in range(args.runs):
            cars, tree, room = problem(n, seed=run)
            t0 = time.perf_counter()
            try:
                status = solve(cars, tree, room, params).status
            except PlanError:
                status = "failed: no plan within the time limit"
            ms.append((time.perf_counter() - t0) * 1000.0)
            statuses[status] = statuses.get(status, 0) + 1
        ms.sort()
        row = {
            "cars": n,
            "runs": args.runs,
            "median_ms": round(statistics.median(ms), 1),
            "p95_ms": round(ms[min(len(ms) - 1, int(0.95 * len(ms)))], 1),
            "max_ms": round(ms[-1], 1),
            "statuses": statuses,
        }
        rows.append(row)
        print(row, flush=True)
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "load_avg_1m": round(os.getloadavg()[0], 1),
        "params": {
            "step_s": params.step_s,
            "horizon_s": params.horizon_s,
            "time_limit_s": params.time_limit_s,
            "exact": params.exact,
        },
    }
    out = Path(args.out)
    runs = json.loads(out.read_text())["runs"] if out.exists() and args.append else []
    runs.append({"meta": meta, "sizes": rows})
    out.write_text(json.dumps({"runs": runs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
