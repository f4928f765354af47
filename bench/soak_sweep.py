"""Many seeds of the short soak: which fail its verdicts, and by which fault (round 17).

Run: ``.venv/bin/python bench/soak_sweep.py --seeds 17-136 [--out NAME]``. Each seed is the soak
of ``tests/faults/test_soak.py`` (0.075 simulated days, every day's events within its first 80
minutes, every charger's first car within the first hour: faults overlap far more than in the
7-day ``bench/soak.py``), about 3 s of CPU. Writes ``bench/results/NAME.json`` (per seed: the
overload figures of :func:`soak.overload_outside_steps` and the verdicts) and prints the seeds
whose overload verdict failed, then those with ``uncontrollable_outside`` or
``slow_actuator_outside`` ticks (round 18: reported apart, not failed). Rounds 6-16 judged
seeds 1-16 and 3844 only; round 17's sweep of 17-136 found 33 failing (docs/benchmarks.md, Soak).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import soak

RESULTS = Path(__file__).resolve().parent / "results"
#: the short soak of tests/faults/test_soak.py
DAYS = 0.075
WITHIN = {"events_within_s": 4800.0, "first_car_within_s": 3600.0}


def parse_seeds(text: str) -> list[int]:
    """``"17-20,25"`` -> [17, 18, 19, 20, 25] (ranges inclusive, in the order given)."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        seeds.extend(range(int(lo), int(hi or lo) + 1))
    return seeds


def short_soak(seed: int) -> dict[str, Any]:
    """One seed of the short soak: its overload figures and verdicts."""
    r = soak.run_soak(DAYS, seed, memory_from_s=DAYS * soak.DAY_S / 4, **WITHIN)
    return {"overload_main": r["overload_main"], "verdict": soak.verdict(r)}


def sweep(seeds: list[int], run: Callable[[int], dict[str, Any]] = short_soak) -> dict[str, Any]:
    """Every seed through ``run``; the seeds whose overload verdict failed, with their figures."""
    per_seed: dict[str, Any] = {}
    for seed in seeds:
        t0 = time.process_time()
        per_seed[str(seed)] = {**run(seed), "cpu_s": round(time.process_time() - t0, 2)}
    failing = {
        s: {
            "ticks_outside": r["overload_main"]["overload_ticks_outside"],
            "max_a_outside": r["overload_main"]["max_overload_a_outside"],
            "by_fault": r["overload_main"]["outside_ticks_by_active_fault"],
        }
        for s, r in per_seed.items()
        if not r["verdict"]["no_overload_beyond_first_meter_period"]
    }
    # round 18: what no decision of fuseguard could change, reported apart (bench/soak_judge.py)
    apart = {
        key: {
            s: r["overload_main"][key]
            for s, r in per_seed.items()
            if r["overload_main"].get(key, {}).get("ticks")
        }
        for key in ("uncontrollable_outside", "slow_actuator_outside")
    }
    return {"days": DAYS, "within": WITHIN, "seeds": per_seed, "failing": failing, **apart}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", required=True, help="e.g. 17-136 or 1-16,3844")
    ap.add_argument("--out", default="soak-sweep", metavar="NAME")
    args = ap.parse_args(argv)
    out = sweep(parse_seeds(args.seeds))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(out, indent=1, default=str) + "\n")
    n, bad = len(out["seeds"]), out["failing"]
    sys.stdout.write(f"{len(bad)} of {n} seeds fail the overload verdict\n")
    for seed, f in bad.items():
        ticks, amps, by = f["ticks_outside"], f["max_a_outside"], f["by_fault"]
        sys.stdout.write(f"  seed {seed}: {ticks} ticks, {amps} A, {by}\n")
    for key in ("uncontrollable_outside", "slow_actuator_outside"):
        for seed, f in out[key].items():
            sys.stdout.write(
                f"  {key} seed {seed}: {f['ticks']} ticks, max {f['max_a']} A, "
                f"{f['a_s']} A s, {f.get('by_fault', '')}\n"
            )
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
