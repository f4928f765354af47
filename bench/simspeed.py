"""Simulator speed: CPU seconds of ``fuseguard simulate`` per scenario (issue 18, item 2).

    python bench/simspeed.py [--only office_20_chargers_24h depot_200_chargers] [--profile 7200]
    python bench/simspeed.py --baseline-src /tmp/base/src [--days 2]

Each scenario runs in its own process under the fuseguard policy (no offline-optimum LP, no
timeline); the figure is the process CPU time of the run (``time.process_time``), not wall time,
because the machine is shared. Writes ``bench/results/simspeed.json`` (per scenario: CPU s, the
load average before and after, the report's energy/overload/fairness numbers so two builds can be
compared for identical results). ``--profile S [--profile-from T]`` instead profiles ``S``
virtual seconds of the first scenario from ``T`` (default 0) with cProfile and prints the CPU by
part of the run (decision, allocation, per-plug policies, poller, devices, writer, site tick,
recorder, event loop) and the 40 most expensive fuseguard functions.
``--decisions S`` counts, over the first ``S`` virtual seconds (0: the whole scenario), the
decisions that hand on the same setpoints and reasons as the one before and those with no car
plugged in: the most a skip of unchanged decisions could save (``bench/notes/simspeed.md``).
``--periodic N`` runs each scenario ``N`` days (``--days N``, every tick recorded) and says,
per pair of consecutive days, whether the second day's timeline is the first day's bit for bit
(the premise of a jump over whole days, ``bench/notes/simspeed.md``, round 7).
``--keep-last-day`` keeps this tree's day jumps out of the last day
(``DayJump.keep_last_day = True``, the round-7 rule; by default a jump may land in it, round 12).

``--baseline-src DIR`` runs every scenario twice in a row, first with the fuseguard sources in
``DIR`` (e.g. ``git archive <commit> src | tar -x -C /tmp/base``), then with this tree's, and
records both CPU times, their ratio and whether the compared report fields are identical: a
before/after in one run, under the same load. ``--days N`` repeats each scenario's day N times
(``fuseguard simulate --days``; the scenario must last at most a day). ``--only all`` runs every
scenario of ``scenarios/``. Each row also records ``jumped_s``: the virtual seconds the run
jumped over (``fuseguard.scenario.jump``; None for a build without jumps).

The machine's yardstick: every run also times :func:`yardstick` (a fixed pure-Python workload of
the kind the simulator does: small frozen dataclasses, float arithmetic, dict and heap
operations; it never imports fuseguard and must never change) in a fresh process, the best of
``YARDSTICK_ROUNDS``, and records ``yardstick_cpu_s`` in ``meta`` and, per row,
``cpu_per_yardstick`` (CPU s / yardstick CPU s): the same build's figures from machines of
different speed become comparable (2026-12-01: the same garage month took 171.7 s of CPU on
round 12's machine and 339.2 s on round 13's, reports identical; ``bench/notes/simspeed.md``).
``--yardstick`` only times it.

``--same-output DIR --baseline-src B``: each scenario's report and timeline CSV from both trees
into ``DIR/tree``, ``DIR/before``, equal byte for byte? (``DIR/same.json``; cut to ``--cut`` s,
the offices to 30 000 s, the depot to 2 400 s; 0: whole; wall-clock fields nulled).
"""

from __future__ import annotations

import argparse
import json
import math
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


#: how many times the yardstick runs (the best counts: the least disturbed by other work)
YARDSTICK_ROUNDS = 3


def yardstick(n: int = 200_000) -> float:
    """A fixed CPU workload (never change it: its time is the machine's speed, compared across
    sessions): ``n`` steps of building a small frozen dataclass, float arithmetic on it, a dict
    update and a heap push/pop. Returns a checksum (so that nothing is optimised away)."""
    import heapq
    from dataclasses import dataclass

    @dataclass(frozen=True, slots=True)
    class _Three:
        a: float
        b: float
        c: float

    heap: list[tuple[float, int]] = []
    seen: dict[int, float] = {}
    acc = _Three(0.0, 0.0, 0.0)
    total = 0.0
    for i in range(n):
        x = _Three(i * 0.5, (i % 7) * 1.25, (i % 13) / 3.0)
        acc = _Three(max(acc.a, x.a) * 0.5, acc.b + x.b, min(acc.c + x.c, 1e6))
        seen[i % 1024] = acc.b - x.c
        heapq.heappush(heap, (x.c - x.b, i))
        if len(heap) > 64:
            total += heapq.heappop(heap)[0]
    return total + acc.a + acc.b + acc.c + sum(seen.values())


def _yardstick_cpu_s() -> float:
    """CPU seconds of one :func:`yardstick` in this process."""
    t0 = time.process_time()
    yardstick()
    return time.process_time() - t0


def measure_yardstick(rounds: int = YARDSTICK_ROUNDS) -> float:
    """The best of ``rounds`` yardstick runs, each in a fresh process (as the scenario runs)."""
    ctx = multiprocessing.get_context("spawn")
    best = math.inf
    for _ in range(rounds):
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
            best = min(best, pool.submit(_yardstick_cpu_s).result())
    return round(best, 3)


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


def _timed(sc: Any, *, keep_timeline: bool) -> tuple[Any, float, list[float]]:
    """``sc`` simulated with errors-only logs: the result, its CPU seconds and the 1-min load
    average before and after (fuseguard imported here: ``--baseline-src`` picks the tree)."""
    from fuseguard.logging import configure_logging
    from fuseguard.scenario.runner import simulate

    configure_logging(level="error")
    load0 = os.getloadavg()[0]
    t0 = time.process_time()
    result = simulate(sc, "fuseguard", compute_optimum=False, keep_timeline=keep_timeline)
    cpu_s = time.process_time() - t0
    return result, cpu_s, [round(load0, 2), round(os.getloadavg()[0], 2)]


def _run(
    name: str, days: int | None = None, duration_s: float | None = None, last_day: bool = False
) -> dict[str, Any]:
    import fuseguard

    if last_day:  # the whole last day runs (``DayJump.keep_last_day``, the round-7 rule)
        from fuseguard.scenario.dayjump import DayJump

        DayJump.keep_last_day = True
    sc = _load(name, duration_s, days)
    result, cpu_s, load_avg = _timed(sc, keep_timeline=False)
    report = result.report
    return {
        "scenario": name,
        "days": days,
        "src": str(Path(fuseguard.__file__).parents[1]),
        "cpu_s": round(cpu_s, 2),
        "load_avg": load_avg,
        "report": {k: report.get(k) for k in COMPARED},
        # virtual seconds jumped over (scenario/jump.py; None: a build without jumps)
        "jumped_s": getattr(result, "jumped_s", None),
        # whole days skipped by day jumps (scenario/dayjump.py; None: a build without them)
        "days_jumped": getattr(result, "days_jumped", None),
        "duration_s": sc.site.duration_s,
    }


#: The parts of a run in the profile breakdown (``--profile``): (label, file suffix, function);
#: a part's CPU is the cumulative time of its entry points (see ``breakdown``).
PARTS = (
    ("decision", "control/controller.py", "decide"),
    ("- allocation", "control/allocator.py", "step"),
    ("- per-plug policies (assess, verdict, settle)", "control/plug.py", "assess|verdict|settle"),
    ("poller (meter and charger reads)", "control/polling.py", "run"),
    ("- virtual devices (adapters)", "scenario/adapters.py", "read|_read"),
    ("writer (setpoint writes)", "control/writer.py", "serve"),
    ("site tick (physics, recorder, jump watch)", "sim/site.py", "tick"),
    ("- recorder", "scenario/recorder.py", "on_tick"),
)


def breakdown(stats: dict[Any, Any], total_s: float) -> list[tuple[str, float]]:
    """Shares of ``total_s`` (a profile's total) by part of the run, from ``pstats`` raw stats
    (``{(file, line, function): (cc, nc, self_s, cumulative_s, callers)}``); the event loop and
    the rest is what no top-level part covers."""
    out: list[tuple[str, float]] = []
    top = 0.0
    for label, suffix, funcs in PARTS:
        names = funcs.split("|")
        cum = sum(
            v[3]
            for (fn, _line, func), v in stats.items()
            if fn.replace("\\", "/").endswith(suffix) and func in names
        )
        share = cum / total_s if total_s > 0 else 0.0
        out.append((label, share))
        if not label.startswith("-"):
            top += share
    out.append(("event loop, clock and the rest", max(0.0, 1.0 - top)))
    return out


def _profile(name: str, duration_s: float, start_s: float, days: int | None) -> None:
    """cProfile of the virtual window [start_s, start_s + duration_s) of ``name`` (world time;
    a window after a jump starts later in world time than asked: the profile starts at the
    clock's ``start_s``); prints the breakdown by part and the 40 most expensive functions."""
    import cProfile
    import pstats

    from fuseguard.logging import configure_logging
    from fuseguard.scenario import runner

    configure_logging(level="error")
    sc = _load(name, start_s + duration_s, days)
    prof = cProfile.Profile()
    init = runner._Run.__init__

    def starting(run: Any, *args: Any, **kwargs: Any) -> None:
        init(run, *args, **kwargs)
        run.clock.call_later(start_s, prof.enable)

    runner._Run.__init__ = starting  # type: ignore[method-assign]
    try:
        runner.simulate(sc, "fuseguard", compute_optimum=False, keep_timeline=False)
    finally:
        prof.disable()
        runner._Run.__init__ = init  # type: ignore[method-assign]
    st = pstats.Stats(prof)
    raw: dict[Any, Any] = st.stats  # type: ignore[attr-defined]
    total = float(st.total_tt)  # type: ignore[attr-defined]
    print(f"{name}: window {start_s:g}-{start_s + duration_s:g} s, profiled {total:.2f} s CPU")
    for label, share in breakdown(raw, total):
        print(f"  {100.0 * share:5.1f} %  {label}")
    st.sort_stats("cumtime").print_stats(r"fuseguard", 40)


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


#: the timeline's arrays compared day by day (``--periodic``)
TIMELINE_ARRAYS = ("grid_a", "limit_a", "ev_a", "charger_a", "setpoint_a")


def day_repeats(timeline: Any, days: int, day_s: float = 86_400.0) -> list[bool]:
    """Per pair of consecutive days (k, k + 1): whether day k + 1's timeline rows are day k's,
    bit for bit, at the same time of day (``timeline``: a :class:`Timeline`)."""
    import numpy as np

    n = timeline.n
    t = np.asarray(timeline.t_s[:n], dtype=np.float64)
    out: list[bool] = []
    for k in range(days - 1):
        a = (t >= k * day_s) & (t < (k + 1) * day_s)
        b = (t >= (k + 1) * day_s) & (t < (k + 2) * day_s)
        same = bool(a.sum() == b.sum()) and bool(np.array_equal(t[a] + day_s, t[b]))
        for key in TIMELINE_ARRAYS:
            arr = np.asarray(getattr(timeline, key)[:n])
            same = same and bool(np.array_equal(arr[a], arr[b]))
        out.append(same)
    return out


def _periodic(name: str, days: int) -> dict[str, Any]:
    """``name`` over ``days`` days: which days repeat the day before (timeline and per-car
    energy), the CPU seconds and what was jumped."""
    sc = _load(name, None, days)
    result, cpu_s, load_avg = _timed(sc, keep_timeline=True)
    per_car = result.report["energy_delivered_wh"]["per_car"]
    daily = [[round(v, 6) for k, v in per_car.items() if _car_day(k) == d] for d in range(days)]
    return {
        "scenario": name,
        "days": days,
        "cpu_s": round(cpu_s, 2),
        "load_avg": load_avg,
        "jumped_s": result.jumped_s,
        "timeline_repeats": day_repeats(result.timeline, days),
        "energy_repeats": [daily[d] == daily[d + 1] for d in range(days - 1)],
    }


def _car_day(key: str) -> int:
    """The day of a car in a report (``<charger>@<arrival s>`` or ``<id>@d<k>``)."""
    _, _, tail = key.rpartition("@")
    if tail.startswith("d") and tail[1:].isdigit():
        return int(tail[1:])
    try:
        return int(float(tail) // 86_400.0)
    except ValueError:
        return 0


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
        "| scenario | days | before CPU s | CPU s | speedup | identical | jumped | load avg "
        "| CPU / yardstick |",
        "|---|---:|---:|---:|---:|---|---:|---|---:|",
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
            f"| {'–' if same is None else ('yes' if same else 'NO')} | {share} | {load} "
            f"| {r.get('cpu_per_yardstick') or '–'} |"
        )
    if "before" in meta:
        lines += ["", f"Before: {meta['before']}; after: {meta.get('after', 'this tree')}."]
    if meta.get("yardstick_cpu_s"):
        lines += [
            "",
            f"Yardstick (the machine's speed, `bench/simspeed.py` `yardstick()`): "
            f"{meta['yardstick_cpu_s']} s CPU.",
        ]
    return "\n".join(lines) + "\n"


def _in_worker(
    src: str | None, name: str, days: int | None, last_day: bool = False
) -> dict[str, Any]:
    """One run in a fresh process importing fuseguard from ``src`` (None: this tree)."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=1, mp_context=ctx, initializer=_use_src, initargs=(src,)
    ) as pool:
        return pool.submit(_run, name, days, None, last_day).result()


def _write_outputs(name: str, cut_s: float | None, out: str) -> None:
    """``name`` (cut to ``cut_s``): its report (wall times nulled) and CSV, as ``simulate``'s."""
    from fuseguard.scenario.output import write_csv, write_report

    sc = _load(name, cut_s if cut_s and _load(name).site.duration_s > cut_s else None)
    result, _, _ = _timed(sc, keep_timeline=True)
    report = {**result.report, "wall_s": None, "sim_wall_s": None}
    if isinstance(report.get("planner"), dict):  # the horizon planner's solve times
        report["planner"] = {
            k: None if k.endswith(("_ms", "_s")) else v for k, v in report["planner"].items()
        }
    write_report(report, Path(out) / f"{name}.json")
    write_csv(result.timeline, Path(out) / f"{name}.csv")


def _same_output(names: list[str], base: Path, out: Path, cut_s: float) -> int:
    """Both trees' reports and CSVs of ``names`` (``--same-output``); 1 if any differ."""
    ctx = multiprocessing.get_context("spawn")
    for src, sub in ((None, "tree"), (str(base), "before")):
        with ProcessPoolExecutor(1, mp_context=ctx, initializer=_use_src, initargs=(src,)) as pool:
            for name in names:
                cut = {"office": 3e4, "depot": 2400.0}.get(name.split("_")[0], cut_s)
                cut = cut if cut_s > 0 else None
                pool.submit(_write_outputs, name, cut, str(out / sub)).result()
                print(f"{sub}: {name}", flush=True)
    files = sorted(p.name for p in (out / "tree").iterdir())
    differ = [
        f for f in files if (out / "tree" / f).read_bytes() != (out / "before" / f).read_bytes()
    ]
    (out / "same.json").write_text(json.dumps({"files": files, "differ": differ}, indent=1) + "\n")
    print(f"{len(files) - len(differ)} of {len(files)} files equal byte for byte; differ: {differ}")
    return 1 if differ else 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=list(DEFAULT))
    ap.add_argument("--profile", type=float, default=None, metavar="VIRTUAL_S")
    ap.add_argument("--profile-from", type=float, default=0.0, metavar="VIRTUAL_S")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "simspeed.json")
    ap.add_argument("--baseline-src", type=Path, default=None, metavar="DIR")
    ap.add_argument("--days", type=int, default=None)
    ap.add_argument("--decisions", type=float, default=None, metavar="VIRTUAL_S")
    ap.add_argument("--periodic", type=int, default=None, metavar="DAYS")
    ap.add_argument("--keep-last-day", action="store_true")
    ap.add_argument("--yardstick", action="store_true")
    ap.add_argument("--same-output", type=Path, default=None, metavar="DIR")
    ap.add_argument("--cut", type=float, default=14_400.0, metavar="VIRTUAL_S")
    args = ap.parse_args(argv)
    if args.yardstick:
        print(f"yardstick: {measure_yardstick()} s CPU (best of {YARDSTICK_ROUNDS})")
        return 0
    if args.only == ["all"]:
        args.only = list(ALL)
    if args.same_output is not None:
        if args.baseline_src is None:
            ap.error("--same-output needs --baseline-src")
        return _same_output(args.only, args.baseline_src, args.same_output, args.cut)
    if args.profile is not None:
        _profile(args.only[0], args.profile, args.profile_from, args.days)
        return 0
    if args.decisions is not None:
        for name in args.only:
            _decision_stats(name, args.decisions or None)
        return 0
    if args.periodic is not None:
        found = [_periodic(name, args.periodic) for name in args.only]
        for row in found:
            print(json.dumps(row))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"periodic": found}, indent=1) + "\n")
        return 0
    stick_s = measure_yardstick()
    print(f"yardstick: {stick_s} s CPU")
    rows = []
    for name in args.only:  # one at a time: two runs on two shared cores distort each other
        row = _in_worker(None, name, args.days, args.keep_last_day)
        if args.baseline_src is not None:
            before = _in_worker(str(args.baseline_src), name, args.days)
            row["before_cpu_s"] = before["cpu_s"]
            row["before_load_avg"] = before["load_avg"]
            row["speedup"] = round(before["cpu_s"] / row["cpu_s"], 2) if row["cpu_s"] else None
            row["identical"] = before["report"] == row["report"]
            print(f"{name}: before {before['cpu_s']} s, identical: {row['identical']}")
        row["cpu_per_yardstick"] = round(row["cpu_s"] / stick_s, 2) if stick_s else None
        print(f"{name}: {row['cpu_s']} s CPU (load avg {row['load_avg']})")
        rows.append(row)
    meta = {
        "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "yardstick_cpu_s": stick_s,
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
