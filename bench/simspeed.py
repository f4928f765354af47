"""Simulator speed: CPU seconds of ``fuseguard simulate`` per scenario (issue 18, item 2).

    python bench/simspeed.py [--only office_20_chargers_24h depot_200_chargers] [--profile 7200]
    python bench/simspeed.py --baseline-src /tmp/base/src [--days 2]

Each scenario runs in its own process under the fuseguard policy (no offline-optimum LP, no
timeline); the figure is the process CPU time of the run (``time.process_time``), not wall time,
because the machine is shared. Writes ``bench/results/simspeed.json`` (per scenario: CPU s, the
load average before and after, the report's energy/overload/fairness numbers so two builds can be
compared for identical results). ``--profile S`` instead profiles the first ``S`` virtual seconds
of the first scenario with cProfile and prints the 40 most expensive fuseguard functions.
``--decisions S`` counts, over the first ``S`` virtual seconds (0: the whole scenario), the
decisions that hand on the same setpoints and reasons as the one before and those with no car
plugged in: the most a skip of unchanged decisions could save (``bench/notes/simspeed.md``).

``--baseline-src DIR`` runs every scenario twice in a row, first with the fuseguard sources in
``DIR`` (e.g. ``git archive <commit> src | tar -x -C /tmp/base``), then with this tree's, and
records both CPU times, their ratio and whether the compared report fields are identical: a
before/after in one run, under the same load. ``--days N`` repeats each scenario's day N times
(``fuseguard simulate --days``; the scenario must last at most a day). ``--only all`` runs every
scenario of ``scenarios/``. Each row also records ``jumped_s``: the virtual seconds the run
jumped over (``fuseguard.scenario.jump``; None for a build without jumps).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ("office_20_chargers_24h", "depot_200_chargers", "apartment_garage")
#: every scenario of the library (``--only all``)
ALL = tuple(sorted(p.stem for p in (ROOT / "scenarios").glob("*.toml")))
#: Report fields that must be identical between two builds of the simulator.
COMPARED = (
    "energy_delivered_wh",
    "unmet_wh",
    "overload_as",
    "max_overshoot_a",
    "jain_fairness",
    "pause_resume_cycles",
    "reaction_s",
)


def _use_src(src: str | None) -> None:
    """Import fuseguard from ``src`` in this (fresh) worker process."""
    if src is not None:
        sys.path.insert(0, src)


def _load(name: str, duration_s: float | None = None, days: int | None = None) -> Any:
    from fuseguard.scenario.config import load_scenario

    sc = load_scenario(ROOT / "scenarios" / f"{name}.toml")
    if days is not None:
        from fuseguard.scenario.days import repeat_days

        sc = repeat_days(sc, days)
    if duration_s is not None:
        site = sc.site.model_copy(update={"duration_s": duration_s})
        sc = sc.model_copy(update={"site": site})
    return sc


def _run(name: str, days: int | None = None, duration_s: float | None = None) -> dict[str, Any]:
    import fuseguard
    from fuseguard.logging import configure_logging
    from fuseguard.scenario.runner import simulate

    configure_logging(level="error")
    sc = _load(name, duration_s, days)
    load0 = os.getloadavg()[0]
    t0 = time.process_time()
    result = simulate(sc, "fuseguard", compute_optimum=False, keep_timeline=False)
    cpu_s = time.process_time() - t0
    report = result.report
    return {
        "scenario": name,
        "days": days,
        "src": str(Path(fuseguard.__file__).parents[1]),
        "cpu_s": round(cpu_s, 2),
        "load_avg": [round(load0, 2), round(os.getloadavg()[0], 2)],
        "report": {k: report.get(k) for k in COMPARED},
        # virtual seconds jumped over (scenario/jump.py; None: a build without jumps)
        "jumped_s": getattr(result, "jumped_s", None),
        "duration_s": sc.site.duration_s,
    }


def _profile(name: str, duration_s: float) -> None:
    import cProfile
    import pstats

    from fuseguard.logging import configure_logging
    from fuseguard.scenario.runner import simulate

    configure_logging(level="error")
    sc = _load(name, duration_s)
    prof = cProfile.Profile()
    prof.enable()
    simulate(sc, "fuseguard", compute_optimum=False, keep_timeline=False)
    prof.disable()
    pstats.Stats(prof).sort_stats("cumtime").print_stats(r"fuseguard", 40)


def _decision_stats(name: str, duration_s: float | None) -> None:
    """How many decisions hand on the same setpoints and reasons as the one before, and how many
    see no car plugged in: the most a skip of unchanged decisions could save."""
    from fuseguard.control.controller import Controller
    from fuseguard.logging import configure_logging
    from fuseguard.scenario.runner import simulate

    configure_logging(level="error")
    counts = {"decisions": 0, "unchanged": 0, "no_car": 0}
    last: dict[int, tuple[tuple[str, int, str], ...]] = {}
    decide = Controller.decide

    def counting(self: Controller) -> None:
        decide(self)
        writer, plugs = self._writer, self._plugs
        out = tuple((pid, writer[pid].setpoint_a, writer[pid].reason) for pid in plugs)
        counts["decisions"] += 1
        counts["unchanged"] += last.get(id(self)) == out
        last[id(self)] = out
        samples = [p.reading.sample for p in plugs.values()]
        counts["no_car"] += all(s is None or not s.cp_state.vehicle_connected for s in samples)

    Controller.decide = counting  # type: ignore[method-assign]
    try:
        simulate(_load(name, duration_s), "fuseguard", compute_optimum=False, keep_timeline=False)
    finally:
        Controller.decide = decide  # type: ignore[method-assign]
    n = max(1, counts["decisions"])
    print(
        f"{name}: {counts['decisions']} decisions, unchanged {counts['unchanged'] / n:.1%}, "
        f"no car plugged in {counts['no_car'] / n:.1%}"
    )


def markdown(data: dict[str, Any]) -> str:
    """The table fragment of ``docs/benchmarks.md`` (``bench/results/simspeed.md``)."""
    meta = data["meta"]
    lines = [
        "### Simulator speed (`bench/simspeed.py`, issue 18 item 2)",
        "",
        f"Measured {meta['measured']}, {meta['machine']}, Python {meta['python']}; CPU seconds of",
        "`simulate(..., compute_optimum=False, keep_timeline=False)` (`time.process_time`).",
        "Targets: office (24 h, 20 chargers) <= 10 s, depot (6 h, 200 chargers) <= 20 s,",
        "`--days 30` of the apartment garage <= 180 s; reports identical to the reference.",
        "",
        "| scenario | days | before CPU s | CPU s | speedup | identical | jumped | load avg |",
        "|---|---:|---:|---:|---:|---|---:|---|",
    ]
    for r in data["runs"]:
        before = r.get("before_cpu_s")
        speedup = r.get("speedup")
        same = r.get("identical")
        load = " / ".join(
            "-".join(f"{v:g}" for v in pair)
            for pair in (r.get("before_load_avg"), r["load_avg"])
            if pair is not None
        )
        jumped = r.get("jumped_s")
        share = "–" if jumped is None else f"{100.0 * jumped / r['duration_s']:.0f} %"
        lines.append(
            f"| {r['scenario']} | {r.get('days') or '–'} | {'–' if before is None else before} "
            f"| {r['cpu_s']} | {'–' if speedup is None else f'{speedup:.2f}x'} "
            f"| {'–' if same is None else ('yes' if same else 'NO')} | {share} | {load} |"
        )
    if "before" in meta:
        lines += ["", f"Before: {meta['before']}; after: {meta.get('after', 'this tree')}."]
    return "\n".join(lines) + "\n"


def _in_worker(src: str | None, name: str, days: int | None) -> dict[str, Any]:
    """One run in a fresh process importing fuseguard from ``src`` (None: this tree)."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=1, mp_context=ctx, initializer=_use_src, initargs=(src,)
    ) as pool:
        return pool.submit(_run, name, days).result()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=list(DEFAULT))
    ap.add_argument("--profile", type=float, default=None, metavar="VIRTUAL_S")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "simspeed.json")
    ap.add_argument("--baseline-src", type=Path, default=None, metavar="DIR")
    ap.add_argument("--days", type=int, default=None)
    ap.add_argument("--decisions", type=float, default=None, metavar="VIRTUAL_S")
    args = ap.parse_args(argv)
    if args.only == ["all"]:
        args.only = list(ALL)
    if args.profile is not None:
        _profile(args.only[0], args.profile)
        return 0
    if args.decisions is not None:
        for name in args.only:
            _decision_stats(name, args.decisions or None)
        return 0
    rows = []
    for name in args.only:  # one at a time: two runs on two shared cores distort each other
        row = _in_worker(None, name, args.days)
        if args.baseline_src is not None:
            before = _in_worker(str(args.baseline_src), name, args.days)
            row["before_cpu_s"] = before["cpu_s"]
            row["before_load_avg"] = before["load_avg"]
            row["speedup"] = round(before["cpu_s"] / row["cpu_s"], 2) if row["cpu_s"] else None
            row["identical"] = before["report"] == row["report"]
            print(f"{name}: before {before['cpu_s']} s, identical: {row['identical']}")
        print(f"{name}: {row['cpu_s']} s CPU (load avg {row['load_avg']})")
        rows.append(row)
    meta = {
        "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    if args.baseline_src is not None:
        meta["before"] = f"the sources in {args.baseline_src}"
    data = {"meta": meta, "runs": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
