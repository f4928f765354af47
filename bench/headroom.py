"""Headroom trade-off (issue 18): overload after a load step vs delivered energy, per margin.

    python bench/headroom.py [--margins 0 1 2 3] [--only base_load_steps ...]

Runs ``fuseguard simulate`` (the CLI, as an installer would) on every scenario with ``base_step``
events, once per ``[control] headroom_a`` margin (the scenario text with a ``[control]`` section
appended), and writes ``bench/results/headroom.json`` and ``bench/results/headroom.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CLI = Path(sys.executable).parent / "fuseguard"


def _step_scenarios(only: list[str]) -> list[Path]:
    paths = sorted((ROOT / "scenarios").glob("*.toml"))
    return [p for p in paths if "base_step" in p.read_text() and (not only or p.stem in only)]


def _run(path: Path, margin_a: float, tmp: Path) -> dict[str, Any]:
    scenario = tmp / f"{path.stem}_headroom_{margin_a:g}.toml"
    scenario.write_text(path.read_text() + f"\n[control]\nheadroom_a = {margin_a}\n")
    report = tmp / f"{scenario.stem}.json"
    subprocess.run(
        [str(CLI), "simulate", str(scenario), "--report", str(report), "--no-optimum"],
        check=True,
        capture_output=True,
    )
    rep = json.loads(report.read_text())
    return {
        "scenario": path.stem,
        "headroom_a": margin_a,
        "overload_as": rep["overload_as"]["total"],
        "max_overshoot_a": rep["max_overshoot_a"],
        "energy_delivered_wh": rep["energy_delivered_wh"]["total"],
        "reaction_p99_s": rep["reaction_s"]["p99"],
        "max_cycles_per_car_hour": rep["max_cycles_per_car_hour"],
    }


def _markdown(rows: list[dict[str, Any]], load: float) -> str:
    lines = [
        "| scenario | headroom A | overload A·s | max overshoot A | energy Wh | energy vs 0 A "
        "| reaction p99 s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    base = {r["scenario"]: r["energy_delivered_wh"] for r in rows if r["headroom_a"] == 0}
    for r in rows:
        ref = base.get(r["scenario"])
        rel = f"{100 * r['energy_delivered_wh'] / ref:.1f} %" if ref else "-"
        lines.append(
            f"| {r['scenario']} | {r['headroom_a']:g} | {r['overload_as']:.0f} | "
            f"{r['max_overshoot_a']:.1f} | {r['energy_delivered_wh']:,.0f} | {rel} | "
            f"{r['reaction_p99_s']} |"
        )
    lines += ["", f"Load average at the end of the run: {load:.1f} (shared machine)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--margins", type=float, nargs="+", default=[0.0, 1.0, 2.0, 3.0])
    parser.add_argument("--only", nargs="*", default=[])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in _step_scenarios(args.only):
            for margin in args.margins:
                row = _run(path, margin, Path(tmp))
                print(json.dumps(row), flush=True)
                rows.append(row)
    load = os.getloadavg()[0]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "headroom.json").write_text(
        json.dumps({"rows": rows, "load_average": load}, indent=2) + "\n"
    )
    (RESULTS / "headroom.md").write_text(_markdown(rows, load))


if __name__ == "__main__":
    main()
